"""The media analyzer (ffprobe) and the DICOM analyzer (pydicom), on files the test makes.

Audio and video are made by a real ffmpeg and read by a real ffprobe; without FFmpeg those tests
are skipped, saying so (.ci/run installs it). DICOM files are built by pydicom, with a full set of
patient data that must never come out of the analyzer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import http.client
import io
import json
import mmap
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from django_attachments.ingest import sniff
from django_attachments.processing.analyzers import (
    AnalysisError,
    AnalysisUnavailable,
    DicomAnalyzer,
    MediaAnalyzer,
)
from django_attachments.processing.analyzers.base import ReadGuard
from django_attachments.processing.analyzers.media import byte_range, serve_stream

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None or FFPROBE is None,
    reason="FFmpeg's ffmpeg and ffprobe are not installed (Debian/Ubuntu: apt-get install ffmpeg)",
)

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
UNREADABLE = "The file is not a readable audio or video file: it is corrupt, truncated or of an unsupported format"


# --- helpers ----------------------------------------------------------------------


class Counting(io.RawIOBase):
    """A seekable stream over a file, with no file number: it is served to ffprobe, and counts what is read."""

    def __init__(self, path, delay=0.0):
        self._file = open(path, "rb")  # noqa: SIM115 -- closed by close()
        self.delay = delay
        self.bytes_read = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def readinto(self, buffer):
        if self.delay:
            time.sleep(self.delay)
        count = self._file.readinto(buffer)
        self.bytes_read += count
        return count

    def close(self):
        self._file.close()
        super().close()


class FailingStream(io.BytesIO):
    """A stream whose storage fails once a read reaches past ``good`` bytes."""

    def __init__(self, data, good):
        super().__init__(data)
        self.good = good

    def read(self, size=-1):
        if self.tell() + (size if size is not None and size >= 0 else len(self.getvalue())) > self.good:
            raise OSError("connection reset by storage")
        return super().read(size)


class OneWay(io.RawIOBase):
    def __init__(self, data):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        return self._data.readinto(buffer)


def own_children():
    """The ids of this process's child processes (Linux; elsewhere an empty list)."""
    children = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            children.append(int(entry.parent.name))
    return children


def server_threads():
    return [thread for thread in threading.enumerate() if thread.name == "media-analyzer-server"]


def refused(port):
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def fake_ffprobe(directory, body=""):
    """An ffprobe that logs its arguments (a JSON line) to the returned log, runs ``body``, then execs the real one."""
    log = directory / "ffprobe-runs.jsonl"
    script = directory / "ffprobe-wrapper"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"LOG = {str(log)!r}\n"
        f"REAL = {FFPROBE!r}\n"
        "with open(LOG, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"{textwrap.dedent(body)}\n"
        "os.execv(REAL, [REAL, *sys.argv[1:]])\n"
    )
    script.chmod(0o755)
    return str(script), log


def logged(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def ffmpeg(*args):
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True, timeout=300)


@functools.cache
def encoders():
    listing = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True, check=True)
    return set(re.findall(r"^ [VAS.][F.][S.][X.][B.][D.] (\S+)", listing.stdout, re.MULTILINE))


def mp4_atoms(path):
    """The top-level atoms of an MP4: [(type, size), ...]."""
    atoms = []
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        position = 0
        while position < size:
            f.seek(position)
            length, kind = struct.unpack(">I4s", f.read(8))
            if length == 1:
                length = struct.unpack(">Q", f.read(8))[0]
            atoms.append((kind.decode(), length))
            position += length
    return atoms


# --- media files, made once per session ---------------------------------------------

VIDEO = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]
SMALL_VIDEO = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25"]
AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]


def av(video_codec, audio_codec, width, height, container):
    return {"media.video_codec": video_codec, "media.audio_codec": audio_codec, "media.width": width,
            "media.height": height, "media.container": container, "media.has_audio": audio_codec is not None,
            "media.has_video": video_codec is not None}  # fmt: skip


