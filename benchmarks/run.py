"""Benchmarks of django_attachments, each next to what a project writes by hand.

    .venv/bin/python benchmarks/run.py                      # the full suite (a few minutes, ~10 GiB of scratch disk)
    .venv/bin/python benchmarks/run.py --quick              # tiny sizes, one repeat: under a minute (CI)
    .venv/bin/python benchmarks/run.py --sizes 10M,100M,1G --repeat 3 --markdown /tmp/bench.md
    .venv/bin/python -m tests.pgcluster -- .venv/bin/python benchmarks/run.py   # on PostgreSQL

For every benchmark the project's figure is printed next to an *anchor*
measured in the same run, on the same bytes, and the ratio of their wall
times (project / anchor; above 1 means the project is slower):

1. upload to local disk through the API of a live server (gunicorn, one sync
   worker; runserver where gunicorn is missing) -- anchor: a bare Django view
   in the same server, ``request.FILES["file"]`` saved with
   ``FileSystemStorage.save()``;
2. upload to S3 (a moto server on 127.0.0.1) through the API -- anchor:
   boto3's ``upload_fileobj`` of the same bytes to the same moto server, from
   this process, with the default ``TransferConfig``;
3. the same bytes uploaded twice (a dedup hit): the bytes and objects the
   second upload added to the store (must be 0), and its time against the
   first's;
4. downloads (proxy mode) of the largest object, full and a 1 MiB range --
   anchors: a plain read of the stored file (disk; also a bare ``FileResponse``
   view in the same server) and one boto3 ``get_object`` (S3);
5. listing one owner's attachments (1, 100, 1,000 of them), in process with
   Django's test client: SQL queries and time per request -- anchor: a bare
   view, ``Paginator`` over ``values()``;
6. purging: ``benchmarks/purge_s3.py`` (run with a small ``--count`` under
   ``--quick``; otherwise this only points to it).

Figures: wall time (median of ``--repeat`` runs), throughput (MB/s, 10^6
bytes), and peak RSS growth: ``VmHWM`` of ``/proc/<pid>/status`` of the
server's worker process (or, for anchors that run here, of this process),
reset just before each measured request by writing ``5`` to
``/proc/<pid>/clear_refs``; where the kernel refuses, VmRSS is sampled every
20 ms instead and the figure is marked ``~``. The RSS column is the largest
growth over the repeats.

Request bodies are streamed with ``http.client`` and an exact
``Content-Length``, 1 MiB at a time, from a file of random bytes made once;
each payload is a prefix of that file plus 32 unique bytes at its end, so no
two payloads share a checksum (nothing dedups except in benchmark 3) and their
SHA-256 and CRC-32 are known without reading them again. Downloads are checked
with CRC-32 on both sides (cheaper than SHA-256, so the client stays light).

Nothing here asserts anything about speed: the suite exits non-zero only when a
sanity check fails (an unexpected status, a checksum or size that does not
match, bytes written by a dedup hit), which means the benchmark itself is
broken. A "targets" table at the end compares the figures with the project's
goals, for information.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(REPO_ROOT)]

from tests import servers  # noqa: E402  (the repository root must be on sys.path first)
from tests.servers import free_port, reset_peak, status_kib, stop, wait_until  # noqa: E402

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
CHUNK = MIB
TAIL = 32  # unique bytes at the end of every payload
SOCKET_TIMEOUT = 900  # a guard against a hung server, not a speed limit

DEFAULT_SIZES = [10 * MIB, 100 * MIB, GIB]
DEFAULT_S3_SIZES = [10 * MIB, 100 * MIB]
QUICK_SIZES = [1 * MIB, 5 * MIB]
# 17 MiB: above the S3 store's single-request threshold (16 MiB), so CI runs the multipart path too.
QUICK_S3_SIZES = [1 * MIB, 17 * MIB]
S3_MAX = GIB  # moto holds about twice the object in memory while completing a multipart upload
LIST_COUNTS = [1, 100, 1000]
QUICK_LIST_COUNTS = [1, 10, 100]
BENCHMARKS = ["disk", "s3", "dedup", "download", "list", "purge"]

# Keep boto3 (here, in the servers and in moto) away from a developer's real AWS configuration.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull + ".missing",
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull + ".missing",
}
os.environ.update(AWS_ENV)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- sizes and formatting ------------------------------------------------------------


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    units = {"K": KIB, "M": MIB, "G": GIB}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def fmt_size(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    return f"{n} B"


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.2f}"


def fmt_rate(size: int, seconds: float | None) -> str:
    if not seconds:
        return "-"
    return f"{size / seconds / 1e6:,.0f}" if size / seconds >= 10e6 else f"{size / seconds / 1e6:.1f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def fmt_cpu(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.2f}" if known else "-"


def fmt_mib(growth: Growth | None) -> str:
    if growth is None:
        return "-"
    return f"{'~' if growth.sampled else ''}{growth.kib / 1024:.1f}"


# -- memory of a process ---------------------------------------------------------------


@dataclass(frozen=True)
class Growth:
    kib: int
    sampled: bool  # True: VmRSS sampled (the peak could not be reset)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process (all its threads) so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class PeakMeter:
    """Peak RSS growth of ``pid`` over a block (VmHWM reset first, else VmRSS sampled), and its CPU time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.growth: Growth | None = None
        self.cpu: float | None = None
        self._stop = threading.Event()
        self._max = 0
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self._max = max(self._max, status_kib(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            self._stop.wait(0.02)

    def __enter__(self) -> PeakMeter:
        self._cpu = cpu_seconds(self.pid)
        self._reset = reset_peak(self.pid)
        try:
            self._start = status_kib(self.pid, "VmHWM" if self._reset else "VmRSS")
        except (OSError, RuntimeError):
            self._start = None
            return self
        if not self._reset:
            self._max = self._start
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        cpu = cpu_seconds(self.pid)
        if cpu is not None and self._cpu is not None:
            self.cpu = cpu - self._cpu
        if self._start is None:
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.growth = Growth(max(self._max - self._start, 0), sampled=True)
        else:
            try:
                self.growth = Growth(max(status_kib(self.pid, "VmHWM") - self._start, 0), sampled=False)
            except (OSError, RuntimeError):
                self.growth = None


def worst(growths: list[Growth | None]) -> Growth | None:
    known = [g for g in growths if g is not None]
    return max(known, key=lambda g: g.kib) if known else None


# -- payloads -----------------------------------------------------------------------------


class Pool:
    """A file of random bytes, made once; payloads are its prefixes plus a unique tail."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._prefix_digests: dict[int, tuple[Any, int]] = {}
        with open(path, "wb") as out:
            remaining = size
            while remaining:
                n = min(CHUNK, remaining)
                out.write(os.urandom(n))
                remaining -= n
        self.fd = os.open(path, os.O_RDONLY)

    def prefix_digests(self, length: int) -> tuple[Any, int]:
        """(sha256 object, crc32) of the first ``length`` bytes; computed once per length."""
        if length not in self._prefix_digests:
            hasher, crc = hashlib.sha256(), 0
            for chunk in self.chunks(0, length):
                hasher.update(chunk)
                crc = zlib.crc32(chunk, crc)
            self._prefix_digests[length] = (hasher, crc)
        return self._prefix_digests[length]

    def chunks(self, start: int, end: int) -> Iterator[memoryview]:
        """Bytes [start, end) of the pool, 1 MiB at a time, in one reused buffer."""
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        position = start
        while position < end:
            n = os.preadv(self.fd, [view[: min(CHUNK, end - position)]], position)
            if n <= 0:
                raise RuntimeError("the pool file is shorter than expected")
            yield view[:n]
            position += n

    def close(self) -> None:
        os.close(self.fd)


class Payload:
    """``size`` bytes: the pool's first ``size - TAIL`` bytes, then TAIL unique ones."""

    def __init__(self, pool: Pool, size: int) -> None:
        if size <= TAIL or size > pool.size + TAIL:
            raise ValueError(f"payload size {size} out of range")
        self.pool = pool
        self.size = size
        self.base = size - TAIL
        self.tail = uuid.uuid4().hex.encode()[:TAIL].ljust(TAIL, b"-")
        hasher, crc = pool.prefix_digests(self.base)
        hasher = hasher.copy()
        hasher.update(self.tail)
        self.sha256 = hasher.hexdigest()
        self.crc32 = zlib.crc32(self.tail, crc)

    def chunks(self) -> Iterator[memoryview | bytes]:
        yield from self.pool.chunks(0, self.base)
        yield self.tail

    def slice_crc(self, start: int, end: int) -> int:
        """CRC-32 of bytes [start, end] (inclusive)."""
        crc = 0
        stop = end + 1
        for chunk in self.pool.chunks(start, min(stop, self.base)):
            crc = zlib.crc32(chunk, crc)
        if stop > self.base:
            crc = zlib.crc32(self.tail[max(start - self.base, 0) : stop - self.base], crc)
        return crc

    def reader(self) -> PayloadReader:
        return PayloadReader(self)


class PayloadReader(io.RawIOBase):
    """A seekable, read-only file object over a payload (for boto3)."""

    def __init__(self, payload: Payload) -> None:
        super().__init__()
        self.payload = payload
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.payload.size}[whence]
        self.position = max(base + offset, 0)
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        payload = self.payload
        want = min(len(view), payload.size - self.position)
        filled = 0
        while filled < want:
            if self.position < payload.base:
                n = os.preadv(
                    payload.pool.fd,
                    [view[filled : filled + min(want - filled, payload.base - self.position)]],
                    self.position,
                )
                if n <= 0:
                    raise OSError("short read from the pool file")
            else:
                offset = self.position - payload.base
                n = min(want - filled, TAIL - offset)
                view[filled : filled + n] = payload.tail[offset : offset + n]
            filled += n
            self.position += n
        return filled


def file_crc(path: str | Path) -> tuple[int, int]:
    """(size, CRC-32) of a file."""
    crc, size = 0, 0
    buffer = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            crc = zlib.crc32(memoryview(buffer)[:n], crc)
            size += n
    return size, crc


# -- HTTP ---------------------------------------------------------------------------------------


def connect(base_url: str) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=SOCKET_TIMEOUT)


