"""The scanner contract and the clamd scanner, against a real clamd (tests/clamd.py) on a unix
socket and on TCP: verdicts, chunking, flat memory, clamd's StreamMaxLength, and every way a scan
can fail, none of which may ever read as clean."""

from __future__ import annotations

import ast
import io
import os
import signal
import socket
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import django_attachments.processing
from django_attachments.exceptions import AttachmentError, AttachmentsImproperlyConfigured, StorageError
from django_attachments.processing.scanners import (
    ClamdScanner,
    ScanError,
    Scanner,
    ScanResult,
    ScanTooLarge,
)
from django_attachments.stores.base import RangeReader
from tests import clamd as clamd_helpers
from tests import servers
from tests.clamd import EICAR, EICAR_FOUND, MARKER, MARKER_FOUND, STREAM_MAX_LENGTH, running_clamd

MiB = 1024 * 1024


@pytest.fixture(scope="session")
def clamd(tmp_path_factory):
    """The session's clamd (unix socket and TCP), with the test signatures."""
    yield from running_clamd(tmp_path_factory)


@pytest.fixture
def own_clamd(tmp_path_factory):
    """A clamd of the test's own, which it may stop or freeze."""
    yield from running_clamd(tmp_path_factory, "own-clamd")


def unix_scanner(clamd: servers.Clamd, **options) -> ClamdScanner:
    return ClamdScanner.from_options({"socket": clamd.socket, **options})


def tcp_scanner(clamd: servers.Clamd, **options) -> ClamdScanner:
    return ClamdScanner.from_options({"host": clamd.host, "port": clamd.port, **options})


@pytest.fixture(params=["unix", "tcp"])
def make_scanner(request, clamd):
    """A function of options -> a scanner of the session's clamd, over a unix socket, then TCP."""
    connect = unix_scanner if request.param == "unix" else tcp_scanner
    return lambda **options: connect(clamd, **options)


def repeated(piece: bytes, total: int) -> Iterator[bytes]:
    """``total`` bytes as chunks of ``piece`` (the same object each time: the stream itself holds one chunk)."""
    sent = 0
    while sent < total:
        chunk = piece if total - sent >= len(piece) else piece[: total - sent]
        sent += len(chunk)
        yield chunk


# -- verdicts ----------------------------------------------------------------------------------


def test_eicar_is_found_with_its_signature(make_scanner):
    result = make_scanner().scan([EICAR])

    assert result == ScanResult(
        clean=False, signature=EICAR_FOUND, scanner="clamd", size=68, detail=f"stream: {EICAR_FOUND} FOUND"
    )


def test_clean_bytes_are_clean(make_scanner):
    data = b"Patient letter, page 1.\n" * 1000

    result = make_scanner().scan([data])

    assert (result.clean, result.signature, result.scanner, result.size) == (True, None, "clamd", len(data))
    assert result.detail == "stream: OK"


def test_an_empty_stream_is_clean(make_scanner):
    result = make_scanner().scan([])
    assert result == ScanResult(clean=True, signature=None, scanner="clamd", size=0, detail="stream: OK")


def test_eicar_with_one_byte_more_is_not_eicar(make_scanner):
    """The EICAR signature is a hash of the whole stream: every byte counts, the last one too."""
    assert make_scanner().scan([EICAR, b"\n"]).clean
    assert make_scanner().scan([EICAR[:-1]]).clean


@pytest.mark.parametrize("chunk_size", [1, 5, 67, 68, 69, 64 * 1024])
def test_eicar_split_across_chunks_is_found(make_scanner, chunk_size):
    """One-byte pieces in, chunks of every size out: each boundary falls inside EICAR somewhere."""
    pieces = [EICAR[i : i + 1] for i in range(len(EICAR))]

    result = make_scanner(chunk_size=chunk_size).scan(iter(pieces))

    assert (result.clean, result.signature, result.size) == (False, EICAR_FOUND, 68)


def test_pieces_larger_than_a_chunk_are_split(make_scanner):
    stream = [EICAR[:50], EICAR[50:]]
    assert make_scanner(chunk_size=16).scan(stream).signature == EICAR_FOUND


def test_a_marker_across_a_chunk_boundary_deep_in_a_stream_is_found(make_scanner):
    """A body signature 8 MiB in, straddling two chunks, in a stream of 16 MiB."""
    chunk = 64 * 1024
    before = 8 * MiB - len(MARKER) // 2  # so that the marker spans the chunk boundary at 8 MiB
    stream = [*repeated(b"\0" * chunk, before), MARKER, *repeated(b"\x20" * chunk, 8 * MiB)]

    result = make_scanner(chunk_size=chunk).scan(iter(stream))

    assert (result.clean, result.signature, result.size) == (False, MARKER_FOUND, before + len(MARKER) + 8 * MiB)


