"""11. Multipart direct uploads (``multipart``): a large file sent in parts to SeaweedFS, next to boto3's upload_file.

One file of random bytes (``--multipart-size``, 2 GiB; 80 MiB with
``--quick``) is written once to the work folder, then sent to the same
SeaweedFS bucket, from this process, in turn (the order rotates per repeat):

- ``ours``: the multipart direct upload through the API of a live server
  (the benchmark project with ``BENCH_STORAGE=s3`` on SeaweedFS), by
  :class:`PipelinedClient`: start (size only, no whole SHA-256), each part's
  SHA-256 (two threads, reading the file by offset), the parts signed in
  batches (4, 16, 64, then 100) as their digests come in, each part PUT
  to its presigned URL (four at a time) while later parts are hashed, then
  complete (the server joins the parts and reads the object back for its
  SHA-256; on the project's inline task backend within the request, else by
  polling its 202);
- ``tests' client``: the same flow by ``tests.multipart_client`` (each batch
  of 100 parts hashed first, then sent), where that module is importable;
- ``upload_file`` (the anchor, what ``aws s3 cp`` does): boto3's
  ``upload_file`` of the file with the default ``TransferConfig`` (8 MiB
  parts, 10 threads);
- ``upload_file + SHA-256`` (a second anchor): the same with
  ``ExtraArgs={"ChecksumAlgorithm": "SHA256"}``, since our client hashes every
  part with SHA-256 too. Over plain HTTP botocore signs each part's payload
  with its SHA-256 either way; the hook :func:`watch_anchor` records what it
  sent, and the table says it.

Figures per case: the transfer's wall time (from the start request to the
last part's answer; for an anchor, ``upload_file`` itself), then the
server-side verification (the ``complete`` requests until the attachment
exists), and their total; the CPU time (``/proc/<pid>/stat``) of this
process, of SeaweedFS (``weed server``: master, volume, filer and S3 gateway
in one process) and of the Django worker, over each phase; the peak RSS
growth of the worker and of this process. Ratios are paired per repeat
(ours / anchor in the same repeat): the median, and the spread over the
repeats. Each repeat has a fresh SeaweedFS (and a server in front of it),
warmed up by a small upload of each kind, so that disk use stays at one
repeat's objects. Before each upload through the API the file's last 32
bytes are made unique, so that no upload is a dedup hit.

On local disk, for information: the same multipart flow to the project's
disk storage (the parts go to the API's own part URLs, through the worker,
and completion joins them), next to a single ``POST /api/attachments/`` of
the file (the anchor of the ``direct`` benchmark).

Sanity checks: every answer's status, every part's URL on SeaweedFS (S3) or
the API (disk) with the part's length, each attachment's SHA-256 and size
the file's, the anchors' objects of the file's size, and no multipart upload
left open in the bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.servers import seaweedfs_server

from .client import post_multipart
from .config import AWS_ENV, CHUNK, MIB, SOCKET_TIMEOUT, TAIL, log
from .context import Context
from .measure import Growth, PeakMeter, cpu_seconds, median, sync, worst
from .processes import Server, children_of, project_server
from .report import Table, fmt_mib, fmt_rate, fmt_s, fmt_size

try:  # the live tests' client; an extra row where it is there
    from tests.multipart_client import MultipartClient
except ImportError:
    MultipartClient = None  # type: ignore[assignment,misc]

DEFAULT_SIZE = 2 * 1024 * MIB
QUICK_SIZE = 80 * MIB  # 5 parts of 16 MiB: above the default MULTIPART_THRESHOLD (64 MiB)
WARM_SIZE = 64 * MIB + MIB  # the smallest multipart upload with the default settings, and a bit
SENDERS = 4  # parts on their way at once, as the tests' client and the packaged uploader send them
HASHERS = max(1, len(os.sched_getaffinity(0)))
MAX_BATCH = 100  # parts per signing request (the API's limit)
#: The Django worker's CPU time during a transfer counts as "near zero" up to this share of the transfer's wall time.
NEAR_ZERO = 0.01
OURS, TESTS, ANCHOR, ANCHOR_SHA = "ours", "tests' client", "upload_file", "upload_file + SHA-256"


class ScratchFile:
    """``size`` random bytes written once; the last TAIL bytes renewed on demand, the SHA-256 known without reading.

    ``chunks(offset, length)`` reads the file by offset, 1 MiB at a time into
    one buffer per call (so threads may read at once).
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        self._prefix = hashlib.sha256()
        with open(path, "wb") as out:
            remaining = size - TAIL
            while remaining:
                block = os.urandom(min(CHUNK, remaining))
                self._prefix.update(block)
                out.write(block)
                remaining -= len(block)
            out.write(b"-" * TAIL)
        self.fd = os.open(path, os.O_RDONLY)
        self.sha256 = self.renew_tail()

    def renew_tail(self) -> str:
        """Write new last bytes (a payload no upload has sent); the file's SHA-256."""
        tail = uuid.uuid4().hex.encode()[:TAIL].ljust(TAIL, b"-")
        with open(self.path, "r+b") as out:
            out.seek(self.size - TAIL)
            out.write(tail)
        hasher = self._prefix.copy()
        hasher.update(tail)
        self.sha256 = hasher.hexdigest()
        return self.sha256

    def chunks(self, offset: int = 0, length: int | None = None) -> Iterator[memoryview]:
        end = self.size if length is None else offset + length
        view = memoryview(bytearray(CHUNK))
        while offset < end:
            n = os.preadv(self.fd, [view[: min(CHUNK, end - offset)]], offset)
            if n <= 0:
                raise OSError(f"{self.path} is shorter than {end} bytes")
            yield view[:n]
            offset += n

    def close(self) -> None:
        os.close(self.fd)