@dataclass
class Reply:
    status: int
    body: Any
    seconds: float
    received: int = 0
    crc32: int = 0
    headers: dict[str, str] = field(default_factory=dict)


def post_multipart(base_url: str, path: str, fields: dict[str, str], payload: Payload, filename: str) -> Reply:
    """POST ``fields`` and ``payload`` as multipart/form-data, streamed, with an exact Content-Length."""
    boundary = f"----bench-{uuid.uuid4().hex}"
    preamble = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    preamble += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{boundary}--\r\n".encode()
    conn = connect(base_url)
    started = time.perf_counter()
    try:
        conn.putrequest("POST", path)
        conn.putheader("Accept", "application/json")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(preamble) + payload.size + len(epilogue)))
        conn.endheaders()
        try:
            sock = conn.sock
            sock.sendall(preamble)
            for chunk in payload.chunks():
                sock.sendall(chunk)
            sock.sendall(epilogue)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early: read its answer below
        response = conn.getresponse()
        raw = response.read()
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw[:2000]
    return Reply(response.status, body, seconds)


def get(base_url: str, path: str, headers: dict[str, str] | None = None) -> Reply:
    """GET ``path``, reading the body 1 MiB at a time into one buffer, with its CRC-32."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    crc, received = 0, 0
    conn = connect(base_url)
    started = time.perf_counter()
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        while n := response.readinto(buffer):
            crc = zlib.crc32(view[:n], crc)
            received += n
        seconds = time.perf_counter() - started
        reply_headers = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    return Reply(response.status, None, seconds, received, crc, reply_headers)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# -- processes: moto and the project's server ---------------------------------------------------


def moto_server(workdir: Path):
    return servers.moto_server(workdir, env=AWS_ENV)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def have_gunicorn() -> bool:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    kind: str
    logfile: Path

    @property
    def pid(self) -> int:
        """The process that handles requests: gunicorn's worker, or runserver itself."""
        if self.kind == "runserver":
            return self.proc.pid
        workers = children_of(self.proc.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker under {self.proc.pid}, found {workers}")
        return workers[0]

    def log_tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def project_server(kind: str, env: dict[str, str], workdir: Path, label: str) -> Iterator[Server]:
    port = free_port()
    logfile = workdir / f"server-{label}.log"
    if kind == "gunicorn":
        command = [
            sys.executable, "-m", "gunicorn",
            "--workers", "1", "--worker-class", "sync", "--timeout", "600",
            "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
            "benchproject.wsgi:application",
        ]  # fmt: skip
    else:
        command = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"]
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(command, cwd=BENCH_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    server = Server(url, proc, kind, logfile)
    try:
        wait_until(url + "/bare/list/?owner_type=thing&owner_id=0", proc, f"the {label} server", logfile)
        if kind == "gunicorn":
            deadline = time.monotonic() + 30
            while len(children_of(proc.pid)) != 1:
                if time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn's worker did not show up:\n{server.log_tail()}")
                time.sleep(0.1)
        yield server
    finally:
        stop(proc)


# -- results and tables -------------------------------------------------------------------------


@dataclass
class Table:
    key: str
    title: str
    description: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render_text(self) -> str:
        widths = [
            max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h) for i, h in enumerate(self.headers)
        ]
        line = lambda cells: "  ".join(  # noqa: E731
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        out = [self.title, "=" * len(self.title), line(self.headers), "-" * len(line(self.headers))]
        out += [line(r) for r in self.rows]
        out += [f"  {n}" for n in self.notes]
        return "\n".join(out)

    def render_markdown(self) -> str:
        out = [f"### {self.title}", "", self.description, ""]
        out.append("| " + " | ".join(self.headers) + " |")
        out.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(self.headers))) + "|")
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)


