"""Uploading 1 GiB through the API to a live server keeps the server's memory flat; direct uploads too.

A bound, not a speed test. The example project runs with ``runserver`` in a
subprocess (:func:`tests.live.example_server`); this test streams a 1 GiB
``multipart/form-data`` body to ``POST /api/attachments/`` with a plain
``http.client`` connection that generates the file on the fly, 1 MiB at a
time, hashing it as it goes, so the client never holds the file either. The
server's peak RSS (``VmHWM`` of ``/proc/<pid>/status``) is read after a small
warm-up upload and download (imports, libmagic, the first queries), after the
big upload and after streaming the file back; neither may grow it by 64 MiB.
Where the kernel allows it (root, Linux), the peak is reset first by writing
``5`` to ``/proc/<pid>/clear_refs``, so the baseline is the warm server's RSS.
Run with ``-s`` to see the figures::

    .venv/bin/python -m pytest tests/test_live_upload.py -s -q

Throughputs are printed for information only; nothing asserts on time.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest

from tests.conftest import make_bucket
from tests.live import example_server
from tests.servers import moto_server, reset_peak, roomy_tempdir, status_kib

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
GIB = 1024 * MIB
FILE_SIZE = GIB
CHUNK = MIB
BOUND_MIB = 64
#: The request is spooled to a temporary upload file, which is then moved into
#: the media folder (same file system): ~1 GiB, plus room for the database,
#: the log and a failed run's leftovers.
FREE_SPACE_NEEDED = 3.5 * GIB
#: Per socket operation: a guard against a hung server, not a speed assertion.
SOCKET_TIMEOUT = 600
#: These direct uploads test the one-request flow: above the 64 MiB default they would go in parts
#: (tests/test_live_multipart.py), so the threshold is raised to its maximum.
ONE_REQUEST = {"ATTACHMENTS_MULTIPART_THRESHOLD": str(5 * GIB)}
USERNAME, PASSWORD = "north", "north-demo"  # staff of "Northside Dental", from seed_demo
AUTH = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()


# -- reading the server's memory ------------------------------------------------


class RssSampler:
    """Polls VmRSS in a thread: when the peak is too high, shows when it happened."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.max_kib = 0
        self.max_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            try:
                rss = status_kib(self.pid, "VmRSS")
            except (OSError, RuntimeError):
                return
            if rss > self.max_kib:
                self.max_kib, self.max_at = rss, time.monotonic() - started
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- a streaming HTTP client ------------------------------------------------------


def random_chunks(size: int, chunk_size: int = CHUNK):
    """``size`` bytes of never-repeating random data, ``chunk_size`` at a time."""
    remaining = size
    while remaining:
        n = min(chunk_size, remaining)
        yield os.urandom(n)
        remaining -= n


def connect(base_url: str) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=SOCKET_TIMEOUT)


def get_json(base_url: str, path: str) -> tuple[int, object]:
    conn = connect(base_url)
    try:
        conn.request("GET", path, headers={"Authorization": AUTH, "Accept": "application/json"})
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else None
    finally:
        conn.close()


def upload(base_url: str, fields: dict[str, str], filename: str, size: int) -> tuple[int, object, str, float]:
    """POST a multipart body whose file part is ``size`` random bytes, generated while sending.

    Returns (status, parsed JSON body, SHA-256 of the bytes sent, seconds spent).
    ``Content-Length`` is exact and computed up front (runserver needs it; no
    chunked encoding), so nothing but one chunk is ever in memory.
    """
    boundary = f"----live-upload-{uuid.uuid4().hex}"
    preamble = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    preamble += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{boundary}--\r\n".encode()

    hasher = hashlib.sha256()
    conn = connect(base_url)
    started = time.monotonic()
    try:
        conn.putrequest("POST", "/api/attachments/")
        conn.putheader("Authorization", AUTH)
        conn.putheader("Accept", "application/json")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(preamble) + size + len(epilogue)))
        conn.endheaders()
        try:
            conn.send(preamble)
            for chunk in random_chunks(size):
                hasher.update(chunk)
                conn.send(chunk)
            conn.send(epilogue)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (e.g. 413): read its answer below
        response = conn.getresponse()
        body = response.read()
        elapsed = time.monotonic() - started
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body[:2000]
        return response.status, parsed, hasher.hexdigest(), elapsed
    finally:
        conn.close()