# -- measuring -------------------------------------------------------------------------


@dataclass
class Phase:
    """One phase of one case: wall time, and CPU time and peak RSS growth of the processes involved."""

    seconds: float = 0.0
    client_cpu: float | None = None
    client_rss: Growth | None = None
    store_cpu: float | None = None
    worker_cpu: float | None = None
    worker_rss: Growth | None = None


class PhaseMeter:
    """Measures a Phase from start() to stop(): this process, SeaweedFS (if any) and the Django worker (if any)."""

    def __init__(self, worker_pid: int | None, store_pid: int | None) -> None:
        self.meters = {"client": PeakMeter(os.getpid())}
        if worker_pid:
            self.meters["worker"] = PeakMeter(worker_pid)
        self.store_pid = store_pid
        self.phase = Phase()

    def start(self) -> PhaseMeter:
        for meter in self.meters.values():
            meter.__enter__()
        self._store_cpu = cpu_seconds(self.store_pid) if self.store_pid else None
        self._started = time.perf_counter()
        return self

    def stop(self) -> Phase:
        self.phase.seconds = time.perf_counter() - self._started
        for meter in self.meters.values():
            meter.__exit__(None, None, None)
        if self.store_pid and self._store_cpu is not None:
            now = cpu_seconds(self.store_pid)
            self.phase.store_cpu = None if now is None else now - self._store_cpu
        self.phase.client_cpu, self.phase.client_rss = self.meters["client"].cpu, self.meters["client"].growth
        if "worker" in self.meters:
            self.phase.worker_cpu, self.phase.worker_rss = self.meters["worker"].cpu, self.meters["worker"].growth
        return self.phase


@dataclass
class Outcome:
    """One case of one repeat."""

    case: str
    transfer: Phase
    verify: Phase | None = None
    ok: bool = False
    parts: int = 0

    @property
    def total(self) -> float:
        return self.transfer.seconds + (self.verify.seconds if self.verify else 0.0)


# -- the client ------------------------------------------------------------------------


class PartFailed(Exception):
    pass