def test_a_range_reader_and_a_file_object_are_streams(clamd):
    """``RangeReader.chunks()``, the stores' streams; a file object is read in chunks, never by lines."""
    scanner = unix_scanner(clamd, chunk_size=10)
    reader = RangeReader(io.BytesIO(EICAR + b"trailing bytes past the range"), length=len(EICAR))

    assert scanner.scan(reader.chunks(7)).signature == EICAR_FOUND
    assert scanner.scan(io.BytesIO(EICAR)).signature == EICAR_FOUND
    assert scanner.scan(EICAR).signature == EICAR_FOUND  # bytes, as one chunk
    assert scanner.scan(bytearray(b"clean")).clean


def test_a_large_clean_stream_is_scanned_at_flat_memory(clamd):
    """50 MiB through the scanner, which holds one chunk at a time (tracemalloc's peak)."""
    chunk_size = 64 * 1024
    piece = b"\x20" * (256 * 1024)  # made before tracing: the stream's own memory
    scanner = unix_scanner(clamd, chunk_size=chunk_size)
    stream = repeated(piece, 50 * MiB)

    tracemalloc.start()
    try:
        result = scanner.scan(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (result.clean, result.size) == (True, 50 * MiB)
    assert peak < 2 * chunk_size, f"the scan held {peak} bytes at its peak, for chunks of {chunk_size}"


# -- clamd's StreamMaxLength -------------------------------------------------------------------


def test_a_stream_over_stream_max_length_is_refused_not_clean(make_scanner):
    sent = 0

    def stream():
        nonlocal sent
        for chunk in repeated(b"\0" * MiB, STREAM_MAX_LENGTH + 16 * MiB):
            sent += len(chunk)
            yield chunk

    with pytest.raises(ScanTooLarge) as caught:
        make_scanner().scan(stream())

    assert "StreamMaxLength" in str(caught.value)
    assert caught.value.code == "scan_too_large"
    assert isinstance(caught.value, ScanError) and isinstance(caught.value, AttachmentError)
    # It stopped soon after clamd refused, instead of sending the rest for nothing.
    assert STREAM_MAX_LENGTH < sent < STREAM_MAX_LENGTH + 8 * MiB


def test_a_stream_of_exactly_stream_max_length_is_scanned(clamd):
    result = unix_scanner(clamd, chunk_size=MiB).scan(repeated(b"\0" * MiB, STREAM_MAX_LENGTH))
    assert (result.clean, result.size) == (True, STREAM_MAX_LENGTH)


# -- no daemon, a stopped one, a hung one: an error, quickly --------------------------------------


def test_a_missing_socket_path_is_an_error(tmp_path):
    scanner = ClamdScanner.from_options({"socket": str(tmp_path / "no-clamd.sock"), "timeout": 2})
    started = time.monotonic()

    with pytest.raises(ScanError, match=r"Cannot reach clamd at unix:.*no-clamd\.sock: No such file"):
        scanner.scan([EICAR])
    with pytest.raises(ScanError, match="Cannot reach clamd"):
        scanner.ping()

    assert time.monotonic() - started < 1


def test_a_closed_port_is_an_error():
    scanner = ClamdScanner.from_options({"host": "127.0.0.1", "port": servers.free_port(), "timeout": 2})
    started = time.monotonic()

    with pytest.raises(ScanError, match="Cannot reach clamd at 127.0.0.1:[0-9]+: Connection refused"):
        scanner.scan([b"clean"])
    with pytest.raises(ScanError, match="Connection refused"):
        scanner.version()

    assert time.monotonic() - started < 1


def test_a_stopped_daemon_is_an_error(own_clamd):
    scanners = [unix_scanner(own_clamd, timeout=2), tcp_scanner(own_clamd, timeout=2)]
    for scanner in scanners:
        assert scanner.scan([b"clean"]).clean

    servers.stop(own_clamd.proc)
    started = time.monotonic()

    for scanner in scanners:
        with pytest.raises(ScanError, match="Cannot reach clamd"):
            scanner.scan([b"clean"])
        with pytest.raises(ScanError):
            scanner.ping()
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_hung_daemon_times_out(own_clamd, transport):
    """A daemon that accepts but reads and answers nothing (frozen with SIGSTOP): an error after ``timeout``."""
    connect = unix_scanner if transport == "unix" else tcp_scanner
    scanner = connect(own_clamd, timeout=0.5)
    os.kill(own_clamd.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ScanError, match=r"took no more of the stream for 0\.5 s"):
            scanner.scan(repeated(b"\0" * MiB, 32 * MiB))  # more than the sockets' buffers hold
        with pytest.raises(ScanError, match=r"did not answer PING within 0\.5 s"):
            scanner.ping()
        assert time.monotonic() - started < 3
    finally:
        os.kill(own_clamd.proc.pid, signal.SIGCONT)


def test_no_verdict_within_scan_timeout_is_an_error(own_clamd):
    """The whole stream sent, then no answer (clamd frozen before it scans): an error after ``scan_timeout``."""
    scanner = unix_scanner(own_clamd, timeout=5, scan_timeout=0.5)
    os.kill(own_clamd.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ScanError, match=r"gave no verdict within 0\.5 s of the stream's end \(68 bytes\)"):
            scanner.scan([EICAR])  # small enough for the socket's buffer
        assert time.monotonic() - started < 3
    finally:
        os.kill(own_clamd.proc.pid, signal.SIGCONT)


class FakeClamd:
    """A peer on a unix socket that reads a command and its stream, then answers ``reply`` and closes."""

    def __init__(self, path: str, reply: bytes) -> None:
        self.reply = reply
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            received = b""
            while not received.endswith(b"\0\0\0\0") and not received.endswith(b"PING\0"):
                part = conn.recv(65536)
                if not part:
                    break
                received += part
            conn.sendall(self.reply)

    def close(self) -> None:
        self.thread.join(5)
        self.listener.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # closes without a word
        b"stream: Can't allocate memory ERROR\0",
        b"stream: OKAY\0",
        b"stream:  FOUND\0",  # a FOUND without a name
        b"1: stream: OK\0",  # a session's answer, not ours
        b"PONG\0",
        b"x" * 5000,  # longer than any answer of clamd
    ],
)
def test_any_other_answer_is_an_error_never_clean(tmp_path, reply):
    fake = FakeClamd(str(tmp_path / "fake.sock"), reply)
    try:
        with pytest.raises(ScanError):
            ClamdScanner.from_options({"socket": str(tmp_path / "fake.sock"), "timeout": 2}).scan([b"clean"])
    finally:
        fake.close()