#: name -> (file name, ffmpeg arguments, encoders needed, what the analyzer must say, what libmagic sniffs)
MEDIA = {
    "mp4": (
        "clip.mp4",
        [*VIDEO, *AUDIO, "-t", 2, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
        {"libx264", "aac"},
        av("h264", "aac", 320, 240, MP4),
        "video/mp4",
    ),
    "mp4-faststart": (
        "faststart.mp4",
        [*VIDEO, *AUDIO, "-t", 2, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart"],
        {"libx264", "aac"},
        av("h264", "aac", 320, 240, MP4),
        "video/mp4",
    ),
    "webm": (
        "clip.webm",
        [*SMALL_VIDEO, *AUDIO, "-t", 2, "-c:v", "libvpx", "-c:a", "libopus"],
        {"libvpx", "libopus"},
        av("vp8", "opus", 160, 120, "matroska,webm"),
        "video/webm",
    ),
    "mkv": (
        "clip.mkv",
        [*SMALL_VIDEO, *AUDIO, "-t", 2, "-c:v", "libx264", "-c:a", "flac"],
        {"libx264", "flac"},
        av("h264", "flac", 160, 120, "matroska,webm"),
        "video/x-matroska",
    ),
    "mov": (
        "clip.mov",
        [*SMALL_VIDEO, *AUDIO, "-t", 2, "-c:v", "mpeg4", "-c:a", "pcm_s16le"],
        {"mpeg4", "pcm_s16le"},
        av("mpeg4", "pcm_s16le", 160, 120, MP4),
        "video/quicktime",
    ),
    "avi": (
        "clip.avi",
        [*SMALL_VIDEO, *AUDIO, "-t", 2, "-c:v", "mpeg4", "-c:a", "pcm_s16le"],
        {"mpeg4", "pcm_s16le"},
        av("mpeg4", "pcm_s16le", 160, 120, "avi"),
        "video/x-msvideo",
    ),
    "ogv": (
        "clip.ogv",
        [*SMALL_VIDEO, *AUDIO, "-t", 2, "-c:v", "libtheora", "-c:a", "libvorbis"],
        {"libtheora", "libvorbis"},
        av("theora", "vorbis", 160, 120, "ogg"),
        "video/ogg",
    ),
    "wav": (
        "tone.wav",
        [*AUDIO, "-t", 2, "-c:a", "pcm_s16le"],
        {"pcm_s16le"},
        av(None, "pcm_s16le", None, None, "wav"),
        "audio/x-wav",
    ),  # fmt: skip
    "mp3": (
        "tone.mp3",
        [*AUDIO, "-t", 2, "-c:a", "libmp3lame"],
        {"libmp3lame"},
        av(None, "mp3", None, None, "mp3"),
        "audio/mpeg",
    ),  # fmt: skip
    "flac": (
        "tone.flac",
        [*AUDIO, "-t", 2, "-c:a", "flac"],
        {"flac"},
        av(None, "flac", None, None, "flac"),
        "audio/flac",
    ),  # fmt: skip
    "ogg": (
        "tone.ogg",
        [*AUDIO, "-t", 2, "-c:a", "libvorbis"],
        {"libvorbis"},
        av(None, "vorbis", None, None, "ogg"),
        "audio/ogg",
    ),  # fmt: skip
    "m4a": ("tone.m4a", [*AUDIO, "-t", 2, "-c:a", "aac"], {"aac"}, av(None, "aac", None, None, MP4), "audio/x-m4a"),
    "video-only-mp4": (
        "silent.mp4",
        [*VIDEO, "-t", 2, "-c:v", "libx264", "-pix_fmt", "yuv420p"],
        {"libx264"},
        av("h264", None, 320, 240, MP4),
        "video/mp4",
    ),
}


class MediaFiles:
    """Media made by ffmpeg on first use, once per session."""

    def __init__(self, directory):
        self.directory = directory
        self._made = {}

    def path(self, name):
        if name not in self._made:
            filename, args, needed, _, _ = MEDIA[name]
            missing = needed - encoders()
            if missing:
                pytest.skip(f"this ffmpeg has no {', '.join(sorted(missing))} encoder")
            path = self.directory / filename
            ffmpeg(*args, path)
            self._made[name] = path
        return self._made[name]

    def data(self, name):
        return self.path(name).read_bytes()

    def mp3_with_cover(self):
        path = self.directory / "cover.mp3"
        if not path.exists():
            cover = self.directory / "cover.png"
            ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", 1, cover)
            ffmpeg("-i", self.path("mp3"), "-i", cover, "-map", 0, "-map", 1, "-c", "copy",
                   "-disposition:v", "attached_pic", path)  # fmt: skip
        return path


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    if FFMPEG is None or FFPROBE is None:
        pytest.skip("FFmpeg's ffmpeg and ffprobe are not installed (Debian/Ubuntu: apt-get install ffmpeg)")
    return MediaFiles(tmp_path_factory.mktemp("media"))


# --- the media analyzer: the contract ---------------------------------------------------


@pytest.mark.parametrize(
    "content_type, expected",
    [
        ("video/mp4", True),
        ("video/quicktime", True),
        ("video/webm", True),
        ("VIDEO/X-MATROSKA", True),
        ("video/x-msvideo", True),
        ("video/ogg", True),
        ("audio/mpeg", True),
        ("audio/x-wav", True),
        ("audio/ogg", True),
        ("audio/flac", True),
        ("audio/x-m4a", True),
        ("audio/mp4; charset=binary", True),
        ("application/x-mpegurl", False),  # an HLS playlist
        ("text/plain", False),
        ("image/gif", False),
        ("application/dicom", False),
    ],
)
def test_media_accepts_by_sniffed_content_type(content_type, expected):
    assert MediaAnalyzer().accepts(content_type) is expected


def test_a_missing_ffprobe_is_reported_not_skipped(monkeypatch):
    analyzer = MediaAnalyzer(ffprobe="ffprobe-that-is-not-installed")
    reason = (
        "MediaAnalyzer needs ffprobe, which is not installed "
        "(no 'ffprobe-that-is-not-installed' found; install FFmpeg)."
    )
    assert analyzer.accepts("video/mp4")
    assert analyzer.unavailable_reason() == reason
    with pytest.raises(AnalysisUnavailable) as caught:
        analyzer.analyze(io.BytesIO(b"anything"))
    assert str(caught.value) == reason
    # The default looks on the PATH.
    monkeypatch.setenv("PATH", "")
    assert MediaAnalyzer().unavailable_reason() == (
        "MediaAnalyzer needs ffprobe, which is not installed (no 'ffprobe' found; install FFmpeg)."
    )


@needs_ffmpeg
def test_ffprobe_found_is_available():
    assert MediaAnalyzer().unavailable_reason() is None
    assert MediaAnalyzer(ffprobe=FFPROBE).unavailable_reason() is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"timeout": 0}, "must be positive"),
        ({"analyze_duration": -1}, "must be positive"),
        ({"max_read_bytes": 0}, "must be positive"),
        ({"probe_size": 31}, "probe_size must be at least 32 bytes"),
    ],
)
def test_media_limits_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MediaAnalyzer(**kwargs)


@needs_ffmpeg
def test_media_refuses_a_stream_that_cannot_seek():
    with pytest.raises(TypeError, match="needs a seekable stream"):
        MediaAnalyzer().analyze(OneWay(b"\x00" * 100))


# --- the media analyzer: real files ------------------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize("name", list(MEDIA))
def test_media_metadata(media, name):
    *_, expected, _ = MEDIA[name]
    data = media.data(name)
    served = MediaAnalyzer().analyze(io.BytesIO(data))  # over the loopback server
    with open(media.path(name), "rb") as local:
        by_path = MediaAnalyzer().analyze(local)  # by path
    assert served == by_path
    assert {key: served[key] for key in expected} == expected
    assert set(served) == {*expected, "media.duration", "media.bit_rate"}
    assert served["media.duration"] == pytest.approx(2.0, abs=0.1)
    assert isinstance(served["media.bit_rate"], int)
    # The bit rate is the file's: its size over its duration.
    assert served["media.bit_rate"] == pytest.approx(len(data) * 8 / served["media.duration"], rel=0.02)


@needs_ffmpeg
@pytest.mark.parametrize("name", list(MEDIA))
def test_libmagic_sniffs_what_the_analyzer_accepts(media, name):
    *_, sniffed = MEDIA[name]
    content_type = sniff(media.data(name)[: 256 * 1024])
    assert content_type == sniffed
    assert MediaAnalyzer().accepts(content_type)


@needs_ffmpeg
def test_a_cover_picture_is_not_a_video_stream(media):
    with open(media.mp3_with_cover(), "rb") as f:
        metadata = MediaAnalyzer().analyze(f)
    assert metadata["media.has_video"] is False
    assert (metadata["media.video_codec"], metadata["media.width"], metadata["media.height"]) == (None, None, None)
    assert metadata["media.audio_codec"] == "mp3"


@needs_ffmpeg
def test_the_files_tags_never_leave_ffprobe(media, tmp_path):
    tagged = tmp_path / "tagged.mp4"
    ffmpeg("-i", media.path("mp4"), "-c", "copy", "-metadata", "title=Jane Doe at home",
           "-metadata", "location=+48.8584+002.2945/", tagged)  # fmt: skip
    metadata = MediaAnalyzer().analyze(io.BytesIO(tagged.read_bytes()))
    text = json.dumps(metadata)
    assert "Jane" not in text and "48.85" not in text
    assert metadata["media.width"] == 320