class PipelinedClient:
    """The multipart flow over plain HTTP, hashing later parts while earlier ones are on their way.

    Parts are hashed by ``hashers`` threads in order, as far ahead as they
    get; they are signed in batches that start small (so that the first PUT
    leaves after four parts are hashed, not a hundred) and grow fourfold up to
    the API's 100; each signed part is PUT by one of ``senders`` threads, each
    with its own connection, straight from the file. Memory is a buffer of
    1 MiB per thread, whatever the size.
    """

    def __init__(self, base_url: str, file: ScratchFile, *, senders: int = SENDERS, hashers: int = HASHERS) -> None:
        self.base_url, self.file, self.senders, self.hashers = base_url, file, senders, hashers
        self._local = threading.local()
        self.requests = 0  # to the API, start and complete included

    def json(self, method: str, url: str, data: Any = None) -> tuple[int, Any, dict[str, str]]:
        """A JSON request to the API on a connection of its own: (status, body, headers)."""
        parts = urlsplit(url if "://" in url else self.base_url + url)
        body = json.dumps(data).encode() if data is not None else b""
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=SOCKET_TIMEOUT)
        self.requests += 1
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request(method, target, body, {"Accept": "application/json", "Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:2000]
        return response.status, parsed, {k.lower(): v for k, v in response.getheaders()}

    def part_sha256(self, offset: int, length: int) -> str:
        hasher = hashlib.sha256()
        for chunk in self.file.chunks(offset, length):
            hasher.update(chunk)
        return hasher.hexdigest()

    def put(self, target: dict[str, Any], offset: int, length: int) -> None:
        """PUT bytes [offset, offset + length) of the file as ``target`` says, on this thread's connection."""
        url = urlsplit(target["url"])
        pool = self._local.__dict__.setdefault("connections", {})
        key = (url.hostname, url.port)
        if key not in pool:
            pool[key] = http.client.HTTPConnection(url.hostname, url.port, timeout=SOCKET_TIMEOUT)
        conn = pool[key]
        try:
            conn.putrequest(target["method"], url.path + (f"?{url.query}" if url.query else ""),
                            skip_accept_encoding=True)  # fmt: skip
            for name, value in target["headers"].items():
                conn.putheader(name, value)
            conn.endheaders()
            for chunk in self.file.chunks(offset, length):
                conn.send(chunk)
            response = conn.getresponse()
            answer = response.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            raise
        if response.status not in (200, 204):
            raise PartFailed(f"part {target.get('number')}: {response.status} {answer[:300]!r}")

    def start(self, fields: dict[str, Any]) -> tuple[int, Any]:
        status, body, _ = self.json("POST", "/api/attachments/uploads/", {**fields, "size": self.file.size})
        return status, body

    def send_parts(self, ticket: dict[str, Any], check_target: Callable[[dict[str, Any], int], None]) -> int:
        """Hash, sign and send every part of the ticket; the number of parts sent. Raises PartFailed."""
        multipart = ticket["multipart"]
        part_size, count, size = multipart["part_size"], multipart["part_count"], self.file.size

        def span(number: int) -> tuple[int, int]:
            return (number - 1) * part_size, min(part_size, size - (number - 1) * part_size)

        sent: list[Future] = []
        with ThreadPoolExecutor(self.hashers) as hashing, ThreadPoolExecutor(self.senders) as sending:
            digests = [hashing.submit(self.part_sha256, *span(n)) for n in range(1, count + 1)]
            # The first batch as small as the senders are many (the first PUTs leave early), then four times
            # larger up to the API's 100: each signing request costs the worker a fixed ~10-20 ms besides ~1 ms
            # per part, and the hashers, faster than the store takes the bytes, stay ahead of the senders.
            first, batch = 1, self.senders
            try:
                while first <= count:
                    numbers = range(first, min(first + batch, count + 1))
                    wanted = [{"number": n, "checksum": digests[n - 1].result()} for n in numbers]
                    status, signed, _ = self.json("POST", multipart["parts_url"], {"parts": wanted})
                    if status != 200:
                        raise PartFailed(f"signing parts {first}-{numbers[-1]}: {status} {signed!r:.300}")
                    for target in signed["parts"]:
                        check_target(target, span(target["number"])[1])
                        sent.append(sending.submit(self.put, target, *span(target["number"])))
                    first, batch = first + len(numbers), min(batch * 4, MAX_BATCH)
                for future in sent:
                    future.result()
            finally:
                for future in digests + sent:
                    future.cancel()
        return count

    def complete(self, ticket: dict[str, Any]) -> tuple[int, Any]:
        """POST complete until it answers other than 202 (waiting Retry-After between)."""
        while True:
            status, body, headers = self.json("POST", ticket["complete_url"], {})
            if status != 202:
                return status, body
            time.sleep(float(headers.get("retry-after", "1")))


# -- the cases -------------------------------------------------------------------------


@dataclass
class Target:
    """Where a case sends its bytes: the API's server (and its worker) and, on S3, SeaweedFS."""

    store: str  # "s3" or "disk"
    server: Server
    fields: dict[str, Any]
    store_pid: int | None = None
    endpoint: str | None = None
    bucket: str | None = None
    boto: Any = None
    anchor_requests: list[dict[str, str]] = field(default_factory=list)
    case: str = ""  # the anchor on its way (for watch_anchor)


def part_checker(ctx: Context, target: Target, what: str) -> Callable[[dict[str, Any], int], None]:
    """Checks a signed part: sent to SeaweedFS (S3) or to the API (disk), with the part's exact length."""
    expected = urlsplit(target.endpoint if target.store == "s3" else target.server.url).netloc

    def check(signed: dict[str, Any], length: int) -> None:
        lengths = [v for k, v in signed.get("headers", {}).items() if k.lower() == "content-length"]
        if not ctx.check(
            urlsplit(signed.get("url", "")).netloc == expected and lengths in ([str(length)], []),
            f"{what}: part {signed.get('number')} goes to {signed.get('url')!r:.100} with headers "
            f"{signed.get('headers')!r:.300}; expected {expected} and Content-Length {length}",
        ):
            raise PartFailed("a part goes elsewhere")

    return check


def ours(ctx: Context, target: Target, file: ScratchFile, case: str = OURS) -> Outcome:
    """The multipart direct upload through the API, by PipelinedClient (or the tests' client)."""
    what = f"{case} to {target.store} ({fmt_size(file.size)})"
    checksum = file.renew_tail()
    sync()
    pid = target.server.pid
    meter = PhaseMeter(pid, target.store_pid).start()
    verifying: PhaseMeter | None = None
    if case == TESTS:
        verifying = PhaseMeter(pid, target.store_pid)
        client = _MarkedClient(target.server.url, "", on_complete=lambda: (meter.stop(), verifying.start()))
        try:
            result = client.upload(target.fields, file.size, file.chunks)
        except (RuntimeError, OSError, http.client.HTTPException) as exc:
            ctx.check(False, f"{what}: {exc}")
            return Outcome(case, meter.stop())
        if not client.marked:
            ctx.check(False, f"{what}: answered {result.status} {result.body!r:.300} before completing")
            return Outcome(case, meter.stop())
        status, body, parts = result.status, result.body, result.parts_sent
    else:
        client = PipelinedClient(target.server.url, file, senders=SENDERS)
        status, body = client.start(target.fields)
        ticket = body.get("upload") if isinstance(body, dict) else None
        if not ctx.check(
            status == 201 and isinstance(ticket, dict) and isinstance(ticket.get("multipart"), dict),
            f"{what}: start answered {status} {body!r:.300}",
        ):
            return Outcome(case, meter.stop())
        try:
            parts = client.send_parts(ticket, part_checker(ctx, target, what))
        except (PartFailed, OSError, http.client.HTTPException) as exc:
            ctx.check(False, f"{what}: {exc}")
            return Outcome(case, meter.stop())
        meter.stop()
        verifying = PhaseMeter(pid, target.store_pid).start()
        status, body = client.complete(ticket)
    outcome = Outcome(case, meter.phase, verifying.stop(), parts=parts)
    attachment = body.get("attachment") if isinstance(body, dict) else None
    outcome.ok = ctx.check(
        status in (200, 201) and isinstance(attachment, dict), f"{what}: complete answered {status} {body!r:.300}"
    ) and ctx.check(
        attachment.get("checksum") == checksum and attachment.get("size") == file.size,
        f"{what}: the attachment is not the file: {attachment!r:.300} (expected SHA-256 {checksum})",
    )
    if outcome.ok and target.store == "disk":
        drop(attachment["id"])
    return outcome


if MultipartClient is not None:

    class _MarkedClient(MultipartClient):
        """The tests' client, calling ``on_complete`` as its first completion leaves (the transfer's end)."""

        def __init__(self, base_url: str, auth: str, *, on_complete: Callable[[], Any]) -> None:
            super().__init__(base_url, auth)
            self.on_complete, self.marked, self.complete_url = on_complete, False, None

        def request(self, method: str, url: str, payload: Any = None) -> tuple[int, Any, dict[str, str]]:
            if url == self.complete_url and not self.marked:
                self.marked = True
                self.on_complete()
            answer = super().request(method, url, payload)
            if url == "/api/attachments/uploads/" and isinstance(answer[1], dict) and answer[1].get("upload"):
                self.complete_url = answer[1]["upload"]["complete_url"]
            return answer


def anchor(ctx: Context, target: Target, file: ScratchFile, case: str) -> Outcome:
    """boto3's upload_file of the file to the same bucket, default TransferConfig (and SHA-256 checksums)."""
    from boto3.s3.transfer import TransferConfig

    key = f"anchor/{uuid.uuid4().hex}"
    extra = {"ChecksumAlgorithm": "SHA256"} if case == ANCHOR_SHA else None
    sync()
    target.case = case
    meter = PhaseMeter(None, target.store_pid).start()
    try:
        target.boto.upload_file(str(file.path), target.bucket, key, ExtraArgs=extra, Config=TransferConfig())
    except Exception as exc:  # noqa: BLE001 (a sanity check, with boto3's own words)
        ctx.check(False, f"{case} to SeaweedFS: {exc}")
        return Outcome(case, meter.stop())
    outcome = Outcome(case, meter.stop())
    head = target.boto.head_object(Bucket=target.bucket, Key=key)
    outcome.ok = ctx.check(head["ContentLength"] == file.size, f"{case}: the object has {head['ContentLength']} bytes")
    target.boto.delete_object(Bucket=target.bucket, Key=key)
    return outcome


def api_upload(ctx: Context, target: Target, file: ScratchFile) -> Outcome:
    """The disk anchor: ``POST /api/attachments/`` of the whole file, one request through the worker."""
    checksum = file.renew_tail()
    sync()
    meter = PhaseMeter(target.server.pid, None).start()
    fields = {k: str(v) for k, v in target.fields.items() if k in ("owner_type", "owner_id")}
    reply = post_multipart(target.server.url, "/api/attachments/", fields, file, "api.bin")
    outcome = Outcome("API upload", meter.stop())
    outcome.ok = ctx.check(
        reply.status == 201 and isinstance(reply.body, dict) and reply.body.get("checksum") == checksum,
        f"API upload to disk ({fmt_size(file.size)}): {reply.status} {reply.body!r:.300}",
    )
    if outcome.ok:
        drop(reply.body["id"])
    return outcome


def drop(attachment_id: str) -> None:
    """Remove an attachment made on local disk and its bytes (so that disk use stays at one repeat's)."""
    from django_attachments.models import Attachment
    from django_attachments.services.purging import purge_orphans

    blob_ids = list(Attachment.objects.filter(pk=attachment_id).values_list("blob_id", flat=True))
    Attachment.objects.filter(pk=attachment_id).delete()
    purge_orphans(older_than=timedelta(0), blob_ids=blob_ids)


def watch_anchor(target: Target) -> None:
    """Record how boto3 signs and checksums each part it sends, by case (the table says it)."""

    def before_send(request: Any, **kwargs: Any) -> None:
        if "partNumber=" in request.url:
            headers = {k.lower(): v for k, v in request.headers.items()}
            payload = headers.get("x-amz-content-sha256", b"")
            payload = payload.decode() if isinstance(payload, bytes) else payload
            target.anchor_requests.append(
                {
                    "case": target.case,
                    "payload": "signed (SHA-256)" if len(payload) == 64 else payload,
                    "checksum": ", ".join(
                        k.removeprefix("x-amz-checksum-")
                        for k in headers
                        if k.startswith("x-amz-checksum-") and k != "x-amz-checksum-algorithm"
                    ),
                }  # fmt: skip
            )

    target.boto.meta.events.register("before-send.s3.UploadPart", before_send)


# -- the servers -----------------------------------------------------------------------


def store_pid(endpoint: str) -> int | None:
    """The ``weed server`` process (a child of this one) that serves ``endpoint``."""
    port = urlsplit(endpoint).port
    for pid in children_of(os.getpid()):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if f"-s3.port={port}".encode() in args:
                return pid
    return None


@contextlib.contextmanager
def seaweedfs_target(ctx: Context, env: dict[str, str], folder: Path, owner: dict[str, Any]) -> Iterator[Target]:
    """A fresh SeaweedFS, a bucket, and the benchmark project serving S3 from it, warmed up."""
    import boto3

    # The benchmark project signs with the suite's keys (AWS_ENV): SeaweedFS takes those.
    keys = {"access_key": AWS_ENV["AWS_ACCESS_KEY_ID"], "secret_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"]}
    try:
        with seaweedfs_server(folder / "seaweedfs", **keys) as endpoint:
            boto = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=keys["access_key"],
                aws_secret_access_key=keys["secret_key"],
            )
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            boto.create_bucket(Bucket=bucket)
            server_env = {**env, "BENCH_STORAGE": "s3", "BENCH_S3_ENDPOINT": endpoint, "BENCH_S3_BUCKET": bucket}
            with project_server(ctx.args.server, server_env, folder, "multipart-s3") as server:
                target = Target("s3", server, owner, store_pid(endpoint), endpoint, bucket, boto)
                yield target
    finally:
        shutil.rmtree(folder / "seaweedfs", ignore_errors=True)


