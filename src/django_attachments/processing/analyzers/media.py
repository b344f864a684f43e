"""Audio and video metadata with ffprobe, read from the container's headers.

::

    MediaAnalyzer().analyze(stream)
    # {"media.duration": 12.04, "media.width": 1920, "media.height": 1080, "media.video_codec": "h264",
    #  "media.audio_codec": "aac", "media.bit_rate": 4512000, "media.container": "mov,mp4,m4a,3gp,3g2,mj2",
    #  "media.has_audio": True, "media.has_video": True}

Keys: ``media.duration`` (seconds, a float), ``media.width`` and
``media.height`` (the first video stream's, in pixels, before any rotation),
``media.video_codec`` and ``media.audio_codec`` (ffprobe's names of the first
video and audio streams' codecs: h264, hevc, vp9, aac, opus, mp3, ...),
``media.bit_rate`` (the whole file's, bits per second), ``media.container``
(ffprobe's name of the demuxer: "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm",
"wav", ...), ``media.has_audio`` and ``media.has_video``. A picture attached
to an audio file (an MP3's cover) is not a video stream. A file in which
ffprobe finds neither audio nor video is refused (:class:`AnalysisError`).

How ffprobe reaches the bytes: a stream that is a local file (its ``name``
is the path of the file its ``fileno()`` has open) is handed to ffprobe by
path. Any other seekable stream (a ``BytesIO``, a reader over a stored
object) is served to ffprobe over HTTP on 127.0.0.1, on a free port, under a
random path, for the time of the probe: ffprobe seeks with ``Range``
requests, each answered from the stream in chunks of 64 KiB. The server
stops serving after ``max_read_bytes`` bytes in all, and the analysis is then
refused; a local file has no such count, only the time limit.

What is read: what ffprobe needs to name the streams -- the container's
headers and index wherever they are (an MP4's ``moov`` atom at the start or
at the end, seeking over the media data; an AVI's index at the end; the last
page of an Ogg file for its duration) and the first packets of each stream,
up to ``probe_size`` bytes or ``analyze_duration`` seconds of media. Of a
255 MB MP4, ffprobe reads about 1 MB (under 1%), whether its ``moov`` atom
comes first or last. For MP4 and QuickTime files, the top-level atoms'
headers are then walked to the end, seeking past each atom's data, so a file
cut short is refused; in other containers a file cut inside its media data
is not detected (that needs decoding it all).

Limits: ffprobe runs for at most ``timeout`` seconds (then it is killed and
the file refused), with proxies unset, only the protocols it needs (``file``,
or ``http`` and ``tcp``) and only the demuxers of :data:`DEMUXERS`, so that a
playlist or a concat script labelled as video cannot make it open other
files or URLs. It prints only the fields above: the file's tags (titles,
a phone's GPS position) never leave it. The server's threads end with the
probe; one blocked in a read of the stream ends when that read returns.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
import shutil
import socket
import socketserver
import stat
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import IO, Any

from .base import AnalysisError, AnalysisUnavailable, Analyzer, Metadata, ReadGuard

DEFAULT_TIMEOUT = 30.0
#: ffmpeg's own defaults for how much media it reads to name the streams, stated so they cannot drift.
DEFAULT_PROBE_SIZE = 5_000_000
DEFAULT_ANALYZE_DURATION = 5.0
#: The most bytes served to ffprobe from a stream that is not a local file.
DEFAULT_MAX_READ_BYTES = 64 * 1024 * 1024

#: The sniffed types (libmagic's names) read as audio or video.
CONTENT_TYPES = frozenset(
    {
        "video/mp4",
        "video/quicktime",
        "video/x-m4v",
        "video/3gpp",
        "video/3gpp2",
        "video/webm",
        "video/x-matroska",
        "video/x-msvideo",
        "video/ogg",
        "video/mpeg",
        "video/mp2t",
        "audio/mp4",
        "audio/x-m4a",
        "audio/mpeg",
        "audio/x-wav",
        "audio/wav",
        "audio/ogg",
        "audio/flac",
        "audio/x-flac",
        "audio/aac",
        "audio/x-hx-aac-adts",
        "audio/webm",
        "audio/x-matroska",
    }
)

#: The demuxers ffprobe may use, by ffmpeg's names: the containers of :data:`CONTENT_TYPES`, and
#: none that opens other files or URLs (hls, dash, concat, image2, ...).
DEMUXERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "ogg", "mpeg", "mpegts", "mp3", "wav", "flac", "aac")

_ENTRIES = (
    "format=format_name,duration,bit_rate:stream=codec_type,codec_name,width,height:stream_disposition=attached_pic"
)
_CHUNK = 64 * 1024
#: The most top-level atoms walked in an MP4 (real files have a handful); past it the walk stops.
_MAX_ATOMS = 1024
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
_ERROR_CONTEXT = re.compile(r"\[[\w ,-]+ @ 0x[0-9a-f]+\] ")


class MediaAnalyzer(Analyzer):
    """Duration, size, codecs, bit rate and container of audio and video files, with ffprobe.

    ``ffprobe``: the program, a name found on the PATH or a path.
    ``timeout``: the most seconds ffprobe may run. ``probe_size`` and
    ``analyze_duration``: the most bytes and seconds of media ffprobe reads to
    name the streams. ``max_read_bytes``: the most bytes served to ffprobe
    from a stream that is not a local file.
    """

    name = "media"
    content_types = CONTENT_TYPES

    def __init__(
        self,
        *,
        ffprobe: str = "ffprobe",
        timeout: float = DEFAULT_TIMEOUT,
        probe_size: int = DEFAULT_PROBE_SIZE,
        analyze_duration: float = DEFAULT_ANALYZE_DURATION,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
    ) -> None:
        if timeout <= 0 or analyze_duration <= 0 or max_read_bytes < 1:
            raise ValueError("timeout, analyze_duration and max_read_bytes must be positive.")
        if probe_size < 32:  # ffmpeg's minimum
            raise ValueError("probe_size must be at least 32 bytes.")
        self.ffprobe = ffprobe
        self.timeout = timeout
        self.probe_size = probe_size
        self.analyze_duration = analyze_duration
        self.max_read_bytes = max_read_bytes

    def unavailable_reason(self) -> str | None:
        if shutil.which(self.ffprobe) is None:
            return f"MediaAnalyzer needs ffprobe, which is not installed (no {self.ffprobe!r} found; install FFmpeg)."
        return None

    def analyze(self, stream: IO[bytes]) -> Metadata:
        executable = shutil.which(self.ffprobe)
        if executable is None:
            raise AnalysisUnavailable(self.unavailable_reason())
        self.check_stream(stream)
        guard = ReadGuard(stream)
        path = local_path(stream)
        if path is not None:
            report = self._probe(executable, "file:" + path, "file", path)
        else:
            outcome: dict[str, Any] | AnalysisError
            with serve_stream(guard, max_bytes=self.max_read_bytes, timeout=self.timeout) as server:
                try:
                    outcome = self._probe(executable, server.url, "http,tcp", server.url)
                except AnalysisError as exc:
                    outcome = exc
            # The server's threads are done: what they saw is final.
            guard.reraise_stream_error()
            if server.failure is not None:
                raise server.failure
            if server.refused:
                raise AnalysisError(
                    f"The file is too large to analyze: ffprobe read more than {self.max_read_bytes:,} bytes "
                    "of it without finding what it looked for."
                )
            if isinstance(outcome, AnalysisError):
                raise outcome
            report = outcome
        metadata = _metadata(report)
        if str(metadata["media.container"]).startswith("mov,"):
            try:
                _check_mp4_complete(guard)
            except AnalysisError:
                raise
            except Exception:
                guard.reraise_stream_error()
                raise
        return metadata

    def _probe(self, executable: str, url: str, protocols: str, shown_as: str) -> dict[str, Any]:
        """ffprobe's JSON report on ``url``; ``shown_as`` is left out of its error messages."""
        args = [
            executable,
            "-v",
            "error",
            "-probesize",
            str(self.probe_size),
            "-analyzeduration",
            str(int(self.analyze_duration * 1_000_000)),
            "-protocol_whitelist",
            protocols,
            "-format_whitelist",
            ",".join(DEMUXERS),
            "-print_format",
            "json",
            "-show_entries",
            _ENTRIES,
            url,
        ]
        # ffmpeg's http protocol would send a loopback request through a proxy named in the environment.
        env = {key: value for key, value in os.environ.items() if key.lower() not in _PROXY_VARIABLES}
        with tempfile.TemporaryFile() as errors:  # on disk: a broken file may make ffprobe say a lot
            try:
                completed = subprocess.run(
                    args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=env, timeout=self.timeout
                )
            except subprocess.TimeoutExpired:  # run() has killed and reaped ffprobe
                raise AnalysisError(
                    f"ffprobe took more than {self.timeout:g} s to read the file; it was stopped."
                ) from None
            except FileNotFoundError as exc:
                raise AnalysisUnavailable(f"MediaAnalyzer could not run ffprobe ({executable}): {exc}.") from exc
            if completed.returncode != 0:
                raise AnalysisError(_failure(completed.returncode, _complaint(errors, shown_as)))
        try:
            report = json.loads(completed.stdout)
        except ValueError:
            report = None
        if not isinstance(report, dict):
            raise AnalysisError("The file is not a readable audio or video file: ffprobe gave no report on it.")
        return report