class Context:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.problems: list[str] = []
        self.tables: list[Table] = []
        self.targets: list[list[str]] = []
        self.pool: Pool | None = None
        self.disk_server: Server | None = None
        self.s3_server: Server | None = None
        self.s3_endpoint: str | None = None
        self.bucket: str | None = None
        self.thing_id: str = ""
        self.kept: dict[str, tuple[Payload, dict]] = {}  # store -> (payload, API body) of the largest upload

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.problems.append(message)
            log(f"  SANITY CHECK FAILED: {message}")
        return ok

    def add(self, table: Table) -> None:
        self.tables.append(table)
        print("\n" + table.render_text() + "\n", flush=True)

    def target(self, what: str, goal: str, measured: str, met: bool | None) -> None:
        self.targets.append([what, goal, measured, "-" if met is None else ("yes" if met else "NO")])


def median(values: list[float]) -> float:
    return statistics.median(values)


def sync() -> None:
    """Flush dirty pages, so one measurement does not pay for the previous one's writes."""
    os.sync()


def api_fields(ctx: Context, name: str) -> dict[str, str]:
    return {"owner_type": "thing", "owner_id": ctx.thing_id, "name": name}


# -- 1. upload to local disk --------------------------------------------------------------------


def api_upload(ctx: Context, server: Any, pid: int, payload: Payload, label: str) -> tuple[Reply, PeakMeter, bool]:
    """POST ``payload`` to the API under a PeakMeter; the flag says whether it came back stored and intact."""
    size = payload.size
    with PeakMeter(pid) as meter:
        reply = post_multipart(server.url, "/api/attachments/", api_fields(ctx, ""), payload, "b.bin")
    ok = ctx.check(reply.status == 201, f"{label} API upload {fmt_size(size)}: {reply.status} {reply.body!r:.300}")
    ok = ok and ctx.check(
        reply.body.get("checksum") == payload.sha256 and reply.body.get("size") == size,
        f"{label} API upload {fmt_size(size)}: checksum/size mismatch {reply.body!r:.300}",
    )
    return reply, meter, ok


def bench_disk_upload(ctx: Context) -> None:
    server = ctx.disk_server
    assert server is not None and ctx.pool is not None
    table = Table(
        "disk",
        "Upload to local disk",
        "`POST /api/attachments/` (multipart) on the live server, against a bare Django view in the same "
        'server that reads `request.FILES["file"]` and calls `FileSystemStorage.save()`. Same bytes, '
        "same request shape; server RSS is the worker's peak growth during the request.",
        [
            "size",
            "API s",
            "API MB/s",
            "API CPU s",
            "API RSS+ MiB",
            "bare view s",
            "bare MB/s",
            "bare CPU s",
            "bare RSS+ MiB",
            "ratio",
        ],  # fmt: skip
    )
    bare_root = ctx.workdir / "bare-media"
    for size in ctx.args.sizes:
        api_times, bare_times, api_rss, bare_rss, api_cpu, bare_cpu = [], [], [], [], [], []
        for repeat in range(ctx.args.repeat):
            payload = Payload(ctx.pool, size)
            order = ["api", "bare"] if repeat % 2 == 0 else ["bare", "api"]
            for which in order:
                sync()
                pid = server.pid
                if which == "api":
                    reply, meter, ok = api_upload(ctx, server, pid, payload, "disk")
                    api_times.append(reply.seconds)
                    api_rss.append(meter.growth)
                    api_cpu.append(meter.cpu)
                    if ok:
                        ctx.kept["disk"] = (payload, reply.body)
                else:
                    with PeakMeter(pid) as meter:
                        reply = post_multipart(server.url, "/bare/upload/", api_fields(ctx, ""), payload, "b.bin")
                    if ctx.check(
                        reply.status == 201, f"bare upload {fmt_size(size)}: {reply.status} {reply.body!r:.300}"
                    ):
                        stored = bare_root / reply.body["name"]
                        ctx.check(
                            file_crc(stored) == (size, payload.crc32),
                            f"bare upload {fmt_size(size)}: the stored file differs from the bytes sent",
                        )
                        stored.unlink(missing_ok=True)
                    bare_times.append(reply.seconds)
                    bare_rss.append(meter.growth)
                    bare_cpu.append(meter.cpu)
            log(f"  disk {fmt_size(size)} #{repeat + 1}: API {api_times[-1]:.3f} s, bare {bare_times[-1]:.3f} s")
        api_t, bare_t = median(api_times), median(bare_times)
        api_g, bare_g = worst(api_rss), worst(bare_rss)
        table.rows.append(
            [fmt_size(size), fmt_s(api_t), fmt_rate(size, api_t), fmt_cpu(api_cpu), fmt_mib(api_g),
             fmt_s(bare_t), fmt_rate(size, bare_t), fmt_cpu(bare_cpu), fmt_mib(bare_g), fmt_ratio(api_t, bare_t)]
        )  # fmt: skip
        if size >= 100 * MIB:
            ctx.target(
                f"disk upload {fmt_size(size)}: time vs bare view",
                "<= 1.2x",
                fmt_ratio(api_t, bare_t),
                api_t / bare_t <= 1.2,
            )
            ctx.target(
                f"disk upload {fmt_size(size)}: server RSS growth",
                "<= 16 MiB",
                fmt_mib(api_g) + " MiB",
                None if api_g is None else api_g.kib <= 16 * KIB,
            )
    table.notes.append(
        f"median of {ctx.args.repeat} run(s); RSS+: largest growth over the runs; CPU s: user + system time of the "
        "server worker (all threads; 10 ms ticks); ratio: API time / bare view time"
    )
    ctx.add(table)


# -- 2. upload to S3 ----------------------------------------------------------------------------