def warm_up(ctx: Context, target: Target, small: ScratchFile, warm: ScratchFile | None) -> bool:
    """Imports, the store's clients (in the worker and here), the bucket's first writes, before measuring.

    A single-PUT direct upload of ``small`` (the worker's S3 client and
    presigner); then, in a full run, one multipart upload of ``warm`` (65 MiB)
    and the anchors of it. ``--quick`` stops after the first (its figures
    are a sanity run, not a measurement).
    """
    if not single_put(ctx, target, small):
        return False
    if warm is not None and not ours(ctx, target, warm).ok:
        return False
    if target.store == "s3":
        watch_anchor(target)
        for case in (ANCHOR, ANCHOR_SHA):
            if not anchor(ctx, target, warm or small, case).ok:
                return False
        target.anchor_requests.clear()
        return True
    return api_upload(ctx, target, warm or small).ok


def single_put(ctx: Context, target: Target, file: ScratchFile) -> bool:
    """A direct upload of ``file`` in one PUT (start with its SHA-256, PUT where the ticket says, complete)."""
    client = PipelinedClient(target.server.url, file)
    checksum = file.renew_tail()
    status, body = client.start({**target.fields, "checksum": checksum})
    ticket = body.get("upload") if isinstance(body, dict) else None
    if not ctx.check(
        status == 201 and isinstance(ticket, dict) and ticket.get("url"), f"warm-up: {status} {body!r:.300}"
    ):
        return False
    try:
        client.put(ticket, 0, file.size)
    except (PartFailed, OSError, http.client.HTTPException) as exc:
        return ctx.check(False, f"warm-up PUT: {exc}")
    status, body = client.complete(ticket)
    attachment = body.get("attachment") if isinstance(body, dict) else None
    if not ctx.check(status == 201 and isinstance(attachment, dict), f"warm-up complete: {status} {body!r:.300}"):
        return False
    if target.store == "disk":
        drop(attachment["id"])
    return True