def test_an_answer_before_the_end_stops_the_stream(tmp_path):
    """clamd answers early only to refuse; whatever it says then, the scanner stops sending and raises."""
    path = str(tmp_path / "fake.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def refuse() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"INSTREAM size limit exceeded. ERROR\0")
            # Then take whatever comes, until the scanner hangs up: it must notice the
            # answer itself, not a full buffer or a closed socket.
            while conn.recv(1024 * 1024):
                pass

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    sent = 0

    def stream():
        nonlocal sent
        for chunk in repeated(b"\0" * 1024, 64 * MiB):
            sent += len(chunk)
            yield chunk

    try:
        with pytest.raises(ScanTooLarge):
            ClamdScanner.from_options({"socket": path, "chunk_size": 1024, "timeout": 5}).scan(stream())
        assert sent < 8 * MiB
    finally:
        thread.join(5)
        listener.close()


def test_errors_of_the_stream_itself_propagate(clamd):
    """A storage failing mid-read is the storage's error (an OSError too), not the scanner's."""

    def stream():
        yield b"some bytes"
        raise StorageError("the storage went away")

    with pytest.raises(StorageError, match="the storage went away") as caught:
        unix_scanner(clamd).scan(stream())
    assert not isinstance(caught.value, ScanError)


def test_a_stream_of_text_is_refused(clamd):
    with pytest.raises(TypeError, match="stream of bytes chunks, not of str"):
        unix_scanner(clamd).scan(iter(["text"]))


# -- ping and version ------------------------------------------------------------------------------


def test_ping_and_version(make_scanner):
    scanner = make_scanner()
    installed = subprocess.run(
        [servers.clamd_binary() or "clamd", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()  # "ClamAV 1.4.6"

    assert scanner.ping() is None
    assert scanner.version().startswith(installed)


# -- the contract and the options ----------------------------------------------------------------------


def test_a_result_is_clean_or_names_a_signature():
    with pytest.raises(ValueError):
        ScanResult(clean=True, signature="Eicar", scanner="x", size=1)
    with pytest.raises(ValueError):
        ScanResult(clean=False, signature=None, scanner="x", size=1)
    with pytest.raises(ValueError):
        ScanResult(clean=False, signature="", scanner="x", size=1)


def test_a_scanner_must_provide_scan():
    with pytest.raises(NotImplementedError, match=r"\.scan\(\) must be overridden"):
        Scanner().scan([b""])


def test_scan_errors_tell_clients_nothing_of_the_daemon():
    assert (ScanError.code, ScanError.status_code) == ("scan_unavailable", 503)
    assert "unix:" not in (ScanError.public_detail or "") and ScanError.public_detail
    assert (ScanTooLarge.code, ScanTooLarge.status_code) == ("scan_too_large", 413)
    assert issubclass(ScanTooLarge, ValueError)  # a 4xx is a client-fault type, as the package's errors are
    assert not issubclass(ScanError, (ValueError, LookupError))


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, r"\['socket'\] must be the path of clamd's unix socket \(or set 'host' and 'port' instead\), not None"),
        ({"socket": ""}, r"\['socket'\] must be the path of clamd's unix socket, not ''"),
        ({"socket": "/s", "host": "h"}, r"\['host'\] must be None when 'socket' is set"),
        ({"host": "h", "port": 0}, r"\['port'\] must be a TCP port number from 1 to 65535, not 0"),
        ({"host": "h", "port": "3310"}, r"\['port'\] must be a TCP port number"),
        ({"socket": "/s", "timeout": 0}, r"\['timeout'\] must be a number of seconds > 0, not 0"),
        ({"socket": "/s", "scan_timeout": -1}, r"\['scan_timeout'\] must be a number of seconds > 0"),
        ({"socket": "/s", "chunk_size": 0}, r"\['chunk_size'\] must be an integer from 1 to 16777216"),
        ({"socket": "/s", "chunk_size": 32 * MiB}, r"\['chunk_size'\] must be an integer from 1 to 16777216"),
        ({"sockets": "/t"}, r"\['sockets'\] is not an option of ClamdScanner; its options are: socket, host"),
    ],
)
def test_wrong_options_name_the_key(options, message):
    with pytest.raises(AttachmentsImproperlyConfigured, match=r"^SCANNER\['OPTIONS'\]" + message):
        ClamdScanner.from_options(options, where="SCANNER['OPTIONS']")