def s3_client(ctx: Context) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=ctx.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def bucket_usage(client: Any, bucket: str) -> tuple[int, int, int]:
    """(objects, bytes, multipart uploads in progress) of the bucket."""
    objects = total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            objects += 1
            total += obj["Size"]
    uploads = len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    return objects, total, uploads


def bench_s3_upload(ctx: Context) -> None:
    server = ctx.s3_server
    assert server is not None and ctx.pool is not None and ctx.bucket
    client = s3_client(ctx)
    # Warm the client up (imports, the connection pool, the transfer manager's threads).
    warm = Payload(ctx.pool, 256 * KIB)
    client.upload_fileobj(warm.reader(), ctx.bucket, "bare/warm-up")
    client.delete_object(Bucket=ctx.bucket, Key="bare/warm-up")
    me = os.getpid()
    table = Table(
        "s3",
        "Upload to S3 (moto)",
        "`POST /api/attachments/` on the live server with S3 as the storage, against boto3's "
        "`upload_fileobj` (default `TransferConfig`) of the same bytes from the benchmark process to the same "
        "moto server. API RSS+ is the server worker's peak growth; boto3 RSS+ is the benchmark process's.",
        [
            "size",
            "API s",
            "API MB/s",
            "API CPU s",
            "API RSS+ MiB",
            "boto3 s",
            "boto3 MB/s",
            "boto3 CPU s",
            "boto3 RSS+ MiB",
            "ratio",
        ],  # fmt: skip
    )
    for size in ctx.args.s3_sizes:
        api_times, bare_times, api_rss, bare_rss, api_cpu, bare_cpu = [], [], [], [], [], []
        for repeat in range(ctx.args.repeat):
            payload = Payload(ctx.pool, size)
            order = ["api", "boto3"] if repeat % 2 == 0 else ["boto3", "api"]
            for which in order:
                sync()
                if which == "api":
                    reply, meter, ok = api_upload(ctx, server, server.pid, payload, "S3")
                    api_times.append(reply.seconds)
                    api_rss.append(meter.growth)
                    api_cpu.append(meter.cpu)
                    if ok:
                        ctx.kept["s3"] = (payload, reply.body)
                else:
                    key = f"bare/{uuid.uuid4().hex}"
                    reader = payload.reader()
                    with PeakMeter(me) as meter:
                        started = time.perf_counter()
                        client.upload_fileobj(reader, ctx.bucket, key)
                        seconds = time.perf_counter() - started
                    head = client.head_object(Bucket=ctx.bucket, Key=key)
                    ctx.check(
                        head["ContentLength"] == size,
                        f"boto3 upload {fmt_size(size)}: stored {head['ContentLength']} bytes",
                    )
                    client.delete_object(Bucket=ctx.bucket, Key=key)
                    bare_times.append(seconds)
                    bare_rss.append(meter.growth)
                    bare_cpu.append(meter.cpu)
            log(f"  s3 {fmt_size(size)} #{repeat + 1}: API {api_times[-1]:.3f} s, boto3 {bare_times[-1]:.3f} s")
        api_t, bare_t = median(api_times), median(bare_times)
        api_g, bare_g = worst(api_rss), worst(bare_rss)
        table.rows.append(
            [fmt_size(size), fmt_s(api_t), fmt_rate(size, api_t), fmt_cpu(api_cpu), fmt_mib(api_g),
             fmt_s(bare_t), fmt_rate(size, bare_t), fmt_cpu(bare_cpu), fmt_mib(bare_g), fmt_ratio(api_t, bare_t)]
        )  # fmt: skip
        ctx.target(
            f"S3 upload {fmt_size(size)}: time vs boto3", "<= 1.2x", fmt_ratio(api_t, bare_t), api_t / bare_t <= 1.2
        )
        ctx.target(
            f"S3 upload {fmt_size(size)}: server RSS growth",
            "<= 96 MiB",
            fmt_mib(api_g) + " MiB",
            None if api_g is None else api_g.kib <= 96 * KIB,
        )
    table.notes.append(
        f"median of {ctx.args.repeat} run(s); CPU s: user + system time of the server worker (API) or of the "
        "benchmark process (boto3), moto's not counted; ratio: API time / boto3 time. The API's time includes "
        "receiving the request (parsed to a temporary file while hashed) before sending it on; boto3 reads from "
        "the local payload."
    )
    ctx.add(table)


# -- 3. duplicate upload --------------------------------------------------------------------------


def disk_usage(root: Path) -> tuple[int, int]:
    """(files, bytes) under ``root``."""
    files = total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(folder, name)).st_size
                files += 1
    return files, total


def bench_dedup(ctx: Context) -> None:
    assert ctx.pool is not None
    size = ctx.args.dedup_size
    table = Table(
        "dedup",
        "Duplicate upload (dedup hit)",
        f"The same {fmt_size(size)} uploaded twice through the API, to the same owner under two slots. The second "
        "upload finds the blob by checksum and stores nothing: the table shows what it added to the store "
        "(files and bytes under the disk store's folder; objects, bytes and unfinished multipart uploads in the "
        "bucket) and its time against the first upload's.",
        ["store", "size", "1st s", "2nd s", "2nd / 1st", "2nd RSS+ MiB", "added by 2nd", "same blob"],
    )
    stores: list[tuple[str, Server | None]] = []
    if ctx.disk_server is not None:
        stores.append(("disk", ctx.disk_server))
    if ctx.s3_server is not None:
        stores.append(("s3", ctx.s3_server))
    client = s3_client(ctx) if ctx.s3_server is not None else None
    media = ctx.workdir / "media" / "attachments"
    for store, server in stores:
        assert server is not None
        firsts, seconds, growths, added_all, same_all = [], [], [], [], []
        for repeat in range(ctx.args.repeat):
            payload = Payload(ctx.pool, size)

            def usage(store: str = store) -> tuple[int, ...]:
                return disk_usage(media) if store == "disk" else bucket_usage(client, ctx.bucket)

            sync()
            first = post_multipart(
                server.url, "/api/attachments/", api_fields(ctx, f"first-{repeat}"), payload, "d.bin"
            )
            ctx.check(first.status == 201, f"dedup {store}: first upload {first.status} {first.body!r:.300}")
            before = usage()
            sync()
            with PeakMeter(server.pid) as meter:
                second = post_multipart(
                    server.url, "/api/attachments/", api_fields(ctx, f"second-{repeat}"), payload, "d.bin"
                )
            after = usage()
            ctx.check(second.status == 201, f"dedup {store}: second upload {second.status} {second.body!r:.300}")
            same = (
                first.status == 201
                and second.status == 201
                and first.body.get("blob_id") == second.body.get("blob_id")
                and second.body.get("checksum") == payload.sha256
            )
            ctx.check(same, f"dedup {store}: the second upload did not reuse the first's blob")
            added = tuple(a - b for a, b in zip(after, before, strict=True))
            ctx.check(not any(added), f"dedup {store}: the second upload added {added} to the store")
            firsts.append(first.seconds)
            seconds.append(second.seconds)
            growths.append(meter.growth)
            added_all.append(added)
            same_all.append(same)
            log(
                f"  dedup {store} #{repeat + 1}: first {first.seconds:.3f} s, "
                f"second {second.seconds:.3f} s, added {added}"
            )
        worst_added = max(added_all, key=lambda a: (abs(a[1]), abs(a[0])))
        if store == "disk":
            added_text = f"{worst_added[0]} files, {worst_added[1]} bytes"
        else:
            added_text = f"{worst_added[0]} objects, {worst_added[1]} bytes, {worst_added[2]} uploads"
        first_t, second_t = median(firsts), median(seconds)
        table.rows.append(
            [store, fmt_size(size), fmt_s(first_t), fmt_s(second_t), fmt_ratio(second_t, first_t),
             fmt_mib(worst(growths)), added_text, "yes" if all(same_all) else "NO"]
        )  # fmt: skip
        ctx.target(f"dedup on {store}: bytes written by the 2nd upload", "0", str(worst_added[1]), not any(worst_added))
    table.notes.append(f"median of {ctx.args.repeat} run(s); 'added by 2nd': the largest over the runs")
    ctx.add(table)