# -- the benchmark ---------------------------------------------------------------------


def bench_multipart(ctx: Context, env: dict[str, str]) -> None:
    size = ctx.args.multipart_size
    try:
        from tests.servers import weed_binary

        weed = weed_binary()
    except RuntimeError as exc:
        table = Table("multipart", "Multipart direct uploads", f"skipped: {exc}", ["-"])
        log(f"  multipart: skipped: {exc}")
        ctx.tables.append(table)
        return
    from benchapp.models import Thing

    owner = {"owner_type": "thing", "owner_id": str(Thing.objects.create(label="multipart").pk)}
    fields = {**owner, "filename": "multipart.bin"}
    folder = ctx.workdir / "multipart"
    folder.mkdir(exist_ok=True)
    started = time.perf_counter()
    file, small = ScratchFile(folder / "file.bin", size), ScratchFile(folder / "small.bin", MIB)
    warm = None if ctx.args.quick else ScratchFile(folder / "warm.bin", WARM_SIZE)
    log(f"  multipart: wrote {fmt_size(size)} in {time.perf_counter() - started:.1f} s")
    hashing = hash_rates(file)
    hashing += "; " + versions(weed)
    # The tests' client is the same flow unpipelined: for information, in a full run.
    tests = MultipartClient is not None and not ctx.args.quick
    cases = [OURS] + ([TESTS] if tests else []) + [ANCHOR, ANCHOR_SHA]
    s3_runs: list[list[Outcome]] = []
    disk_runs: list[list[Outcome]] = []
    anchor_requests: list[dict[str, str]] = []
    try:
        for repeat in range(ctx.args.repeat):
            order = cases[repeat % len(cases) :] + cases[: repeat % len(cases)]
            with seaweedfs_target(ctx, env, folder / f"s3-{repeat}", fields) as target:
                log(f"  multipart: SeaweedFS and its server up at {time.perf_counter() - started:.1f} s")
                if not warm_up(ctx, target, small, warm):
                    break
                runs = []
                for case in order:
                    runs.append(
                        ours(ctx, target, file, case) if case in (OURS, TESTS) else anchor(ctx, target, file, case)
                    )
                    log_outcome(target.store, repeat, runs[-1])
                left = target.boto.list_multipart_uploads(Bucket=target.bucket).get("Uploads", [])
                ctx.check(not left, f"multipart uploads left open in the bucket: {left!r:.300}")
                s3_runs.append(runs)
                anchor_requests += target.anchor_requests
                note_tracebacks(target.server)
        with project_server(ctx.args.server, {**env, "BENCH_STORAGE": "default"}, folder, "multipart-disk") as server:
            target = Target("disk", server, fields)
            if warm_up(ctx, target, small, warm):
                for repeat in range(ctx.args.repeat):
                    order = ["ours", "api"] if repeat % 2 == 0 else ["api", "ours"]
                    runs = []
                    for case in order:
                        runs.append(ours(ctx, target, file) if case == "ours" else api_upload(ctx, target, file))
                        log_outcome("disk", repeat, runs[-1])
                    disk_runs.append(runs)
            note_tracebacks(server)
    finally:
        for scratch in (file, small, warm):
            if scratch is not None:
                scratch.close()
                scratch.path.unlink(missing_ok=True)
    log(f"  multipart: done in {time.perf_counter() - started:.1f} s")
    report_s3(ctx, size, s3_runs, cases, hashing, anchor_requests)
    report_disk(ctx, size, disk_runs)