def local_path(stream: IO[bytes]) -> str | None:
    """The absolute path of the regular file ``stream`` has open, or None if it is not one."""
    name = getattr(stream, "name", None)
    if not isinstance(name, str) or not name:
        return None  # checked before fileno(): a SpooledTemporaryFile's fileno() writes it to disk
    try:
        opened = os.fstat(stream.fileno())
        named = os.stat(name)
        stream.flush()  # a spool just written: what its buffer holds must be on disk for ffprobe
    except (OSError, ValueError, AttributeError):
        return None
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
        return None  # a name that is not (or no longer) the open file's: serve the stream instead
    return os.path.abspath(name)


def _failure(returncode: int, detail: str) -> str:
    if returncode < 0:
        return f"ffprobe crashed reading the file (signal {-returncode}); it is not a readable audio or video file."
    message = "The file is not a readable audio or video file: it is corrupt, truncated or of an unsupported format"
    return f"{message} (ffprobe: {detail})." if detail else f"{message}."


def _complaint(errors: IO[bytes], shown_as: str) -> str:
    """ffprobe's last few lines of complaint, without the file's path or URL and ffmpeg's pointers."""
    size = errors.seek(0, io.SEEK_END)
    errors.seek(max(0, size - 4096))
    lines: list[str] = []
    for line in errors.read().decode("utf-8", "replace").splitlines():
        line = _ERROR_CONTEXT.sub("", line.replace(shown_as, "the file").replace("file:the file", "the file")).strip()
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines[-3:])[:300]


