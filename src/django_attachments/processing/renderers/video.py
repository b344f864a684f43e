"""Stills of videos with FFmpeg's ``ffmpeg``: a frame near the start, scaled to the spec's box.

::

    VideoRenderer().render(stream, VariantSpec("fill", 256, 256, "jpeg"))
    # Rendered(data=b"\\xff\\xd8...", width=256, height=256, content_type="image/jpeg")

Which frame: the first one at or after one second (past a fade from black,
a title's first flash), or, in a clip shorter than that, its first frame.
It is the first video stream's (an attached cover picture does not count),
turned as the file says it is displayed (a phone's rotation), with its pixel
aspect ratio applied. A file with no video stream is
:class:`~.base.PreviewUnsupported`.

How: ``ffmpeg`` seeks to one second, decodes the frame, scales it in the
same run to no more than the variant needs (never larger than it was) and
writes it as one PNG on a pipe, at most the box's size; :func:`~.base.finish`
then encodes the variant. When the clip ends before one second, ffmpeg
writes nothing, and a second run takes the first frame.

How ffmpeg reaches the bytes, and its limits, are the media analyzer's
(:mod:`..analyzers.media`): a local file is handed over by path, any other
seekable stream is served on 127.0.0.1 for the time of the run (stopping
after ``max_read_bytes`` in all); only the protocols needed and the demuxers
of :data:`~..analyzers.media.DEMUXERS` are allowed, so that a playlist or a
concat script labelled as video cannot make ffmpeg open anything else;
proxies in the environment are unset; each run is killed after ``timeout``
seconds (both runs share it). What is read: the container's headers and
index, and the media from the key frame before the chosen one to it.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import time
from typing import IO

from ..analyzers.base import ReadGuard
from ..analyzers.media import _PROXY_VARIABLES, CONTENT_TYPES, DEMUXERS, _complaint, local_path, serve_stream
from .base import (
    PreviewUnsupported,
    Rendered,
    Renderer,
    RenderError,
    RenderTimeout,
    RenderUnavailable,
    VariantSpec,
    finish,
    positive_int,
    require,
)

DEFAULT_TIMEOUT = 30.0
#: The most bytes served to ffmpeg from a stream that is not a local file.
DEFAULT_MAX_READ_BYTES = 64 * 1024 * 1024
#: Where the still is taken, in seconds from the start (earlier in a shorter clip: its first frame).
STILL_AT = 1.0

NO_VIDEO = "The file has no video stream (it holds sound only): there is no picture to preview."
#: ffmpeg's words when ``-map 0:V:0`` finds no video stream (stable since FFmpeg 2).
_NO_STREAM = "matches no streams"


class VideoRenderer(Renderer):
    """Stills of video files (MP4, QuickTime, WebM, Matroska, AVI, Ogg, MPEG), with ffmpeg.

    ``ffmpeg``: the program, a name found on the PATH or a path.
    ``timeout``: the most seconds ffmpeg may run, in all. ``max_read_bytes``:
    the most bytes served to ffmpeg from a stream that is not a local file.
    """

    name = "video"
    digest_options = ("max_read_bytes",)
    version = "1"
    content_types = frozenset(content_type for content_type in CONTENT_TYPES if content_type.startswith("video/"))

    def __init__(
        self, *, ffmpeg: str = "ffmpeg", timeout: float = DEFAULT_TIMEOUT, max_read_bytes: int = DEFAULT_MAX_READ_BYTES
    ) -> None:
        if not isinstance(ffmpeg, str) or not ffmpeg:
            raise ValueError(f"ffmpeg must be a program's name or path, not {ffmpeg!r}.")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}.")
        self.ffmpeg = ffmpeg
        self.timeout = float(timeout)
        self.max_read_bytes = positive_int("max_read_bytes", max_read_bytes)

    def require_libraries(self) -> None:
        if shutil.which(self.ffmpeg) is None:
            raise RenderUnavailable(
                f"VideoRenderer needs ffmpeg, which is not installed (no {self.ffmpeg!r} found; install FFmpeg)."
            )
        require("VideoRenderer", "preview", "PIL")

    def render(self, stream: IO[bytes], spec: VariantSpec) -> Rendered:
        executable = shutil.which(self.ffmpeg)
        if executable is None:
            raise RenderUnavailable(self.unavailable_reason())
        require("VideoRenderer", "preview", "PIL")
        from PIL import Image

        self.check_stream(stream)
        guard = ReadGuard(stream)
        deadline = time.monotonic() + self.timeout
        path = local_path(stream)
        if path is not None:
            png = self._still(executable, "file:" + path, "file", path, spec, deadline)
        else:
            outcome: bytes | RenderError
            with serve_stream(guard, max_bytes=self.max_read_bytes, timeout=self.timeout) as server:
                try:
                    outcome = self._still(executable, server.url, "http,tcp", server.url, spec, deadline)
                except RenderError as exc:
                    outcome = exc
            # The server's threads are done: what they saw is final.
            guard.reraise_stream_error()
            if server.failure is not None:
                raise server.failure
            if server.refused:
                raise RenderError(
                    f"The video is too large to preview: ffmpeg read more than {self.max_read_bytes:,} bytes "
                    "of it without reaching its first frames."
                )
            if isinstance(outcome, RenderError):
                raise outcome
            png = outcome
        try:
            with Image.open(io.BytesIO(png), formats=["PNG"]) as frame:
                frame.load()
                return finish(frame, spec)
        except OSError as exc:  # not ours to misread: ffmpeg wrote it
            raise RenderError("ffmpeg gave no readable frame of the file.") from exc

    def _still(
        self, executable: str, url: str, protocols: str, shown_as: str, spec: VariantSpec, deadline: float
    ) -> bytes:
        """One PNG frame of ``url``: at :data:`STILL_AT` seconds, or the first one if the clip is shorter."""
        for seek in (STILL_AT, None):
            png = self._run(executable, url, protocols, shown_as, spec, seek, deadline)
            if png:
                return png
        raise RenderError("The file is not a readable video: ffmpeg decoded no frame of it.")

    def _run(
        self,
        executable: str,
        url: str,
        protocols: str,
        shown_as: str,
        spec: VariantSpec,
        seek: float | None,
        deadline: float,
    ) -> bytes:
        args = [executable, "-nostdin", "-hide_banner", "-v", "error"]
        args += ["-protocol_whitelist", protocols, "-format_whitelist", ",".join(DEMUXERS)]
        if seek is not None:
            args += ["-ss", f"{seek:g}"]
        # One decoding thread (an input option): ffmpeg's default is one per core, each with its frame
        # buffers, so a 4K clip's render would take memory in proportion to the machine, for one still.
        args += ["-threads", "1"]
        args += ["-i", url, "-map", "0:V:0", "-an", "-sn", "-dn", "-vf", _filters(spec), "-frames:v", "1"]
        args += ["-f", "image2pipe", "-c:v", "png", "-compression_level", "1", "pipe:1"]
        # ffmpeg's http protocol would send a loopback request through a proxy named in the environment.
        env = {key: value for key, value in os.environ.items() if key.lower() not in _PROXY_VARIABLES}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RenderTimeout(f"ffmpeg took more than {self.timeout:g} s to read the file; it was stopped.")
        with tempfile.TemporaryFile() as errors:  # on disk: a broken file may make ffmpeg say a lot
            try:
                completed = subprocess.run(
                    args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=env, timeout=remaining
                )
            except subprocess.TimeoutExpired:  # run() has killed and reaped ffmpeg
                raise RenderTimeout(
                    f"ffmpeg took more than {self.timeout:g} s to read the file; it was stopped."
                ) from None
            except FileNotFoundError as exc:
                raise RenderUnavailable(f"VideoRenderer could not run ffmpeg ({executable}): {exc}.") from exc
            if completed.returncode != 0:
                detail = _complaint(errors, shown_as)
                if _NO_STREAM in detail:
                    raise PreviewUnsupported(NO_VIDEO)
                raise RenderError(_failure(completed.returncode, detail))
        return completed.stdout


def _filters(spec: VariantSpec) -> str:
    """ffmpeg's filters: the frame shrunk (never enlarged) to what the variant needs, in square pixels, as RGB.

    ``dw`` (the display width, ``iw*sar``) and ``ih`` are the frame's; the
    factor is :func:`~.base.source_scale`'s. A ``fill`` keeps the part of
    the frame the box covers, so that the PNG is never larger than the box.
    """
    box_width, box_height = spec.width, spec.height
    display = "(iw*sar)"
    ratios = f"{box_width}/{display},{box_height}/ih"
    scale = f"min(1,{'min' if spec.operation == 'fit' else 'max'}({ratios}))"
    filters = [
        f"scale=w='max(1,round({display}*{scale}))':h='max(1,round(ih*{scale}))'",
        "setsar=1",
    ]
    if spec.operation == "fill":
        filters.append(f"crop=w='min(iw,{box_width})':h='min(ih,{box_height})'")
    filters.append("format=rgb24")
    return ",".join(filters)


def _failure(returncode: int, detail: str) -> str:
    if returncode < 0:
        return f"ffmpeg crashed reading the file (signal {-returncode}); it is not a readable video."
    message = "The file is not a readable video: it is corrupt, truncated or of an unsupported format"
    return f"{message} (ffmpeg: {detail})." if detail else f"{message}."