# -- 4. downloads ---------------------------------------------------------------------------------


def read_file(path: Path, start: int = 0, length: int | None = None) -> tuple[int, int, float]:
    """Read (part of) a file 1 MiB at a time: (bytes, CRC-32, seconds)."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    crc = received = 0
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        if start:
            handle.seek(start)
        while length is None or received < length:
            want = CHUNK if length is None else min(CHUNK, length - received)
            n = handle.readinto(view[:want])
            if not n:
                break
            crc = zlib.crc32(view[:n], crc)
            received += n
    return received, crc, time.perf_counter() - started


def s3_get(client: Any, bucket: str, key: str, byte_range: str | None = None) -> tuple[int, int, float]:
    crc = received = 0
    started = time.perf_counter()
    params = {"Bucket": bucket, "Key": key}
    if byte_range:
        params["Range"] = byte_range
    body = client.get_object(**params)["Body"]
    try:
        while chunk := body.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
            received += len(chunk)
    finally:
        body.close()
    return received, crc, time.perf_counter() - started


def bench_download(ctx: Context) -> None:
    from django_attachments.models import Attachment

    table = Table(
        "download",
        "Download (proxy mode)",
        "`GET /api/attachments/{id}/download/` of the largest object uploaded above, whole and a 1 MiB `Range`, "
        "against reading the same stored bytes without the app: a plain read of the file (disk, in the benchmark "
        "process), a bare `FileResponse` view in the same server (disk, whole file only: it serves no ranges), "
        "and one boto3 `get_object` (S3, from the benchmark process). The client reads 1 MiB at a time and checks "
        "CRC-32 on every path. The plain file read (from the page cache, no HTTP) is a floor rather than a "
        "like-for-like path; the bare `FileResponse` row is the comparison with what a project serves by hand.",
        ["store", "case", "size", "API s", "API MB/s", "API RSS+ MiB", "anchor", "anchor s", "anchor MB/s",
         "anchor RSS+ MiB", "ratio"],
    )  # fmt: skip
    me = os.getpid()
    client = s3_client(ctx) if ctx.s3_server is not None else None
    for store in ("disk", "s3"):
        if store not in ctx.kept:
            continue
        server = ctx.disk_server if store == "disk" else ctx.s3_server
        assert server is not None
        payload, body = ctx.kept[store]
        attachment = Attachment.objects.select_related("blob").get(pk=body["id"])
        identifiers = attachment.blob.storage_identifiers
        size = payload.size
        url = path_of(body["download_url"])
        length = min(MIB, size // 2)
        start = (size // 2) // MIB * MIB if size >= 2 * MIB else size // 4
        end = start + length - 1
        range_crc = payload.slice_crc(start, end)
        cases: list[tuple[str, str]] = [("full", "file read" if store == "disk" else "boto3 get_object")]
        if store == "disk":
            cases.append(("full", "bare FileResponse"))
        cases.append(("1 MiB range", "file read" if store == "disk" else "boto3 get_object"))
        for case, anchor in cases:
            ranged = case != "full"
            want_n, want_crc = (length, range_crc) if ranged else (size, payload.crc32)
            api_times, anchor_times, api_rss, anchor_rss = [], [], [], []
            for repeat in range(ctx.args.repeat):
                order = ["api", "anchor"] if repeat % 2 == 0 else ["anchor", "api"]
                for which in order:
                    sync()
                    if which == "api":
                        headers = {"Range": f"bytes={start}-{end}"} if ranged else {}
                        with PeakMeter(server.pid) as meter:
                            reply = get(server.url, url, headers)
                        ctx.check(
                            (reply.status, reply.received, reply.crc32) == (206 if ranged else 200, want_n, want_crc),
                            f"{store} API download ({case}): status {reply.status}, {reply.received} bytes, "
                            f"CRC {'ok' if reply.crc32 == want_crc else 'wrong'}",
                        )
                        api_times.append(reply.seconds)
                        api_rss.append(meter.growth)
                    elif anchor == "bare FileResponse":
                        with PeakMeter(server.pid) as meter:
                            reply = get(server.url, "/bare/download/?name=" + quote(identifiers["name"]))
                        ctx.check(
                            (reply.status, reply.received, reply.crc32) == (200, want_n, want_crc),
                            f"bare FileResponse: status {reply.status}, {reply.received} bytes",
                        )
                        anchor_times.append(reply.seconds)
                        anchor_rss.append(meter.growth)
                    else:
                        with PeakMeter(me) as meter:
                            if store == "disk":
                                path = ctx.workdir / "media" / identifiers["name"]
                                got_n, got_crc, seconds = read_file(
                                    path, start if ranged else 0, length if ranged else None
                                )
                            else:
                                got_n, got_crc, seconds = s3_get(
                                    client,
                                    identifiers["bucket"],
                                    identifiers["key"],
                                    f"bytes={start}-{end}" if ranged else None,
                                )
                        ctx.check(
                            (got_n, got_crc) == (want_n, want_crc), f"{anchor} ({case}): {got_n} bytes, CRC mismatch"
                        )
                        anchor_times.append(seconds)
                        anchor_rss.append(meter.growth)
            api_t, anchor_t = median(api_times), median(anchor_times)
            api_g = worst(api_rss)
            shown = length if ranged else size
            table.rows.append(
                [store, case, fmt_size(size), fmt_s(api_t), fmt_rate(shown, api_t), fmt_mib(api_g), anchor,
                 fmt_s(anchor_t), fmt_rate(shown, anchor_t), fmt_mib(worst(anchor_rss)), fmt_ratio(api_t, anchor_t)]
            )  # fmt: skip
            log(f"  download {store} {case} vs {anchor}: API {api_t:.3f} s, anchor {anchor_t:.3f} s")
            if anchor != "bare FileResponse":
                ctx.target(
                    f"download {store} {fmt_size(size)} {case}: server RSS growth",
                    "flat (<= 16 MiB)",
                    fmt_mib(api_g) + " MiB",
                    None if api_g is None else api_g.kib <= 16 * KIB,
                )
    table.notes.append(
        f"median of {ctx.args.repeat} run(s); MB/s of the range rows is of the 1 MiB received; anchor RSS+ is the "
        "benchmark process's for the file read and boto3, the server worker's for the bare view"
    )
    ctx.add(table)


# -- 5. list -----------------------------------------------------------------------------------------


def make_listed_owner(count: int) -> str:
    """A Thing with ``count`` attachments, each on its own blob (rows only: listing reads no bytes)."""
    from benchapp.models import Thing
    from django.db import transaction

    from django_attachments.models import Attachment, Blob

    thing = Thing.objects.create(label=f"listed-{count}")
    blobs, attachments = [], []
    for i in range(count):
        token = uuid.uuid4().hex
        blob = Blob(
            checksum=hashlib.sha256(token.encode()).hexdigest(),
            size=1000 + i,
            content_type="application/pdf",
            filename=f"file-{i}.pdf",
            storage="default",
            storage_identifiers={"storage": "default", "name": f"attachments/{token[:2]}/{token[2:4]}/{token}"},
        )
        blobs.append(blob)
        attachments.append(
            Attachment(blob=blob, owner_type="thing", owner_id=str(thing.pk), name=f"slot-{i}", description="listed")
        )
    with transaction.atomic():
        Blob.objects.bulk_create(blobs, batch_size=500)
        Attachment.objects.bulk_create(attachments, batch_size=500)
    return str(thing.pk)


def timed_requests(client: Any, url: str, n: int) -> tuple[int, int, list[float], Any]:
    """(status, queries of the last request, seconds of each, parsed body)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):  # warm-up
        client.get(url)
    times = []
    queries = 0
    response = None
    for _ in range(n):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        queries = max(queries, len(captured.captured_queries))
    assert response is not None
    return response.status_code, queries, times, json.loads(response.content)