def hash_rates(file: ScratchFile) -> str:
    """SHA-256 in this process: MB/s per CPU second, and of wall time on 1 thread and on HASHERS at once."""
    length = min(file.size // 8, 256 * MIB)
    client = PipelinedClient("", file)
    wall, cpu_used, hashed = {}, 0.0, 0
    for threads in sorted({1, HASHERS}):
        started, cpu_before = time.perf_counter(), cpu_seconds(os.getpid()) or 0.0
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda i: client.part_sha256(i * length, length), range(threads)))
        wall[threads] = threads * length / (time.perf_counter() - started) / 1e6
        cpu_used += (cpu_seconds(os.getpid()) or 0.0) - cpu_before
        hashed += threads * length
    shown = f"{hashed / max(cpu_used, 0.01) / 1e6:.0f} MB/s per CPU second; " + ", ".join(
        f"{rate:.0f} MB/s of wall time on {threads} thread(s)" for threads, rate in wall.items()
    )
    log(f"  multipart: SHA-256 here: {shown}")
    return shown


def versions(weed: str) -> str:
    """SeaweedFS's, boto3's and s3transfer's versions, for the table's notes."""
    import boto3
    import s3transfer

    words = subprocess.run([weed, "version"], capture_output=True, text=True, timeout=30).stdout.split()
    # "version 8000GB 4.48 pypi linux amd64": the build's largest volume, then the release
    seaweedfs = (
        f"SeaweedFS {words[2]} ({words[1]} build)" if words[:1] == ["version"] and len(words) > 2 else "SeaweedFS"
    )
    return f"{seaweedfs}, boto3 {boto3.__version__}, s3transfer {s3transfer.__version__}"


def note_tracebacks(server: Server) -> None:
    if "Traceback" in server.logfile.read_text(errors="replace"):
        log(f"  note: {server.logfile.name} has tracebacks; see it with --keep")


def log_outcome(store: str, repeat: int, outcome: Outcome) -> None:
    verify = f", verification {outcome.verify.seconds:.2f} s" if outcome.verify else ""
    cpu = outcome.transfer.worker_cpu
    log(f"  multipart {store} #{repeat + 1} {outcome.case}: transfer {outcome.transfer.seconds:.2f} s{verify}; "
        f"client CPU {outcome.transfer.client_cpu or 0:.2f} s, store CPU {outcome.transfer.store_cpu or 0:.2f} s"
        + ("" if cpu is None else f", worker CPU {cpu:.2f} s"))  # fmt: skip