def download(base_url: str, url: str) -> tuple[int, int, str, float]:
    """GET ``url`` in 1 MiB reads, hashing: (status, bytes received, SHA-256, seconds)."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    hasher = hashlib.sha256()
    received = 0
    conn = connect(base_url)
    started = time.monotonic()
    try:
        conn.request("GET", path, headers={"Authorization": AUTH})
        response = conn.getresponse()
        while chunk := response.read(CHUNK):
            hasher.update(chunk)
            received += len(chunk)
        return response.status, received, hasher.hexdigest(), time.monotonic() - started
    finally:
        conn.close()


# -- the test ---------------------------------------------------------------------


@pytest.fixture
def workdir():
    """A temporary folder with room for the 1 GiB upload, removed afterwards."""
    with roomy_tempdir("attachments-live-upload-", FREE_SPACE_NEEDED) as base:
        (base / "tmp").mkdir()
        yield base


def patient_of_north(base_url: str) -> str:
    """The id of a patient of Northside Dental (the seed gives N-0001 an X-ray)."""
    status, body = get_json(base_url, "/api/attachments/?owner_type=patient")
    assert status == 200, f"listing as {USERNAME}: {status} {body}"
    results = body["results"] if isinstance(body, dict) else body
    assert results, f"seed_demo attached no file to a patient of {USERNAME}'s clinic: {body}"
    return str(results[0]["owner_id"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status (Linux)")
def test_live_upload_of_1_gib_keeps_server_memory_flat(workdir):
    env = {"ATTACHMENTS_MAX_UPLOAD_SIZE": str(2 * GIB), "TMPDIR": str(workdir / "tmp"), **ONE_REQUEST}
    with example_server(workdir, env=env) as server:
        pid, url = server.pid, server.url

        def log_tail() -> str:
            return server.log.read_text(errors="replace")[-3000:]

        owner_id = patient_of_north(url)
        fields = {"owner_type": "patient", "owner_id": owner_id, "name": "big"}

        # Warm-up: imports, libmagic, the upload handlers, the queries and the download path.
        status, body, sha, _ = upload(url, {**fields, "name": "warm-up"}, "warm-up.bin", 256 * 1024)
        assert status == 201, f"warm-up upload: {status} {body}\n{log_tail()}"
        assert body["checksum"] == sha
        status, received, read_sha, _ = download(url, body["download_url"])
        assert (status, received, read_sha) == (200, 256 * 1024, sha), log_tail()

        reset = reset_peak(pid)
        baseline = status_kib(pid, "VmHWM")
        rss_before = status_kib(pid, "VmRSS")

        with RssSampler(pid) as upload_sampler:
            status, body, sent_sha, upload_seconds = upload(url, fields, "big.bin", FILE_SIZE)
        after_upload = status_kib(pid, "VmHWM")
        upload_growth = (after_upload - baseline) / 1024
        upload_rate = FILE_SIZE / upload_seconds / 1e6

        spool_left = sorted(p.name for p in (workdir / "tmp").iterdir())

        figures = (
            f"1 GiB through the live API, bound {BOUND_MIB} MiB "
            f"(peak reset via clear_refs: {'yes' if reset else 'no'}): "
            f"baseline VmHWM {baseline / 1024:.1f} MiB (VmRSS {rss_before / 1024:.1f}); "
            f"upload grew the server's peak by {upload_growth:.1f} MiB "
            f"(sampled VmRSS max {upload_sampler.max_kib / 1024:.1f} MiB at {upload_sampler.max_at:.1f} s), "
            f"{upload_rate:.0f} MB/s in {upload_seconds:.1f} s"
        )
        print("\n" + figures)

        assert status == 201, f"{figures}\nupload answered {status}: {body}\n{log_tail()}"
        assert body["size"] == FILE_SIZE, f"{figures}\n{body}"
        assert body["checksum"] == sent_sha, f"{figures}\nsent {sent_sha}, stored {body['checksum']}"
        assert upload_growth < BOUND_MIB, figures

        if reset:  # the download's own peak, from the RSS it starts at
            reset_peak(pid)
        before_download = status_kib(pid, "VmHWM")
        with RssSampler(pid) as download_sampler:
            status, received, read_sha, download_seconds = download(url, body["download_url"])
        after_download = status_kib(pid, "VmHWM")
        download_growth = (after_download - baseline) / 1024
        download_alone = (after_download - before_download) / 1024
        download_rate = received / download_seconds / 1e6

        figures += (
            f"; download peak {download_growth:.1f} MiB above the pre-upload baseline "
            f"({download_alone:.1f} MiB above its own start; sampled VmRSS max "
            f"{download_sampler.max_kib / 1024:.1f} MiB), {download_rate:.0f} MB/s in {download_seconds:.1f} s; "
            f"temporary files left in the server's TMPDIR: {spool_left or 'none'}"
        )
        print(figures)

        assert status == 200, f"{figures}\ndownload answered {status}\n{log_tail()}"
        assert received == FILE_SIZE, figures
        assert read_sha == sent_sha, f"{figures}\nsent {sent_sha}, read back {read_sha}"
        assert download_growth < BOUND_MIB, figures


# -- direct uploads: the body goes to the API's own upload URL (local disk) -------


def post_json(base_url: str, path: str, payload: dict | None = None) -> tuple[int, object]:
    conn = connect(base_url)
    try:
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"Authorization": AUTH, "Accept": "application/json", "Content-Type": "application/json"}
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def put_bytes(ticket: dict, chunks) -> tuple[int, bytes, float]:
    """PUT the chunks to the ticket's URL with exactly its headers, generating them while sending."""
    parts = urlsplit(ticket["url"])
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=SOCKET_TIMEOUT)
    started = time.monotonic()
    try:
        conn.putrequest(ticket["method"], f"{parts.path}?{parts.query}")
        for name, value in ticket["headers"].items():
            conn.putheader(name, value)
        conn.endheaders()
        for chunk in chunks:
            conn.send(chunk)
        response = conn.getresponse()
        return response.status, response.read(), time.monotonic() - started
    finally:
        conn.close()