def bench_list(ctx: Context) -> None:
    from django.test import Client

    from django_attachments.conf import app_settings

    counts = ctx.args.list_counts
    n = 5 if ctx.args.quick else 30
    page_sizes = [app_settings.PAGE_SIZE, app_settings.MAX_PAGE_SIZE]
    table = Table(
        "list",
        "List one owner's attachments",
        "`GET /api/attachments/?owner_type=thing&owner_id=…` in process through Django's test client (the "
        "project's middleware and URLs, no network), against a bare view that pages the same rows with Django's "
        "`Paginator` over `values()` (blob columns joined). Queries counted with `CaptureQueriesContext`; time is "
        f"the median of {n} requests after two warm-ups.",
        ["attachments", "page size", "rows", "API queries", "API ms", "bare queries", "bare ms", "ratio"],
    )
    client = Client()
    api_queries: set[int] = set()
    for count in counts:
        owner = make_listed_owner(count)
        for page_size in page_sizes:
            query = f"owner_type=thing&owner_id={owner}&page_size={page_size}"
            status, queries, times, body = timed_requests(client, f"/api/attachments/?{query}", n)
            rows = min(count, page_size)
            ctx.check(
                status == 200
                and isinstance(body, dict)
                and body.get("count") == count
                and len(body.get("results", [])) == rows,
                f"list {count}: API status {status}, body {body!r:.200}",
            )
            bare_status, bare_queries, bare_times, bare_body = timed_requests(client, f"/bare/list/?{query}", n)
            ctx.check(
                bare_status == 200 and bare_body.get("count") == count and len(bare_body["results"]) == rows,
                f"list {count}: bare view status {bare_status}",
            )
            api_queries.add(queries)
            api_ms, bare_ms = median(times) * 1000, median(bare_times) * 1000
            table.rows.append(
                [f"{count:,}", str(page_size), str(rows), str(queries), f"{api_ms:.1f}", str(bare_queries),
                 f"{bare_ms:.1f}", fmt_ratio(api_ms, bare_ms)]
            )  # fmt: skip
            log(
                f"  list {count} page {page_size}: API {queries} queries {api_ms:.1f} ms, "
                f"bare {bare_queries} queries {bare_ms:.1f} ms"
            )
    table.notes.append("ratio: API time / bare view time; queries: the most seen in one request")
    ctx.target("list: queries per request", "constant", ", ".join(map(str, sorted(api_queries))), len(api_queries) == 1)
    ctx.add(table)


# -- 6. purge --------------------------------------------------------------------------------------


def bench_purge(ctx: Context) -> None:
    script = BENCH_DIR / "purge_s3.py"
    pointer = (
        "Purging is measured by `benchmarks/purge_s3.py` (batched purge against one DeleteObject per blob, on "
        "moto); run it by hand: `.venv/bin/python benchmarks/purge_s3.py` (N = 100,000, about half an hour) "
        "or `--count 2000` for a quick look."
    )
    has_count = script.exists() and "--count" in script.read_text(errors="replace")
    if not (ctx.args.quick and has_count):
        table = Table("purge", "Purge", pointer if script.exists() else "benchmarks/purge_s3.py is missing.", ["-"])
        table.notes.append("not run here" + ("" if ctx.args.quick else " (runs with a small --count under --quick)"))
        print("\nPurge\n=====\n" + table.description + "\n", flush=True)
        ctx.tables.append(table)
        return
    count = 100
    log(f"  purge: running benchmarks/purge_s3.py --count {count}")
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, str(script), "--count", str(count)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - started
    output = done.stdout.strip()
    ctx.check(done.returncode == 0, f"purge_s3.py --count {count} exited {done.returncode}:\n{done.stderr[-2000:]}")
    table = Table(
        "purge",
        "Purge",
        f"`benchmarks/purge_s3.py --count {count}` (a small N; its own anchor is the naive loop), "
        f"run by this suite in {seconds:.1f} s, exit status {done.returncode}. Its output:\n\n```\n{output}\n```",
        ["-"],
    )
    print(
        f"\nPurge (benchmarks/purge_s3.py --count {count}, {seconds:.1f} s, exit {done.returncode})\n" + output + "\n",
        flush=True,
    )
    ctx.tables.append(table)