# -- the tables ------------------------------------------------------------------------


def spread(values: list[float], fmt: Callable[[float], str] = fmt_s) -> str:
    return "-" if not values else f"{fmt(min(values))}–{fmt(max(values))}"


def transfer_s(o: Outcome) -> float:
    return o.transfer.seconds


def total_s(o: Outcome) -> float:
    return o.total


def work_s(o: Outcome) -> float:
    """CPU seconds of every process involved (this one, SeaweedFS, the worker), over both phases."""
    phases = [o.transfer] + ([o.verify] if o.verify else [])
    return sum((p.client_cpu or 0.0) + (p.store_cpu or 0.0) + (p.worker_cpu or 0.0) for p in phases)


def transfer_work_s(o: Outcome) -> float:
    """CPU seconds of every process involved, over the transfer."""
    p = o.transfer
    return (p.client_cpu or 0.0) + (p.store_cpu or 0.0) + (p.worker_cpu or 0.0)


def ratios(runs: list[list[Outcome]], case: str, reference: str, key: Callable[[Outcome], float]) -> list[float]:
    """key(case) / key(reference) in each repeat where both succeeded."""
    found = []
    for run in runs:
        by = {o.case: o for o in run if o.ok}
        if case in by and reference in by and key(by[reference]) > 0:
            found.append(key(by[case]) / key(by[reference]))
    return found


def paired(runs: list[list[Outcome]], case: str, reference: str, key: Callable[[Outcome], float]) -> str:
    """Median (min–max) over the repeats of case / reference, each repeat's pair on its own."""
    found = ratios(runs, case, reference, key)
    if not found:
        return "-"
    return f"{median(found):.2f}x ({min(found):.2f}–{max(found):.2f})" if len(found) > 1 else f"{found[0]:.2f}x"