def test_options_have_defaults_and_an_address():
    scanner = ClamdScanner.from_options({"host": "::1"})
    assert (scanner.options.port, scanner.options.timeout, scanner.options.chunk_size) == (3310, 10.0, 65536)
    assert scanner.address == "[::1]:3310"
    assert ClamdScanner.from_options({"socket": "/run/clamd.sock"}).address == "unix:/run/clamd.sock"


def imports_of(path: Path, package: str) -> set[str]:
    """The modules a file of ``package`` imports, relative imports resolved."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_processing_imports_no_models_services_or_stores():
    """processing/ is pure: stream in, data out (the arrows of the design run toward it, never from it)."""
    root = Path(django_attachments.processing.__file__).parent
    forbidden = ("django.db", *(f"django_attachments.{name}" for name in ("models", "services", "stores", "tasks")))
    offenders = []
    files = sorted(root.rglob("*.py"))
    assert len(files) >= 4
    for path in files:
        parts = path.relative_to(root.parent.parent).with_suffix("").parts
        package = ".".join(parts if path.name == "__init__.py" else parts[:-1]).removesuffix(".__init__")
        for module in imports_of(path, package):
            if module.startswith(forbidden):
                offenders.append(f"{path.relative_to(root)} imports {module}")
    assert offenders == []


def test_a_stream_over_clamds_file_limit_is_too_large_never_clean(tmp_path_factory):
    """Past MaxFileSize clamd answers OK without scanning, unless AlertExceedsMax: then it is not clean either."""
    clamd_helpers.skip_without_clamd()
    data = b"\x00" * (3 * 1024 * 1024) + clamd_helpers.MARKER
    with servers.clamd_server(
        tmp_path_factory.mktemp("limits"), clamd_helpers.databases(), stream_max_length="8M", max_file_size="1M"
    ) as clamd:
        scanner = ClamdScanner.from_options({"socket": clamd.socket})
        with pytest.raises(ScanTooLarge, match="Heuristics.Limits.Exceeded"):
            scanner.scan(io.BytesIO(data))
    # What the docs warn of: the same daemon without AlertExceedsMax calls the file clean.
    with servers.clamd_server(
        tmp_path_factory.mktemp("limits-silent"),
        clamd_helpers.databases(),
        stream_max_length="8M",
        max_file_size="1M",
        alert_exceeds_max=False,
    ) as silent:
        result = ClamdScanner.from_options({"socket": silent.socket}).scan(io.BytesIO(data))
        assert result.clean  # why AlertExceedsMax yes is required