# -- machine facts and markdown --------------------------------------------------------------------


def machine_facts(ctx: Context) -> list[tuple[str, str]]:
    import boto3
    import django
    import moto
    import rest_framework
    from django.db import connection

    with open("/proc/meminfo") as meminfo:
        mem_kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as cpuinfo:
        cpu = next(line for line in cpuinfo if line.startswith("model name")).split(":", 1)[1].strip()
    if connection.vendor == "sqlite":
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    else:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            database = f"{connection.vendor} {cursor.fetchone()[0]}"
    server = ctx.args.server
    if server == "gunicorn":
        import gunicorn

        server = f"gunicorn {gunicorn.__version__}, 1 sync worker, --timeout 600"
    else:
        server = "runserver --noreload --nothreading"
    return [
        ("date", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("CPU", cpu),
        ("memory", f"{mem_kib / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("Django", django.get_version()),
        ("DRF", rest_framework.__version__),
        ("database", database),
        ("server", server),
        ("S3", f"moto {moto.__version__} (server mode, 127.0.0.1), boto3 {boto3.__version__}"),
        ("load average", " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min, at start)"),
    ]


LEGEND = (
    "Each project figure sits next to an anchor measured in the same run on the same bytes. Times are wall "
    "times, the median of the runs; MB/s are 10^6 bytes per second; ratio is project time / anchor time (above 1: "
    "the project is slower). RSS+ MiB is the peak RSS growth during the request (VmHWM of the process, reset "
    "first via /proc/PID/clear_refs; `~` marks a sampled VmRSS where the reset was refused), the largest over the "
    "runs. CPU s is user + system time of the process (all threads), in 10 ms ticks. The machine may have been "
    "running other work: see the load averages."
)


def write_markdown(ctx: Context, path: Path, facts: list[tuple[str, str]], command: str, wall: float) -> None:
    out = [
        f"## Benchmark run of {facts[0][1]}",
        "",
        f"`{command}` ({wall:.0f} s)",
        "",
        "| machine | |",
        "|:---|:---|",
    ]
    out += [f"| {k} | {v} |" for k, v in facts[1:]]
    out.append(f"| load average at end | {' / '.join(f'{x:.2f}' for x in os.getloadavg())} |")
    out += ["", LEGEND]
    for table in ctx.tables:
        out.append("")
        if table.headers == ["-"]:
            out += [f"### {table.title}", "", table.description]
            out += [f"- {n}" for n in table.notes]
        else:
            out.append(table.render_markdown())
    if ctx.targets:
        out += ["", "### Targets", "", "| what | goal | measured | met |", "|:---|:---|---:|:---|"]
        out += ["| " + " | ".join(row) + " |" for row in ctx.targets]
    out += ["", "Sanity checks: " + ("all passed." if not ctx.problems else f"{len(ctx.problems)} FAILED.")]
    path.write_text("\n".join(out) + "\n")


# -- the database ------------------------------------------------------------------------------------


@contextlib.contextmanager
def database_env() -> Iterator[dict[str, str]]:
    """SQLite in the work folder, or a fresh PostgreSQL database where DJANGO_ATTACHMENTS_TEST_PG is set."""
    address = os.environ.get("DJANGO_ATTACHMENTS_TEST_PG")
    if not address:
        yield {}
        return
    import psycopg

    host, port = address.rsplit(":", 1)
    name = f"attachments_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"BENCH_PG_HOST": host, "BENCH_PG_PORT": port, "BENCH_PG_NAME": name}
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat, 10/100 attachments (CI; < 1 min)")
    parser.add_argument("--sizes", help="upload sizes to disk, e.g. 10M,100M,1G (default: 10M,100M,1G)")
    parser.add_argument("--s3-sizes", help="upload sizes to S3 (default: 10M,100M; or --sizes up to 1G where given)")
    parser.add_argument(
        "--repeat", type=int, help="measured runs per figure, median reported (default 3; 1 with --quick)"
    )
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the tables as Markdown to FILE")
    parser.add_argument(
        "--only", help=f"comma-separated subset of: {','.join(BENCHMARKS)} (default: all)", default=",".join(BENCHMARKS)
    )
    parser.add_argument("--server", choices=["auto", "gunicorn", "runserver"], default="auto")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (databases, stored files, logs)")
    args = parser.parse_args(argv)
    args.only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
    explicit_sizes = bool(args.sizes)
    if explicit_sizes:
        args.sizes = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
    else:
        args.sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.s3_sizes:
        args.s3_sizes = sorted({parse_size(s) for s in args.s3_sizes.split(",") if s.strip()})
    elif explicit_sizes:
        args.s3_sizes = [s for s in args.sizes if s <= S3_MAX]
    else:
        args.s3_sizes = list(QUICK_S3_SIZES if args.quick else DEFAULT_S3_SIZES)
    if any(s > S3_MAX for s in args.s3_sizes):
        parser.error("S3 objects are kept to 1 GiB or less (moto holds about twice the object in memory)")
    if any(s <= 2 * TAIL for s in args.sizes + args.s3_sizes):
        parser.error("sizes must be larger than 64 bytes")
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.dedup_size = max(args.s3_sizes) if args.s3_sizes else max(args.sizes)
    args.list_counts = QUICK_LIST_COUNTS if args.quick else LIST_COUNTS
    if args.server == "auto":
        args.server = "gunicorn" if have_gunicorn() else "runserver"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    command = "benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    workdir = Path(tempfile.mkdtemp(prefix="attachments-bench-"))
    for folder in ("media", "bare-media", "tmp"):
        (workdir / folder).mkdir()
    ctx = Context(args, workdir)
    need_s3 = bool({"s3", "dedup", "download"} & set(args.only)) and bool(args.s3_sizes)
    need_disk = bool({"disk", "dedup", "download"} & set(args.only))
    largest = max(
        (args.sizes if {"disk", "download"} & set(args.only) else [0])
        + (args.s3_sizes if need_s3 else [0])
        + [args.dedup_size, 256 * KIB]
    )
    free = shutil.disk_usage(workdir).free
    needed = (2 * args.repeat + 2) * max(args.sizes) + largest
    if free < needed:
        log(f"warning: {workdir} has {free / GIB:.1f} GiB free; this run may need about {needed / GIB:.1f} GiB")
    log(f"work folder {workdir}; server: {args.server}; sizes: {', '.join(map(fmt_size, args.sizes))}; "
        f"S3 sizes: {', '.join(map(fmt_size, args.s3_sizes))}; repeat: {args.repeat}")  # fmt: skip
    sys.path[:0] = [str(BENCH_DIR), str(REPO_ROOT)]
    try:
        with contextlib.ExitStack() as stack:
            db_env = stack.enter_context(database_env())
            base_env = {
                **{k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}},
                **AWS_ENV,
                **db_env,
                "BENCH_WORKDIR": str(workdir),
                "DJANGO_SETTINGS_MODULE": "benchproject.settings",
                "PYTHONPATH": os.pathsep.join(
                    [str(BENCH_DIR), str(REPO_ROOT)]
                    + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
                ),
                "PYTHONUNBUFFERED": "1",
                "TMPDIR": str(workdir / "tmp"),
            }
            if need_s3:
                ctx.s3_endpoint = stack.enter_context(moto_server(workdir))
                import boto3

                ctx.bucket = f"bench-{uuid.uuid4().hex[:12]}"
                boto3.client("s3", endpoint_url=ctx.s3_endpoint, region_name="us-east-1").create_bucket(
                    Bucket=ctx.bucket
                )
                base_env.update(BENCH_S3_ENDPOINT=ctx.s3_endpoint, BENCH_S3_BUCKET=ctx.bucket)
            os.environ.update(
                {k: v for k, v in base_env.items() if k.startswith("BENCH_") or k == "DJANGO_SETTINGS_MODULE"}
            )

            import django

            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0, interactive=False)
            from benchapp.models import Thing

            ctx.thing_id = str(Thing.objects.create(label="uploads").pk)
            facts = machine_facts(ctx)
            print("Machine")
            print("=======")
            for key, value in facts:
                print(f"  {key:13} {value}")
            print(flush=True)

            if need_disk or need_s3:
                ctx.pool = Pool(workdir / "pool.bin", max(args.sizes + args.s3_sizes + [args.dedup_size, 256 * KIB]))
            if need_disk:
                ctx.disk_server = stack.enter_context(
                    project_server(args.server, {**base_env, "BENCH_STORAGE": "default"}, workdir, "disk")
                )
                warm_up(ctx, ctx.disk_server, bare=True)
            if need_s3:
                ctx.s3_server = stack.enter_context(
                    project_server(args.server, {**base_env, "BENCH_STORAGE": "s3"}, workdir, "s3")
                )
                warm_up(ctx, ctx.s3_server, bare=False)

            steps: list[tuple[str, Callable[[Context], None]]] = [
                ("disk", bench_disk_upload),
                ("s3", bench_s3_upload),
                ("dedup", bench_dedup),
                ("download", bench_download),
                ("list", bench_list),
                ("purge", bench_purge),
            ]
            for name, step in steps:
                if name not in args.only or (name == "s3" and not need_s3):
                    continue
                if name == "download":
                    # Without the upload benchmarks, upload one object per store to download.
                    if "disk" not in ctx.kept and need_disk:
                        keep_one(ctx, ctx.disk_server, max(args.sizes), "disk")
                    if "s3" not in ctx.kept and need_s3:
                        keep_one(ctx, ctx.s3_server, max(args.s3_sizes), "s3")
                log(f"[{name}]")
                step(ctx)
            wall = time.perf_counter() - started
            print_targets(ctx)
            if args.markdown:
                write_markdown(ctx, args.markdown, facts, command, wall)
                log(f"Markdown written to {args.markdown}")
            for server in (ctx.disk_server, ctx.s3_server):
                if server is not None and "Traceback" in server.logfile.read_text(errors="replace"):
                    log(f"note: the {server.logfile.name} has tracebacks; see it with --keep")
    finally:
        if ctx.pool is not None:
            ctx.pool.close()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - started
    if ctx.problems:
        print(f"\n{len(ctx.problems)} sanity check(s) FAILED (the benchmark is broken, not slow):")
        for problem in ctx.problems:
            print(f"  - {problem}")
        print(f"\nfinished in {wall:.1f} s")
        return 1
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nAll sanity checks passed; finished in {wall:.1f} s (load average at end: {load}).")
    return 0