def cpu(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    return f"{median(known):.2f}" + (f" ({min(known):.2f}–{max(known):.2f})" if len(known) > 1 else "")


def flow_growth(done: list[Outcome]) -> Growth | None:
    """The worker's largest peak RSS growth over the transfers and verifications of ``done``."""
    return worst([g for o in done for g in (o.transfer.worker_rss, o.verify.worker_rss if o.verify else None)])


def report_s3(ctx: Context, size: int, runs: list[list[Outcome]], cases: list[str], hashing: str,
              anchor_requests: list[dict[str, str]]) -> None:  # fmt: skip
    times = Table(
        "multipart",
        "Multipart direct upload to SeaweedFS against boto3's upload_file",
        "The same file sent from this process to the same SeaweedFS bucket: by the API's multipart direct upload "
        "(`ours`: start, parts hashed with SHA-256 and signed in batches while earlier parts are PUT to their "
        "presigned URLs, four at a time, then complete; `tests' client`: the same flow, each batch of 100 parts "
        "hashed before any is sent), and by boto3's `upload_file` with the default `TransferConfig` (the anchor), "
        "and with `ChecksumAlgorithm=SHA256`. `transfer` runs from the start request to the last part's answer "
        "(the anchors: `upload_file`); `verification` is the server's completion (join, read the object back for "
        "its SHA-256, record); `total` both. Ratios are case / anchor, paired per repeat: median (min–max).",
        ["case", "size", "transfer s", "transfer s (min–max)", "MB/s", "verification s", "total s", "total s (min–max)",
         "transfer / upload_file", "total / upload_file", "transfer / +SHA-256", "total / +SHA-256"],
    )  # fmt: skip
    costs = Table(
        "multipart-cost",
        "Multipart direct upload to SeaweedFS: who does the work",
        "CPU seconds (user + system, all threads; median (min–max) over the repeats) of this process (the client), "
        "of SeaweedFS (one `weed server` process: master, volume, filer, S3 gateway) and of the Django worker, "
        "during the transfer and during the verification; RSS+ is the peak RSS growth over the phase, the largest "
        "over the repeats. `transfer CPU s` adds the three processes over the transfer, `all CPU s` over both "
        "phases: the work each way costs the machine, which the load of other processes changes less than it "
        "changes wall times (ratios paired per repeat).",
        ["case", "client CPU s", "client RSS+ MiB", "SeaweedFS CPU s", "worker CPU s", "worker RSS+ MiB",
         "verify: worker CPU s", "verify: worker RSS+ MiB", "verify: SeaweedFS CPU s", "transfer CPU s",
         "transfer CPU / upload_file", "all CPU s", "all CPU / upload_file", "parts"],
    )  # fmt: skip
    for case in cases:
        done = [o for run in runs for o in run if o.case == case and o.ok]
        if not done:
            times.rows.append([case, fmt_size(size)] + ["-"] * 10)
            costs.rows.append([case] + ["-"] * 13)
            continue
        transfer, totals = [transfer_s(o) for o in done], [total_s(o) for o in done]
        verify = [o.verify for o in done if o.verify]
        times.rows.append(
            [case + (" (anchor)" if case == ANCHOR else ""), fmt_size(size), fmt_s(median(transfer)), spread(transfer),
             fmt_rate(size, median(transfer)), fmt_s(median([v.seconds for v in verify])) if verify else "-",
             fmt_s(median(totals)), spread(totals)]
            + [paired(runs, case, ref, key) if case != ref else "-" for ref in (ANCHOR, ANCHOR_SHA)
               for key in (transfer_s, total_s)]
        )  # fmt: skip
        costs.rows.append(
            [case, cpu([o.transfer.client_cpu for o in done]), fmt_mib(worst([o.transfer.client_rss for o in done])),
             cpu([o.transfer.store_cpu for o in done]), cpu([o.transfer.worker_cpu for o in done]),
             fmt_mib(worst([o.transfer.worker_rss for o in done])), cpu([v.worker_cpu for v in verify]),
             fmt_mib(worst([v.worker_rss for v in verify])), cpu([v.store_cpu for v in verify]),
             cpu([transfer_work_s(o) for o in done]),
             paired(runs, case, ANCHOR, transfer_work_s) if case != ANCHOR else "-",
             cpu([work_s(o) for o in done]), paired(runs, case, ANCHOR, work_s) if case != ANCHOR else "-",
             str(done[0].parts) if done[0].parts else "-"]
        )  # fmt: skip
    shown = sorted(
        {f"{r['case']}: payload {r['payload']}, checksum {r['checksum'] or 'none'}" for r in anchor_requests}
    )
    times.notes += [
        f"median of {len(runs)} repeat(s); MB/s: size / median transfer time (10^6 bytes per second)",
        f"SHA-256 in this process (reading the file), at the start: {hashing}",
        "upload_file's parts as sent (botocore, plain HTTP): " + ("; ".join(shown) if shown else "not seen"),
    ]
    costs.notes.append("the anchors send no request to the Django worker; SeaweedFS CPU covers the whole process")
    ctx.add(times)
    ctx.add(costs)
    targets(ctx, size, runs)


def targets(ctx: Context, size: int, runs: list[list[Outcome]]) -> None:
    what = f"multipart upload {fmt_size(size)} to SeaweedFS"
    for key, label in ((transfer_s, "transfer"), (total_s, "total, with the server's read-back")):
        for reference in (ANCHOR, ANCHOR_SHA):
            found = ratios(runs, OURS, reference, key)
            ctx.target(f"{what}: {label} vs {reference}", "<= 1.1x", paired(runs, OURS, reference, key),
                       None if not found else median(found) <= 1.1)  # fmt: skip
    done = [o for run in runs for o in run if o.case == OURS and o.ok]
    shares = [o.transfer.worker_cpu / o.transfer.seconds for o in done if o.transfer.worker_cpu is not None]
    ctx.target(
        f"{what}: Django worker CPU during the transfer",
        f"near 0 (<= {NEAR_ZERO:.0%} of the transfer's time)",
        f"{cpu([o.transfer.worker_cpu for o in done])} s ({max(shares, default=0):.1%} at most)",
        None if not shares else max(shares) <= NEAR_ZERO,
    )
    growth = flow_growth(done)
    ctx.target(f"{what}: worker RSS growth over the flow", "flat (<= 16 MiB)", fmt_mib(growth) + " MiB",
               None if growth is None else growth.kib <= 16 * 1024)  # fmt: skip


def report_disk(ctx: Context, size: int, runs: list[list[Outcome]]) -> None:
    table = Table(
        "multipart-disk",
        "Multipart direct upload to local disk, for information",
        "The same flow and client as `ours` above, to the project's local disk: the parts go to the API's own part "
        "URLs (through the one sync worker, which hashes and keeps each), and completion joins them (reading every "
        "part, writing the object, hashing it); the anchor is one `POST /api/attachments/` of the file.",
        ["case", "size", "transfer s", "verification s", "total s", "total s (min–max)", "total / API upload",
         "worker CPU s", "verify: worker CPU s", "worker RSS+ MiB", "client CPU s"],
    )  # fmt: skip
    for case in (OURS, "API upload"):
        done = [o for run in runs for o in run if o.case == case and o.ok]
        if not done:
            table.rows.append([case, fmt_size(size)] + ["-"] * 9)
            continue
        verify = [o.verify for o in done if o.verify]
        table.rows.append(
            [case + (" (anchor)" if case != OURS else ""), fmt_size(size), fmt_s(median([transfer_s(o) for o in done])),
             fmt_s(median([v.seconds for v in verify])) if verify else "-", fmt_s(median([total_s(o) for o in done])),
             spread([total_s(o) for o in done]), paired(runs, case, "API upload", total_s) if case == OURS else "-",
             cpu([o.transfer.worker_cpu for o in done]), cpu([v.worker_cpu for v in verify]),
             fmt_mib(flow_growth(done)), cpu([o.transfer.client_cpu for o in done])]
        )  # fmt: skip
    table.notes.append(f"median of {len(runs)} repeat(s); the anchor's transfer is its one request")
    ctx.add(table)