@needs_ffmpeg
def test_media_stream_is_read_from_its_start_and_left_open(media):
    stream = io.BytesIO(media.data("wav"))
    stream.seek(0, io.SEEK_END)
    assert MediaAnalyzer().analyze(stream)["media.audio_codec"] == "pcm_s16le"
    assert not stream.closed


# --- the media analyzer: hostile and broken files ----------------------------------------


@needs_ffmpeg
def test_an_mp4_cut_before_its_moov_atom_is_refused(media):
    data = media.data("mp4")
    assert [kind for kind, _ in mp4_atoms(media.path("mp4"))][-1] == "moov"
    with pytest.raises(AnalysisError) as caught:
        MediaAnalyzer().analyze(io.BytesIO(data[: len(data) // 2]))
    assert str(caught.value) == (
        f"{UNREADABLE} (ffprobe: moov atom not found; the file: Invalid data found when processing input)."
    )


@needs_ffmpeg
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_a_faststart_mp4_cut_inside_its_media_data_is_truncated(media, keep):
    data = media.data("mp4-faststart")
    assert [kind for kind, _ in mp4_atoms(media.path("mp4-faststart"))][:2] == ["ftyp", "moov"]
    # ffprobe alone is satisfied by the headers: the walk over the atoms is what sees the cut.
    with pytest.raises(AnalysisError) as caught:
        MediaAnalyzer().analyze(io.BytesIO(data[: int(len(data) * keep)]))
    assert str(caught.value) == "The MP4 or QuickTime file is truncated: its end is missing."
    assert MediaAnalyzer().analyze(io.BytesIO(data + b"\x00" * 8))["media.width"] == 320  # an empty atom after it


@needs_ffmpeg
@pytest.mark.parametrize(
    "data",
    [
        random.Random(5).randbytes(200_000),
        b"",
        b"just some text, labelled video/mp4 by a client\n" * 100,
        b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\xff" * 5000,
    ],
    ids=["random-bytes", "empty", "text", "ftyp-then-garbage"],
)
def test_not_media_is_an_analysis_error(data):
    with pytest.raises(AnalysisError) as caught:
        MediaAnalyzer().analyze(io.BytesIO(data))
    assert str(caught.value).startswith(UNREADABLE + " (ffprobe: ")
    assert "127.0.0.1" not in str(caught.value)  # the URL is not shown


@needs_ffmpeg
def test_an_error_message_does_not_show_the_files_path(media, tmp_path):
    path = tmp_path / "secret-name: with a colon.mp4"
    path.write_bytes(media.data("mp4")[:1000])
    with open(path, "rb") as f, pytest.raises(AnalysisError) as caught:
        MediaAnalyzer().analyze(f)
    assert str(caught.value) == (
        f"{UNREADABLE} (ffprobe: moov atom not found; the file: Invalid data found when processing input)."
    )


class Canary:
    """An HTTP server that records every request it gets: a file must not make ffprobe call it."""

    def __init__(self):
        self.requests = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                canary.requests.append(self.path)
                self.send_error(404)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@needs_ffmpeg
@pytest.mark.parametrize(
    "make",
    [
        lambda url: (
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:10.0,\n{url}/segment.ts\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
        ),
        lambda url: f"ffconcat version 1.0\nfile '{url}/part.mp4'\nfile '/etc/passwd'\n",
    ],
    ids=["hls-playlist", "concat-script"],
)
def test_a_playlist_labelled_as_video_cannot_make_ffprobe_open_anything(make, tmp_path):
    with Canary() as canary:
        data = make(canary.url).encode()
        with pytest.raises(AnalysisError) as caught:
            MediaAnalyzer().analyze(io.BytesIO(data))
        path = tmp_path / "playlist.mp4"
        path.write_bytes(data)
        with open(path, "rb") as f, pytest.raises(AnalysisError):
            MediaAnalyzer().analyze(f)
    assert str(caught.value).startswith(UNREADABLE)
    assert canary.requests == []


@needs_ffmpeg
def test_a_failing_stream_is_not_called_a_corrupt_file(media):
    data = media.data("mp4")
    with pytest.raises(OSError, match="connection reset by storage") as caught:
        MediaAnalyzer().analyze(FailingStream(data, good=len(data) // 2))
    assert not isinstance(caught.value, AnalysisError)
    assert server_threads() == []


@needs_ffmpeg
def test_ffprobe_is_stopped_at_the_timeout_on_a_slow_stream(media):
    children_before = set(own_children())  # the session's servers (clamd, S3) are children too
    before = threading.active_count()
    stream = Counting(media.path("mp4"), delay=1.5)  # each read of the storage takes 1.5 s
    started = time.monotonic()
    with pytest.raises(AnalysisError) as caught:
        MediaAnalyzer(timeout=1).analyze(stream)
    elapsed = time.monotonic() - started
    assert str(caught.value) == "ffprobe took more than 1 s to read the file; it was stopped."
    assert 1 <= elapsed < 4, elapsed
    assert threading.active_count() == before
    assert set(own_children()) - children_before == set()


@needs_ffmpeg
def test_an_ffprobe_that_hangs_is_killed(media, tmp_path):
    children_before = set(own_children())  # the session's servers (clamd, S3) are children too
    program, log = fake_ffprobe(tmp_path, "import time; time.sleep(60)")
    started = time.monotonic()
    with open(media.path("wav"), "rb") as f, pytest.raises(AnalysisError) as caught:
        MediaAnalyzer(ffprobe=program, timeout=0.5).analyze(f)
    assert time.monotonic() - started < 3
    assert str(caught.value) == "ffprobe took more than 0.5 s to read the file; it was stopped."
    assert len(logged(log)) == 1
    assert set(own_children()) - children_before == set()


@needs_ffmpeg
def test_ffprobe_reading_more_than_the_limit_is_refused(media):
    data = media.data("mp4")
    assert len(data) > 4096
    with pytest.raises(AnalysisError) as caught:
        MediaAnalyzer(max_read_bytes=4096).analyze(io.BytesIO(data))
    assert str(caught.value) == (
        "The file is too large to analyze: ffprobe read more than 4,096 bytes of it without finding what it looked for."
    )
    assert MediaAnalyzer(max_read_bytes=len(data) * 4).analyze(io.BytesIO(data))["media.width"] == 320


@needs_ffmpeg
def test_a_proxy_in_the_environment_is_not_used(media, monkeypatch):
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # nothing listens there
    assert MediaAnalyzer().analyze(io.BytesIO(media.data("mp4")))["media.video_codec"] == "h264"


# --- how ffprobe reaches the bytes -------------------------------------------------------


@needs_ffmpeg
def test_a_local_file_is_handed_over_by_path_anything_else_is_served(media, tmp_path):
    program, log = fake_ffprobe(tmp_path)
    analyzer = MediaAnalyzer(ffprobe=program)
    data = media.data("wav")

    named = tmp_path / "named file: with spaces.wav"
    named.write_bytes(data)
    with open(named, "rb") as f:
        analyzer.analyze(f)
    with tempfile.NamedTemporaryFile(dir=tmp_path) as spool:
        spool.write(data)  # still in the file object's buffer: the analyzer flushes it
        analyzer.analyze(spool)
    analyzer.analyze(io.BytesIO(data))
    with tempfile.SpooledTemporaryFile(max_size=len(data) * 2) as spooled:
        spooled.write(data)
        analyzer.analyze(spooled)
        assert not spooled._rolled  # served from memory, not written to disk to get a file number
    with open(named, "rb") as f:
        (tmp_path / "other.wav").write_bytes(b"not this one")
        os.replace(tmp_path / "other.wav", named)  # the name now points at another file
        assert analyzer.analyze(f)["media.audio_codec"] == "pcm_s16le"

    urls = [run[-1] for run in logged(log)]
    assert urls[0] == f"file:{named}"
    assert urls[1].startswith(f"file:{tmp_path}/")
    for url in urls[2:]:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/[\w-]{43}", url), url
    assert len(set(urls[2:])) == 3  # a new port and path each time
    runs = logged(log)
    assert all(run[run.index("-protocol_whitelist") + 1] == "file" for run in runs[:2])
    assert all(run[run.index("-protocol_whitelist") + 1] == "http,tcp" for run in runs[2:])


LIVE_PROBE = """
import http.client, urllib.parse
url = urllib.parse.urlsplit(sys.argv[-1])

def ask(method, path, headers={}):
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return [response.status, response.getheader("Content-Range"), len(body)]

answers = {
    "another path": ask("GET", "/" + "A" * 43),
    "the root": ask("GET", "/"),
    "a longer path": ask("GET", url.path + "x"),
    "a shorter path": ask("GET", url.path[:-1]),
    "a query": ask("GET", url.path + "?x=1"),
    "a POST": ask("POST", url.path),
    "a PUT": ask("PUT", url.path),
    "HEAD": ask("HEAD", url.path),
    "a range": ask("GET", url.path, {"Range": "bytes=0-9"}),
}
with open(LOG, "a") as f:
    f.write(json.dumps(answers) + "\\n")
"""


@needs_ffmpeg
def test_the_loopback_server_serves_only_its_path_and_is_gone_after(media, tmp_path):
    children_before = set(own_children())  # the session's servers (clamd, S3) are children too
    program, log = fake_ffprobe(tmp_path, LIVE_PROBE)
    data = media.data("mp4")
    before = threading.active_count()
    metadata = MediaAnalyzer(ffprobe=program).analyze(io.BytesIO(data))
    assert metadata["media.width"] == 320
    arguments, answers = logged(log)
    size = len(data)
    assert answers == {
        "another path": [404, None, answers["another path"][2]],
        "the root": [404, None, answers["the root"][2]],
        "a longer path": [404, None, answers["a longer path"][2]],
        "a shorter path": [404, None, answers["a shorter path"][2]],
        "a query": [404, None, answers["a query"][2]],
        "a POST": [501, None, answers["a POST"][2]],
        "a PUT": [501, None, answers["a PUT"][2]],
        "HEAD": [200, None, 0],
        "a range": [206, f"bytes 0-9/{size}", 10],
    }
    # Gone: the port is closed, every thread ended, ffprobe reaped.
    assert refused(int(re.search(r":(\d+)/", arguments[-1])[1]))
    assert threading.active_count() == before
    assert server_threads() == []
    assert set(own_children()) - children_before == set()


# --- the loopback server on its own ------------------------------------------------------


def request(url, method="GET", headers=None):
    parts = http.client.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    connection.request(method, parts.path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


DATA = bytes(range(256)) * 1000  # 256,000 bytes


def test_served_stream_answers_ranges():
    with serve_stream(ReadGuard(io.BytesIO(DATA)), max_bytes=10**9, timeout=5) as server:
        response, body = request(server.url)
        assert (response.status, body) == (200, DATA)
        assert response.getheader("Accept-Ranges") == "bytes"
        assert response.getheader("Content-Length") == str(len(DATA))

        response, body = request(server.url, headers={"Range": "bytes=1000-1999"})
        assert (response.status, body) == (206, DATA[1000:2000])
        assert response.getheader("Content-Range") == f"bytes 1000-1999/{len(DATA)}"

        response, body = request(server.url, headers={"Range": "bytes=255990-"})
        assert (response.status, body) == (206, DATA[255990:])

        response, body = request(server.url, headers={"Range": "bytes=-16"})
        assert (response.status, body) == (206, DATA[-16:])

        response, body = request(server.url, headers={"Range": f"bytes={len(DATA)}-"})
        assert (response.status, body) == (416, b"")
        assert response.getheader("Content-Range") == f"bytes */{len(DATA)}"

        response, body = request(server.url, headers={"Range": "bytes=0-1,5-6"})  # several: the whole file
        assert (response.status, body) == (200, DATA)

        response, body = request(server.url, "HEAD", headers={"Range": "bytes=10-19"})
        assert (response.status, body, response.getheader("Content-Length")) == (206, b"", "10")

        assert request(server.url.rsplit("/", 1)[0] + "/guess")[0].status == 404
        assert request(server.url, "DELETE")[0].status == 501
        port = server.server_address[1]
    assert refused(port)


def test_concurrent_ranges_get_their_own_bytes():
    def fetch(start, results):
        results[start] = request(server.url, headers={"Range": f"bytes={start}-{start + 99_999}"})[1]

    results = {}
    with serve_stream(ReadGuard(io.BytesIO(DATA)), max_bytes=10**9, timeout=5) as server:
        threads = [threading.Thread(target=fetch, args=(start, results)) for start in (0, 50_000, 120_000, 150_000)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == {start: DATA[start : start + 100_000] for start in (0, 50_000, 120_000, 150_000)}


def test_served_bytes_stop_at_the_limit():
    with serve_stream(ReadGuard(io.BytesIO(DATA)), max_bytes=100_000, timeout=5) as server:
        assert request(server.url, headers={"Range": "bytes=0-65535"})[1] == DATA[:65536]
        assert not server.refused
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            request(server.url)
    assert server.refused
    assert server.served <= 100_000


def test_a_quiet_client_does_not_hold_the_server_open():
    before = threading.active_count()
    started = time.monotonic()
    with serve_stream(ReadGuard(io.BytesIO(DATA)), max_bytes=10**9, timeout=30) as server:
        quiet = socket.create_connection(server.server_address)  # connects, sends nothing
        time.sleep(0.2)
    assert time.monotonic() - started < 2
    assert threading.active_count() == before
    quiet.close()


@pytest.mark.parametrize(
    "header, size, expected",
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=90-1000", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        (" bytes = 5 - 6 ", 100, (5, 6)),
        ("bytes=9-5", 100, None),
        ("bytes=0-1,3-4", 100, None),
        ("items=0-9", 100, None),
        ("bytes=-", 100, None),
        ("bytes=abc-", 100, None),
    ],
)
def test_byte_range(header, size, expected):
    assert byte_range(header, size) == expected


@pytest.mark.parametrize("header, size", [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0), ("bytes=-5", 0)])
def test_unsatisfiable_byte_range(header, size):
    with pytest.raises(ValueError):
        byte_range(header, size)


# --- headers only: a large file -------------------------------------------------------------


@pytest.fixture(scope="session")
def large_videos(tmp_path_factory):
    """Two 255 MB MP4s of the same 24 s of noise (h264 lossless, with AAC): moov atom first, and last."""
    if FFMPEG is None or FFPROBE is None:
        pytest.skip("FFmpeg's ffmpeg and ffprobe are not installed (Debian/Ubuntu: apt-get install ffmpeg)")
    if not {"libx264", "aac"} <= encoders():
        pytest.skip("this ffmpeg has no libx264 or aac encoder")
    directory = tmp_path_factory.mktemp("large-media")
    seed = directory / "seed.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=640x360:r=25,noise=alls=100:allf=t+u", *AUDIO, "-t", 4,
           "-c:v", "libx264", "-preset", "ultrafast", "-qp", 0, "-pix_fmt", "yuv420p", "-c:a", "aac", seed)  # fmt: skip
    at_end, at_start = directory / "moov-at-end.mp4", directory / "moov-at-start.mp4"
    ffmpeg("-stream_loop", 5, "-i", seed, "-c", "copy", at_end)  # six times over, copied, not encoded
    ffmpeg("-stream_loop", 5, "-i", seed, "-c", "copy", "-movflags", "+faststart", at_start)
    seed.unlink()
    yield {"end": at_end, "start": at_start}
    at_end.unlink()
    at_start.unlink()


class PageCache:
    """Which pages of a file are in the page cache (Linux's mincore): what a process has read of it."""

    def __init__(self):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
        self.libc = libc

    def cached(self, path):
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            address = self.libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
            if address in (None, ctypes.c_void_p(-1).value):
                raise OSError(ctypes.get_errno(), "mmap failed")
            try:
                pages = ctypes.create_string_buffer((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
                if self.libc.mincore(address, size, pages) != 0:
                    raise OSError(ctypes.get_errno(), "mincore failed")
                return sum(page & 1 for page in pages.raw) * mmap.PAGESIZE
            finally:
                self.libc.munmap(address, size)

    def evict(self, path):
        with open(path, "rb") as f:
            os.fsync(f.fileno())  # pages not yet written back cannot be dropped
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


@needs_ffmpeg
@pytest.mark.slow
@pytest.mark.parametrize("moov", ["start", "end"])
def test_a_large_video_is_probed_from_its_headers_when_served(large_videos, moov):
    path = large_videos[moov]
    size = os.path.getsize(path)
    assert size > 250_000_000
    kinds = [kind for kind, _ in mp4_atoms(path)]
    assert kinds.index("moov") < kinds.index("mdat") if moov == "start" else kinds[-1] == "moov"
    stream = Counting(path)
    before = threading.active_count()
    tracemalloc.start()
    try:
        metadata = MediaAnalyzer().analyze(stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert metadata == {
        "media.duration": pytest.approx(24.0, abs=0.1),
        "media.width": 640,
        "media.height": 360,
        "media.video_codec": "h264",
        "media.audio_codec": "aac",
        "media.bit_rate": pytest.approx(size * 8 / 24, rel=0.01),
        "media.container": MP4,
        "media.has_audio": True,
        "media.has_video": True,
    }
    fraction = stream.bytes_read / size
    print(f"moov at the {moov}: {stream.bytes_read:,} of {size:,} bytes read ({fraction:.2%}), peak {peak:,} B")
    assert fraction < 0.03, fraction
    assert peak < 2 * 1024 * 1024, peak  # 64 KiB chunks, whatever the file's size
    assert threading.active_count() == before


@needs_ffmpeg
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the page cache with Linux's mincore")
@pytest.mark.parametrize("moov", ["start", "end"])
def test_a_large_video_is_probed_from_its_headers_by_path(large_videos, moov):
    path = large_videos[moov]
    size = os.path.getsize(path)
    cache = PageCache()
    cache.evict(path)
    if cache.cached(path) > 1024 * 1024:
        pytest.skip("this system keeps the file in its page cache; what ffprobe reads cannot be told")
    with open(path, "rb") as f:
        assert MediaAnalyzer().analyze(f)["media.width"] == 640
    read = cache.cached(path)  # ffprobe's reads, with the kernel's read-ahead
    print(f"moov at the {moov}, by path: {read:,} of {size:,} bytes read ({read / size:.2%})")
    assert read / size < 0.03


@needs_ffmpeg
@pytest.mark.slow
def test_a_large_video_in_a_store_is_probed_through_ranged_reads(large_videos, store):
    """As the pipeline reads a blob: a seekable reader that asks the store (disk, S3) for ranges on demand."""
    from django.core.files import File

    from django_attachments.stores import SeekableReader

    path = large_videos["end"]
    size = os.path.getsize(path)
    checksum = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            checksum.update(chunk)
        f.seek(0)
        identifiers = store.save(File(f), size=size, checksum=checksum.hexdigest(), content_type="video/mp4")
    reader = SeekableReader(store, identifiers, size)
    with io.BufferedReader(reader, buffer_size=64 * 1024) as stream:
        metadata = MediaAnalyzer().analyze(stream)
    assert (metadata["media.width"], metadata["media.height"], metadata["media.video_codec"]) == (640, 360, "h264")
    print(f"from the store: {reader.fetched:,} of {size:,} bytes fetched in {reader.requests} ranges")
    assert reader.fetched < size * 0.05, reader.fetched


# --- DICOM ----------------------------------------------------------------------------------

try:
    import pydicom
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
except ImportError:  # the media tests run without it
    pydicom = None

needs_pydicom = pytest.mark.skipif(pydicom is None, reason="pydicom is not installed (the 'dicom' extra)")

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"

#: Everything in the test file that says who, where or when: none of it may come out.
IDENTIFYING = {
    "PatientName": "Doe^Jane^Q",
    "PatientID": "MRN-0042-7731",
    "PatientBirthDate": "19700412",
    "PatientAddress": "12 Rue des Lilas, Lyon",
    "OtherPatientIDs": "NHS-943-476-5919",
    "InstitutionName": "St Elsewhere General",
    "InstitutionAddress": "1 Hospital Way, Boston",
    "ReferringPhysicianName": "House^Gregory",
    "OperatorsName": "Operator^Olga",
    "AccessionNumber": "ACC-99812",
    "StudyID": "STUDY-5521",
    "StudyDate": "20240229",
    "StudyTime": "101502",
    "SeriesDate": "20240301",
    "AcquisitionDateTime": "20240301101503",
    "StudyDescription": "Head trauma follow-up",
    "StationName": "CT-ROOM-3",
    "DeviceSerialNumber": "SN-77-ALPHA",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.4242.1",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.4242.2",
    "SOPInstanceUID": "1.2.826.0.1.3680043.8.498.4242.3",
    "FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.4242.4",
}
PRIVATE_NOTE = "patient says: call Jane at 555-0199"
REFERENCED_INSTANCE = "1.2.826.0.1.3680043.8.498.4242.9"


def dicom_file(
    transfer_syntax=EXPLICIT_LE,
    rows=4,
    columns=6,
    frames=None,
    samples=1,
    photometric="MONOCHROME2",
    modality="CT",
    sop_class=CT_IMAGE,
    pixels=True,
    undefined_sequence=False,
    trailing_sequence=False,
    **overrides,
):
    """A DICOM file (bytes) with a full set of identifying data, as a hospital's modality writes it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = IDENTIFYING["SOPInstanceUID"]
    meta.TransferSyntaxUID = transfer_syntax
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\x00" * 128)
    dataset.SOPClassUID = sop_class
    dataset.Modality = modality
    for keyword, value in IDENTIFYING.items():
        setattr(dataset, keyword, value)
    reference = Dataset()
    reference.ReferencedSOPClassUID = CT_IMAGE
    reference.ReferencedSOPInstanceUID = REFERENCED_INSTANCE
    dataset.ReferencedImageSequence = Sequence([reference])
    if undefined_sequence:
        dataset["ReferencedImageSequence"].is_undefined_length = True
        reference.is_undefined_length_sequence_item = True
    dataset.private_block(0x0009, "HOSPITAL NOTES", create=True).add_new(0x01, "LO", PRIVATE_NOTE)
    if rows is not None:
        dataset.SamplesPerPixel = samples
        dataset.PhotometricInterpretation = photometric
        dataset.Rows, dataset.Columns = rows, columns
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
        if samples > 1:
            dataset.PlanarConfiguration = 0
        if frames is not None:
            dataset.NumberOfFrames = frames
    if trailing_sequence:  # after the image attributes: pydicom never reaches it, the walk does
        request = Dataset()
        request.RequestedProcedureID = "RP-31337"
        dataset.RequestAttributesSequence = Sequence([request])
        dataset["RequestAttributesSequence"].is_undefined_length = True
        request.is_undefined_length_sequence_item = True
    if pixels and rows is not None:
        count = frames or 1
        if transfer_syntax == JPEG_BASELINE:
            dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
            dataset.PixelData = encapsulate([b"\xff\xd8fake jpeg frame %d\xff\xd9" % n for n in range(count)])
            dataset["PixelData"].VR = "OB"
            dataset["PixelData"].is_undefined_length = True
        else:
            dataset.PixelData = b"\x01\x00" * (rows * columns * samples * count)
            dataset["PixelData"].VR = "OW"
    for keyword, value in overrides.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    out = io.BytesIO()
    pydicom.dcmwrite(out, dataset, enforce_file_format=True)  # encoded as the file meta's transfer syntax says
    return out.getvalue()


def dicom_meta(
    modality="CT",
    rows=4,
    columns=6,
    frames=1,
    bits_allocated=16,
    bits_stored=12,
    samples=1,
    photometric="MONOCHROME2",
    transfer_syntax=EXPLICIT_LE,
    sop_class=CT_IMAGE,
):
    return {
        "dicom.modality": modality,
        "dicom.rows": rows,
        "dicom.columns": columns,
        "dicom.frames": frames,
        "dicom.bits_allocated": bits_allocated,
        "dicom.bits_stored": bits_stored,
        "dicom.samples_per_pixel": samples,
        "dicom.photometric_interpretation": photometric,
        "dicom.transfer_syntax": transfer_syntax,
        "dicom.sop_class": sop_class,
    }


class Recording(io.BytesIO):
    """A stream that remembers which byte ranges were read."""

    def __init__(self, data):
        super().__init__(data)
        self.spans = []

    def read(self, size=-1):
        start = self.tell()
        data = super().read(size)
        self.spans.append((start, start + len(data)))
        return data

    def was_read(self, start, end):
        return any(a < end and start < b for a, b in self.spans)


@needs_pydicom
@pytest.mark.parametrize(
    "content_type, expected",
    [
        ("application/dicom", True),
        ("APPLICATION/DICOM", True),
        ("image/png", False),
        ("application/octet-stream", False),
    ],
)
def test_dicom_accepts_by_sniffed_content_type(content_type, expected):
    assert DicomAnalyzer().accepts(content_type) is expected


@needs_pydicom
def test_libmagic_sniffs_a_dicom_file_as_application_dicom():
    assert sniff(dicom_file()[:1024]) == "application/dicom"
    assert DicomAnalyzer().accepts(sniff(dicom_file()))


@needs_pydicom
def test_dicom_metadata_and_nothing_identifying():
    data = dicom_file()
    for value in [*IDENTIFYING.values(), PRIVATE_NOTE, REFERENCED_INSTANCE]:
        assert value.encode() in data  # the file does hold it
    metadata = DicomAnalyzer().analyze(io.BytesIO(data))
    assert metadata == dicom_meta()
    text = json.dumps(metadata)
    for value in [*IDENTIFYING.values(), PRIVATE_NOTE, REFERENCED_INSTANCE, "Jane", "Doe", "Elsewhere", "4242"]:
        assert value not in text


@needs_pydicom
@pytest.mark.parametrize("undefined_sequence", [False, True], ids=["sequence-of-defined-length", "undefined-length"])
def test_identifying_values_are_never_even_read(undefined_sequence):
    data = dicom_file(undefined_sequence=undefined_sequence, trailing_sequence=True)
    stream = Recording(data)
    assert DicomAnalyzer().analyze(stream) == dicom_meta()
    for value in [*IDENTIFYING.values(), PRIVATE_NOTE, "RP-31337"]:
        encoded = value.encode()
        start = data.index(encoded) if value != IDENTIFYING["SOPInstanceUID"] else data.rindex(encoded)
        if value == IDENTIFYING["SOPInstanceUID"]:
            # The file meta's copy (MediaStorageSOPInstanceUID) is read with the meta group; the data set's is not.
            assert data.index(encoded) < data.index(b"DICM") + 200
        assert not stream.was_read(start, start + len(encoded)), value
    pixel_data = data.rindex(b"\x01\x00" * 24)
    assert not stream.was_read(pixel_data, len(data))  # the pixel data neither
    # Only a sequence of undefined length before the image attributes is parsed, to find its end.
    assert stream.was_read(data.index(REFERENCED_INSTANCE.encode()), data.index(REFERENCED_INSTANCE.encode()) + 1) is (
        undefined_sequence
    )


@needs_pydicom
@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: dicom_file(IMPLICIT_LE), dicom_meta(transfer_syntax=IMPLICIT_LE)),
        (lambda: dicom_file(EXPLICIT_BE), dicom_meta(transfer_syntax=EXPLICIT_BE)),
        (lambda: dicom_file(frames=3), dicom_meta(frames=3)),
        (
            lambda: dicom_file(
                rows=8,
                columns=10,
                samples=3,
                photometric="RGB",
                modality="XC",
                sop_class="1.2.840.10008.5.1.4.1.1.77.1.4",
            ),  # fmt: skip
            dicom_meta(
                rows=8,
                columns=10,
                samples=3,
                photometric="RGB",
                modality="XC",
                sop_class="1.2.840.10008.5.1.4.1.1.77.1.4",
            ),  # fmt: skip
        ),
        (
            lambda: dicom_file(JPEG_BASELINE, frames=5, photometric="YBR_FULL_422"),
            dicom_meta(
                frames=5, bits_allocated=8, bits_stored=8, photometric="YBR_FULL_422", transfer_syntax=JPEG_BASELINE
            ),  # fmt: skip
        ),
        (lambda: dicom_file(undefined_sequence=True, trailing_sequence=True), dicom_meta()),
        (
            lambda: dicom_file(rows=None, modality="SR", sop_class="1.2.840.10008.5.1.4.1.1.88.11"),
            dicom_meta(
                rows=None,
                columns=None,
                frames=None,
                bits_allocated=None,
                bits_stored=None,
                samples=None,
                photometric=None,
                modality="SR",
                sop_class="1.2.840.10008.5.1.4.1.1.88.11",
            ),  # fmt: skip
        ),
    ],
    ids=["implicit-vr", "big-endian", "multi-frame", "rgb", "jpeg-encapsulated", "undefined-lengths", "report"],
)
def test_dicom_variants(make, expected):
    assert DicomAnalyzer().analyze(io.BytesIO(make())) == expected


@needs_pydicom
@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"Modality": "DOE JANE"}, {"dicom.modality": None}),  # looks like a code, is not one of the standard's
        ({"Modality": "ct"}, {"dicom.modality": None}),
        ({"PhotometricInterpretation": "JANE"}, {"dicom.photometric_interpretation": None}),
        ({"SOPClassUID": "1.2.19700412.7731"}, {"dicom.sop_class": None}),  # not a class the standard defines
        ({"SOPClassUID": None}, {"dicom.sop_class": CT_IMAGE}),  # the file meta's MediaStorageSOPClassUID
        ({"NumberOfFrames": "0"}, {"dicom.frames": None}),
        ({"NumberOfFrames": "2\\3"}, {"dicom.frames": None}),
    ],
    ids=[
        "modality-a-name",
        "modality-lowercase",
        "photometric-made-up",
        "sop-class-made-up",
        "sop-class-from-the-file-meta",
        "zero-frames",
        "two-frame-counts",
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # pydicom's, as the test writes and reads such values
def test_a_value_that_is_not_the_standards_is_none(overrides, expected):
    metadata = DicomAnalyzer().analyze(io.BytesIO(dicom_file(**overrides)))
    assert metadata == {**dicom_meta(), **expected}
    assert "JANE" not in json.dumps(metadata) and "19700412" not in json.dumps(metadata)


@needs_pydicom
def test_a_private_sop_class_is_none_everywhere():
    metadata = DicomAnalyzer().analyze(io.BytesIO(dicom_file(sop_class="1.2.19700412.7731")))
    assert metadata["dicom.sop_class"] is None
    assert metadata["dicom.rows"] == 4


@needs_pydicom
def test_a_deflated_data_set_is_not_inflated():
    data = dicom_file()
    deflated_uid = b"1.2.840.10008.1.2.1.99"
    # The meta group names the deflated syntax (same length: the group length stays right); the rest is
    # not deflate data, and inflating it would fail -- it is not attempted.
    start = data.index(EXPLICIT_LE.encode() + b"\x00")
    patched = data[:start] + deflated_uid + data[start + len(EXPLICIT_LE) + 1 :]
    length_field = data.index(b"\x02\x00\x10\x00UI") + 6
    patched = patched[:length_field] + struct.pack("<H", len(deflated_uid)) + patched[length_field + 2 :]
    patched = fix_group_length(patched, len(deflated_uid) - len(EXPLICIT_LE) - 1)
    metadata = DicomAnalyzer().analyze(io.BytesIO(patched))
    assert metadata == {**dict.fromkeys(dicom_meta()), "dicom.transfer_syntax": deflated_uid.decode(),
                        "dicom.sop_class": CT_IMAGE}  # fmt: skip


def fix_group_length(data, delta):
    at = data.index(b"\x02\x00\x00\x00UL\x04\x00") + 8
    (length,) = struct.unpack("<I", data[at : at + 4])
    return data[:at] + struct.pack("<I", length + delta) + data[at + 4 :]


def cuts(data):
    """Offsets to cut a file at: every byte of the header, a few inside the pixel data."""
    pixel_data = data.rindex(b"\x01\x00" * 8)
    return [*range(132, pixel_data), pixel_data + 5, len(data) - 1]


def element_ends(data):
    """Where each top-level element of the data set ends: the cuts that leave a well-formed file."""
    start = dataset_start(data)
    transfer_syntax = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID
    stream = io.BytesIO(data[start:])
    ends = set()
    for _ in pydicom.filereader.data_element_generator(stream, transfer_syntax == IMPLICIT_LE, True):
        ends.add(start + stream.tell())  # the value (or whole sequence) has been read
    return ends


def dataset_start(data):
    (group_length,) = struct.unpack("<I", data[140:144])
    return 144 + group_length


@needs_pydicom
@pytest.mark.parametrize(
    "make",
    [
        dicom_file,
        lambda: dicom_file(IMPLICIT_LE),
        lambda: dicom_file(undefined_sequence=True, trailing_sequence=True),
    ],
    ids=["explicit", "implicit", "undefined-lengths"],
)
def test_a_dicom_file_cut_anywhere_is_refused_or_reads_as_a_file_without_an_image(make):
    data = make()
    accepted = []
    for cut in cuts(data):
        try:
            metadata = DicomAnalyzer().analyze(io.BytesIO(data[:cut]))
        except AnalysisError as exc:
            assert str(exc) in {
                "The DICOM file is truncated: its end is missing.",
                "The DICOM file is truncated: it declares an image but holds no pixel data.",
            }, (cut, str(exc))
        else:
            accepted.append(cut)
            # A file cut between two elements before the image attributes: well-formed, without an image.
            assert metadata["dicom.rows"] is None or metadata["dicom.columns"] is None, cut
    assert accepted
    assert set(accepted) <= element_ends(data)


@needs_pydicom
@pytest.mark.parametrize(
    "make, cut_at",
    [
        (dicom_file, lambda data: data.index(b"Doe^Jane") + 3),  # inside the patient's name
        (lambda: dicom_file(undefined_sequence=True), lambda data: data.index(REFERENCED_INSTANCE.encode()) + 5),
        (lambda: dicom_file(trailing_sequence=True), lambda data: data.index(b"RP-31337") + 2),
        (lambda: dicom_file(JPEG_BASELINE, frames=3), lambda data: data.rindex(b"fake jpeg frame 2")),
        (dicom_file, lambda data: len(data) - 1),  # the pixel data's last byte
    ],
    ids=["patient-name", "undefined-sequence", "sequence-after-the-image-attributes", "jpeg-fragment", "last-byte"],
)
def test_a_truncated_dicom_file_is_refused(make, cut_at):
    data = make()
    with pytest.raises(AnalysisError) as caught:
        DicomAnalyzer().analyze(io.BytesIO(data[: cut_at(data)]))
    assert str(caught.value) == "The DICOM file is truncated: its end is missing."


@needs_pydicom
def test_an_image_without_pixel_data_is_truncated():
    with pytest.raises(AnalysisError) as caught:
        DicomAnalyzer().analyze(io.BytesIO(dicom_file(pixels=False)))
    assert str(caught.value) == "The DICOM file is truncated: it declares an image but holds no pixel data."


@needs_pydicom
@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "The file is not a DICOM file: it has no 'DICM' marker after a 128-byte preamble."),
        (b"\x00" * 128 + b"DIC", "The file is not a DICOM file: it has no 'DICM' marker after a 128-byte preamble."),
        (b"\x00" * 200, "The file is not a DICOM file: it has no 'DICM' marker after a 128-byte preamble."),
        (b"\x00" * 128 + b"DICM", "The DICOM file is truncated: its end is missing."),
        (
            b"\x00" * 128 + b"DICM" + b"this is not a DICOM header at all, whatever its magic says" * 20,
            "The file is not a readable DICOM file: its header is corrupt.",
        ),
        (
            b"\x00" * 128 + b"DICM" + random.Random(11).randbytes(5000),
            "The file is not a readable DICOM file: its header is corrupt.",
        ),
    ],
    ids=["empty", "short-marker", "no-marker", "marker-only", "text-after-the-marker", "random-after-the-marker"],
)
def test_not_dicom_is_an_analysis_error(data, message):
    assert sniff(data) == "application/dicom" or b"DICM" not in data
    with pytest.raises(AnalysisError) as caught:
        DicomAnalyzer().analyze(io.BytesIO(data))
    assert str(caught.value) == message


@needs_pydicom
def test_a_header_larger_than_the_limit_is_refused():
    reference = Dataset()
    reference.ReferencedSOPClassUID = CT_IMAGE
    reference.ReferencedSOPInstanceUID = REFERENCED_INSTANCE
    data = dicom_file(undefined_sequence=True, ReferencedImageSequence=Sequence([reference] * 2000))
    assert DicomAnalyzer().analyze(io.BytesIO(data)) == dicom_meta()
    with pytest.raises(AnalysisError) as caught:
        DicomAnalyzer(max_header_size=20_000).analyze(io.BytesIO(data))
    assert str(caught.value) == (
        "The DICOM header is larger than the 20,000 bytes that may be read before its image attributes; "
        "it was not read further."
    )


@needs_pydicom
def test_a_large_dicom_is_read_in_bounded_time_and_memory():
    data = dicom_file(rows=1024, columns=1024, frames=40)  # 80 MB of pixel data
    stream = Recording(data)
    tracemalloc.start()
    try:
        started = time.perf_counter()
        metadata = DicomAnalyzer().analyze(stream)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert metadata == dicom_meta(rows=1024, columns=1024, frames=40)
    assert sum(end - start for start, end in stream.spans) < 4096
    assert peak < 512 * 1024, peak
    assert elapsed < 0.5


@needs_pydicom
def test_dicom_a_failing_stream_is_not_called_a_corrupt_file():
    data = dicom_file()
    with pytest.raises(OSError, match="connection reset by storage") as caught:
        DicomAnalyzer().analyze(FailingStream(data, good=400))
    assert not isinstance(caught.value, AnalysisError)


@needs_pydicom
def test_dicom_refuses_a_stream_that_cannot_seek():
    with pytest.raises(TypeError, match="needs a seekable stream"):
        DicomAnalyzer().analyze(OneWay(dicom_file()))


@needs_pydicom
def test_dicom_stream_is_read_from_its_start_and_left_open():
    stream = io.BytesIO(dicom_file())
    stream.seek(0, io.SEEK_END)
    assert DicomAnalyzer().analyze(stream) == dicom_meta()
    assert not stream.closed


@needs_pydicom
def test_a_missing_pydicom_is_reported_naming_the_extra(monkeypatch):
    reason = "DicomAnalyzer needs pydicom, which is not installed (install the 'dicom' extra)."
    assert DicomAnalyzer().unavailable_reason() is None
    monkeypatch.setitem(sys.modules, "pydicom", None)
    assert DicomAnalyzer().accepts("application/dicom")
    assert DicomAnalyzer().unavailable_reason() == reason
    with pytest.raises(AnalysisUnavailable) as caught:
        DicomAnalyzer().analyze(io.BytesIO(dicom_file.__doc__.encode()))
    assert str(caught.value) == reason


@needs_pydicom
def test_dicom_limit_must_be_positive():
    with pytest.raises(ValueError, match="must be positive"):
        DicomAnalyzer(max_header_size=0)