def pregenerated(size: int, seed: bytes) -> tuple[str, object]:
    """SHA-256 of ``size`` reproducible pseudo-random bytes, and a factory that yields them again."""

    def chunks():
        block = hashlib.sha512(seed).digest() * (CHUNK // 64)
        for index in range(size // CHUNK):
            yield index.to_bytes(8, "big") + block[8:]
        if size % CHUNK:
            yield block[: size % CHUNK]

    hasher = hashlib.sha256()
    for chunk in chunks():
        hasher.update(chunk)
    return hasher.hexdigest(), chunks


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status (Linux)")
def test_live_direct_upload_of_1_gib_keeps_server_memory_flat(workdir):
    """Start, PUT 1 GiB to the API's upload URL with a real client, complete: memory stays flat.

    The body is streamed to a temporary file and hashed while it is written,
    so completing reads only the first bytes (to sniff the type) back.
    """
    env = {"ATTACHMENTS_MAX_UPLOAD_SIZE": str(2 * GIB), "TMPDIR": str(workdir / "tmp"), **ONE_REQUEST}
    with example_server(workdir, env=env) as server:
        pid, url = server.pid, server.url
        owner_id = patient_of_north(url)

        def start(size: int, checksum: str, filename: str) -> dict:
            status, body = post_json(
                url,
                "/api/attachments/uploads/",
                {
                    "owner_type": "patient",
                    "owner_id": owner_id,
                    "filename": filename,
                    "size": size,
                    "checksum": checksum,
                },
            )
            assert status == 201 and body["upload"], f"start: {status} {body}\n{server.log.read_text()[-3000:]}"
            return body["upload"]

        # Warm-up: the same three steps on 256 KiB.
        sha, chunks = pregenerated(256 * 1024, b"warm-up")
        ticket = start(256 * 1024, sha, "warm-up.bin")
        status, answer, _ = put_bytes(ticket, chunks())
        assert status == 204, answer
        status, body = post_json(url, urlsplit(ticket["complete_url"]).path)
        assert status == 201, body

        sha, chunks = pregenerated(FILE_SIZE, b"big")
        ticket = start(FILE_SIZE, sha, "big.bin")
        reset = reset_peak(pid)
        baseline = status_kib(pid, "VmHWM")
        status, answer, put_seconds = put_bytes(ticket, chunks())
        after_put = status_kib(pid, "VmHWM")
        started = time.monotonic()
        complete_status, body = post_json(url, urlsplit(ticket["complete_url"]).path)
        complete_seconds = time.monotonic() - started
        after_complete = status_kib(pid, "VmHWM")
        figures = (
            f"direct upload of 1 GiB to the API's upload URL, bound {BOUND_MIB} MiB "
            f"(peak reset: {'yes' if reset else 'no'}): baseline VmHWM {baseline / 1024:.1f} MiB; "
            f"PUT grew the peak by {(after_put - baseline) / 1024:.1f} MiB, "
            f"{FILE_SIZE / put_seconds / 1e6:.0f} MB/s in {put_seconds:.1f} s; complete took "
            f"{complete_seconds:.2f} s and the peak is {(after_complete - baseline) / 1024:.1f} MiB above the baseline"
        )
        print("\n" + figures)
        assert status == 204, f"{figures}\nPUT answered {status}: {answer[:2000]!r}"
        assert complete_status == 201, f"{figures}\ncomplete answered {complete_status}: {body}"
        assert body["attachment"]["checksum"] == sha and body["attachment"]["size"] == FILE_SIZE, body
        assert (after_put - baseline) / 1024 < BOUND_MIB, figures
        assert (after_complete - baseline) / 1024 < BOUND_MIB, figures
        assert not list((workdir / "tmp").iterdir()), "the PUT left temporary files behind"


def s3_env(workdir, endpoint: str, bucket: str) -> dict[str, str]:
    """The example project's environment for a bucket of moto's server as its storage."""
    return {
        "ATTACHMENTS_MAX_UPLOAD_SIZE": str(2 * GIB),
        "TMPDIR": str(workdir / "tmp"),
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status (Linux)")
def test_live_direct_upload_to_s3_is_verified_by_streaming_with_flat_memory(workdir):
    """The bytes go to S3 (moto's server) with the presigned PUT; the server never sees them until it verifies.

    moto reports no checksum of its own, so completing streams the whole
    object through SHA-256: memory must stay flat there too.
    """
    size = 256 * MIB
    with moto_server(workdir / "moto") as endpoint:
        bucket = make_bucket(endpoint)
        env = {**s3_env(workdir, endpoint, bucket), **ONE_REQUEST}
        with example_server(workdir / "server", env=env) as server:
            pid, url = server.pid, server.url
            owner_id = patient_of_north(url)
            sha, chunks = pregenerated(size, b"s3")
            status, body = post_json(
                url,
                "/api/attachments/uploads/",
                {"owner_type": "patient", "owner_id": owner_id, "filename": "big.bin", "size": size, "checksum": sha},
            )
            assert status == 201 and body["upload"], body
            ticket = body["upload"]
            assert ticket["url"].startswith(endpoint), ticket["url"]
            reset = reset_peak(pid)
            baseline = status_kib(pid, "VmHWM")
            status, answer, put_seconds = put_bytes(ticket, chunks())
            assert status == 200, answer[:2000]
            started = time.monotonic()
            complete_status, body = post_json(url, urlsplit(ticket["complete_url"]).path)
            complete_seconds = time.monotonic() - started
            growth = (status_kib(pid, "VmHWM") - baseline) / 1024
            figures = (
                f"direct upload of {size // MIB} MiB to S3 (moto) (peak reset: {'yes' if reset else 'no'}): "
                f"PUT {size / put_seconds / 1e6:.0f} MB/s; complete streamed the object through SHA-256 at "
                f"{size / complete_seconds / 1e6:.0f} MB/s ({complete_seconds:.1f} s); server peak +{growth:.1f} MiB"
            )
            print("\n" + figures)
            assert complete_status == 201, f"{figures}\n{body}\n{server.log.read_text()[-3000:]}"
            assert body["attachment"]["checksum"] == sha and body["attachment"]["size"] == size
            assert growth < BOUND_MIB, figures


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status (Linux)")
def test_live_api_upload_to_s3_goes_on_while_it_arrives_with_flat_memory(workdir):
    """An API upload to S3 (moto) is sent on in parts while its body arrives: memory stays flat, nothing is left.

    The parts (8 MiB, four in flight) are filled into buffers used again, so
    the server holds a few parts whatever the file size; the object is
    joined once, and the bucket holds no incomplete multipart upload.
    """
    import boto3

    size = 512 * MIB
    with moto_server(workdir / "moto") as endpoint:
        bucket = make_bucket(endpoint)
        env = s3_env(workdir, endpoint, bucket)
        with example_server(workdir / "server", env=env) as server:
            pid, url = server.pid, server.url
            fields = {"owner_type": "patient", "owner_id": patient_of_north(url), "name": "big"}
            status, body, _, _ = upload(url, {**fields, "name": "warm-up"}, "warm-up.bin", 32 * MIB)
            assert status == 201, body
            reset = reset_peak(pid)
            baseline = status_kib(pid, "VmHWM")
            status, body, sent_sha, seconds = upload(url, fields, "big.bin", size)
            growth = (status_kib(pid, "VmHWM") - baseline) / 1024
            figures = (
                f"API upload of {size // MIB} MiB to S3 (moto) as it arrives (peak reset: {'yes' if reset else 'no'}): "
                f"{size / seconds / 1e6:.0f} MB/s; server peak +{growth:.1f} MiB"
            )
            print("\n" + figures)
            assert status == 201, f"{figures}\n{body}\n{server.log.read_text()[-3000:]}"
            assert body["checksum"] == sent_sha and body["size"] == size
            assert growth < BOUND_MIB, figures
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        big = [obj for obj in objects if obj["Size"] == size]
        assert len(big) == 1 and big[0]["ETag"].strip('"').endswith("-64"), objects  # 64 parts of 8 MiB
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