def print_targets(ctx: Context) -> None:
    if not ctx.targets:
        return
    table = Table(
        "targets", "Targets (for information; nothing fails on them)", "", ["what", "goal", "measured", "met"]
    )
    table.rows = ctx.targets
    print("\n" + table.render_text() + "\n", flush=True)


def warm_up(ctx: Context, server: Server, *, bare: bool) -> None:
    """Imports, libmagic, the upload handlers, the first queries and the download path, before measuring."""
    assert ctx.pool is not None
    payload = Payload(ctx.pool, 256 * KIB)
    reply = post_multipart(server.url, "/api/attachments/", api_fields(ctx, "warm-up"), payload, "w.bin")
    if reply.status != 201:
        raise SystemExit(f"warm-up upload answered {reply.status}: {reply.body!r:.500}\n{server.log_tail()}")
    got = get(server.url, path_of(reply.body["download_url"]))
    if (got.status, got.crc32) != (200, payload.crc32):
        raise SystemExit(f"warm-up download answered {got.status}\n{server.log_tail()}")
    get(server.url, f"/api/attachments/?owner_type=thing&owner_id={ctx.thing_id}")
    if bare:
        reply = post_multipart(server.url, "/bare/upload/", api_fields(ctx, "warm-up"), payload, "w.bin")
        if reply.status != 201:
            raise SystemExit(f"warm-up bare upload answered {reply.status}: {reply.body!r:.500}\n{server.log_tail()}")


def keep_one(ctx: Context, server: Server | None, size: int, store: str) -> None:
    assert server is not None and ctx.pool is not None
    payload = Payload(ctx.pool, size)
    reply = post_multipart(server.url, "/api/attachments/", api_fields(ctx, "download"), payload, "k.bin")
    if ctx.check(
        reply.status == 201 and reply.body.get("checksum") == payload.sha256, f"upload for download: {reply.status}"
    ):
        ctx.kept[store] = (payload, reply.body)


if __name__ == "__main__":
    sys.exit(main())