def _metadata(report: dict[str, Any]) -> Metadata:
    streams = [s for s in report.get("streams") or [] if isinstance(s, dict)]
    container = report.get("format")
    if not isinstance(container, dict):
        container = {}
    video = next((s for s in streams if s.get("codec_type") == "video" and not _attached_picture(s)), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise AnalysisError("The file is not a readable audio or video file: ffprobe found no audio or video in it.")
    return {
        "media.duration": _number(container.get("duration"), float),
        "media.width": _number(video.get("width"), int) if video else None,
        "media.height": _number(video.get("height"), int) if video else None,
        "media.video_codec": _text(video.get("codec_name")) if video else None,
        "media.audio_codec": _text(audio.get("codec_name")) if audio else None,
        "media.bit_rate": _number(container.get("bit_rate"), int),
        "media.container": _text(container.get("format_name")),
        "media.has_audio": audio is not None,
        "media.has_video": video is not None,
    }


def _attached_picture(stream: dict[str, Any]) -> bool:
    disposition = stream.get("disposition")
    return isinstance(disposition, dict) and bool(disposition.get("attached_pic"))


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    """A non-negative finite number from ffprobe's output (it prints some as strings), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = kind(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _check_mp4_complete(stream: ReadGuard) -> None:
    """Walk the top-level atoms' headers, seeking past their data: one running past the end means a cut."""
    size = stream.seek(0, io.SEEK_END)
    position = 0
    for _ in range(_MAX_ATOMS):
        if position == size:
            return
        stream.seek(position)
        header = stream.read(16)
        if len(header) < 8:
            break
        length = struct.unpack(">I", header[:4])[0]
        if length == 0:  # the last atom, running to the end of the file
            return
        if length == 1:  # a 64-bit size follows the type
            if len(header) < 16:
                break
            length = struct.unpack(">Q", header[8:16])[0]
        if length < 8:
            raise AnalysisError("The file is not a readable MP4 or QuickTime file: an atom's size is invalid.")
        position += length
        if position > size:
            break
    else:
        return  # past this many atoms, the file is odd but not shown to be cut
    raise AnalysisError("The MP4 or QuickTime file is truncated: its end is missing.")


# --- serving a stream to ffprobe ---------------------------------------------------


class _Refused(Exception):
    """The server has served all the bytes it may."""


class StreamServer(socketserver.ThreadingTCPServer):
    """An HTTP server on 127.0.0.1 that serves one seekable stream, with ranges, at :attr:`url`.

    One thread per connection (ffmpeg opens the next connection before it
    closes the last); reads of the stream are serialized, and counted.
    """

    daemon_threads = False
    block_on_close = True  # server_close() joins the connections' threads

    def __init__(self, source: ReadGuard, *, max_bytes: int, timeout: float) -> None:
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.source = source
        self.size = source.seek(0, io.SEEK_END)
        self.path = "/" + secrets.token_urlsafe(32)
        self.url = f"http://127.0.0.1:{self.server_address[1]}{self.path}"
        self.max_bytes = max_bytes
        self.io_timeout = timeout
        #: Bytes read from the stream and sent, in all.
        self.served = 0
        #: Whether a request was cut short at ``max_bytes``.
        self.refused = False
        #: An unexpected error of a handler (a bug, not a closed connection nor the stream's own error).
        self.failure: BaseException | None = None
        self._read_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def read_at(self, position: int, size: int) -> bytes:
        with self._read_lock:
            if self.served + size > self.max_bytes:
                self.refused = True
                raise _Refused
            self.source.seek(position)
            data = self.source.read(size)
            self.served += len(data)
            return data

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """Wake every handler blocked on its socket (a client that went quiet), so that it ends now."""
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if self.source.error is None and not isinstance(error, (OSError, _Refused)) and self.failure is None:
            self.failure = error


class _RangeHandler(BaseHTTPRequestHandler):
    server: StreamServer

    def setup(self) -> None:
        # A small send buffer: bytes sent ahead of what ffprobe reads are bytes read from the stream for nothing.
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _CHUNK)
        self.server.track(self.request, True)
        super().setup()
        self.connection.settimeout(self.server.io_timeout)  # a client gone quiet does not hold a thread

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.request, False)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def do_GET(self) -> None:
        self._respond(body=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # nothing on stderr for each of ffprobe's requests

    def _respond(self, body: bool) -> None:
        server = self.server
        if self.path != server.path:
            self.send_error(404)
            return
        size = server.size
        try:
            span = byte_range(self.headers.get("Range"), size)
        except Unsatisfiable:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if span is None:
            start, end = 0, size - 1
            self.send_response(200)
        else:
            start, end = span
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end + 1 - start))
        self.end_headers()
        if not body:
            return
        position = start
        while position <= end:
            chunk = server.read_at(position, min(_CHUNK, end + 1 - position))
            if not chunk:
                break  # the stream is shorter than it said: the client sees a short body
            self.wfile.write(chunk)
            position += len(chunk)


class Unsatisfiable(ValueError):
    """A ``Range`` header that asks only for bytes past the end (answered 416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive span a ``Range`` header asks of ``size`` bytes, or None to ignore the header."""
    if header is None:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None or not (match[1] or match[2]):
        return None  # several ranges or a syntax error: the whole file, as RFC 9110 allows
    if match[1]:
        start = int(match[1])
        end = int(match[2]) if match[2] else size - 1
        if match[2] and end < start:
            return None  # invalid: ignored
        if start >= size:
            raise Unsatisfiable(header)
        return start, min(end, size - 1)
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        raise Unsatisfiable(header)
    return max(0, size - suffix), size - 1


@contextmanager
def serve_stream(source: ReadGuard, *, max_bytes: int, timeout: float) -> Iterator[StreamServer]:
    """Serve ``source`` on 127.0.0.1 for the time of the block; on leaving, the port is closed and every thread done."""
    server = StreamServer(source, max_bytes=max_bytes, timeout=timeout)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="media-analyzer-server", daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
