"""12. Moving blobs to S3 (``migrate``): ``manage.py migrate_attachments --to s3`` next to a boto3 upload loop.

Ten thousand blobs (``--migrate-blobs``; 100 with ``--quick``) of mixed
sizes, about 1 GiB in all (about 10 MiB with ``--quick``), are made once on
the benchmark project's local disk (the ``default`` alias), then moved to a
SeaweedFS bucket (the ``s3`` alias) over and over, in rounds. Per round and
per concurrency N (1, 2, 4, 8; 1 and 4 with ``--quick``), in an order that
alternates from one N to the next and from round to round (one round unless
``--repeat`` is given: ten thousand blobs take about 45 minutes a round on 2
cores):

- the anchor: boto3's ``upload_file`` of the same files to a fresh bucket of
  the same SeaweedFS, from this process, with the default
  ``TransferConfig``: a plain loop for N = 1, a thread pool of N sharing one
  client otherwise; no verification, no database;
- ``migrate_attachments --to s3 --tenant migrate-bench --concurrency N
  --json`` in a child process (the benchmark project, with the ``s3`` alias
  on a fresh bucket): each blob's bytes streamed from disk to SeaweedFS
  (their SHA-256 checked on the way and sent with the bytes, which SeaweedFS
  checks), the copy verified (SeaweedFS reports its SHA-256 on HEAD), the
  row switched under its lock, the disk object kept as a copy. The rows are
  put back on disk between runs (the files stay where they are).

Figures: wall time (the anchor's loop; the command's ``call_command``, timed
inside the child after Django's setup, which is given apart), the ratio
migration / anchor at the same N paired per round (median and spread), the
speed-up over N = 1, the CPU time of the process doing it (this one for the
anchor, the child for the command) and of SeaweedFS, and the peak RSS
growth of that process over the run. Where the command's time goes: the
child wraps (by attribute, timing only) the target store's ``copy_from``
(the transfer), ``replicas.verify_copy`` (the HEAD), ``migrating._switch``
(the transaction) and every SQL statement (``execute_wrappers``), summed
over its threads.

The blobs are written straight to disk and inserted with ``bulk_create``
(random bytes, SHA-256 computed on the way; rows and keys as
``services.attach`` makes them, one attachment each), not through the
services: ten thousand uploads would take minutes and measure the upload,
not the move.

Sanity checks after every run: the command's exit status and summary (every
blob copied, verified and switched; none failed), every row on ``s3`` in the
run's bucket, the bucket's keys exactly the rows' (for the anchor: one
object per file), and a spot check: the largest blob and 24 others read back
with boto3 and hashed, against the row's SHA-256 and size.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import AWS_ENV, BENCH_DIR, CHUNK, GIB, KIB, MIB, log
from .context import Context
from .measure import PeakMeter, cpu_seconds, median, sync
from .report import Table, fmt_size

DEFAULT_BLOBS = 10_000
QUICK_BLOBS = 100
#: The total is proportional: about 1 GiB for ten thousand blobs.
BYTES_PER_BLOB = GIB // DEFAULT_BLOBS
CONCURRENCY = [1, 2, 4, 8]
QUICK_CONCURRENCY = [1, 4]
TENANT = "migrate-bench"
SPOT_CHECKS = 24
TARGET = 1.3
ANCHOR, OURS = "upload_file loop", "migrate_attachments"


# -- the blobs -------------------------------------------------------------------------


def blob_sizes(count: int, total: int, rng: random.Random) -> list[int]:
    """``count`` sizes adding up to about ``total``: mostly 1 KiB-1 MiB, log-normal, and one in 200 of 2-6 MiB.

    A clinic's mix: scanned letters and lab PDFs of tens of KiB, phone photos
    of a few hundred KiB, the odd large scan or X-ray export of several MiB.
    The log-normal part is scaled (median first guessed at 48 KiB) until the
    whole is within 1% of ``total``.
    """
    large = [rng.randint(2 * MIB, 6 * MIB) for _ in range(max(1, count // 200))]
    rest = count - len(large)
    shapes = [rng.lognormvariate(0.0, 1.2) for _ in range(rest)]
    budget = max(total - sum(large), rest * KIB)
    scale = 48 * KIB
    for _ in range(40):
        sizes = [min(MIB, max(KIB, int(scale * s))) for s in shapes]
        got = sum(sizes)
        if abs(got - budget) <= budget / 100:
            break
        scale *= budget / got
    mixed = sizes + large
    rng.shuffle(mixed)
    return mixed


@dataclass
class Seeded:
    """The blobs made on disk: per blob its id, file, size, SHA-256 and disk name."""

    ids: list[str]
    paths: list[Path]
    sizes: list[int]
    checksums: list[str]
    names: list[str]
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sizes)


def seed(ctx: Context, count: int) -> Seeded:
    """Write ``count`` files of random bytes under MEDIA_ROOT and insert their rows in bulk (see the docstring)."""
    from benchapp.models import Thing
    from django.conf import settings

    from django_attachments.models import Attachment, Blob
    from django_attachments.stores import get_store

    started = time.perf_counter()
    store = get_store("default")
    media = Path(settings.MEDIA_ROOT)
    sizes = blob_sizes(count, count * BYTES_PER_BLOB, random.Random(18))
    owner = str(Thing.objects.create(label="migrate").pk)
    seeded = Seeded([], [], [], [], [])
    blobs, links = [], []
    for number, size in enumerate(sizes):
        name = store.new_name()
        path = media / name
        path.parent.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        with open(path, "wb") as out:
            left = size
            while left:
                block = os.urandom(min(CHUNK, left))
                hasher.update(block)
                out.write(block)
                left -= len(block)
        blob_id = uuid.uuid4()
        checksum = hasher.hexdigest()
        blobs.append(
            Blob(
                id=blob_id,
                checksum=checksum,
                size=size,
                content_type="application/octet-stream",
                filename=f"document-{number}.bin",
                storage="default",
                storage_identifiers={"storage": "default", "name": name},
                tenant=TENANT,
            )
        )
        links.append(Attachment(blob_id=blob_id, owner_type="thing", owner_id=owner, name="documents"))
        seeded.ids.append(str(blob_id))
        seeded.paths.append(path)
        seeded.sizes.append(size)
        seeded.checksums.append(checksum)
        seeded.names.append(name)
    Blob.objects.bulk_create(blobs, batch_size=500)
    Attachment.objects.bulk_create(links, batch_size=500)
    seeded.seconds = time.perf_counter() - started
    return seeded


def reset(ctx: Context, seeded: Seeded) -> bool:
    """Put every seeded row back on disk (its retained copy's identifiers) and drop the copies; checked."""
    from django.db import transaction
    from django.db.models import OuterRef, Subquery

    from django_attachments.models import Blob, Replica

    old = Replica.objects.filter(blob=OuterRef("pk"), variant__isnull=True, storage="default")
    with transaction.atomic():
        Blob.objects.filter(tenant=TENANT).exclude(storage="default").update(
            storage="default", storage_identifiers=Subquery(old.values("storage_identifiers")[:1])
        )
        Replica.objects.filter(blob__tenant=TENANT).delete()
    rows = dict(Blob.objects.filter(tenant=TENANT).values_list("id", "storage_identifiers"))
    expected = {uuid.UUID(i): {"storage": "default", "name": n} for i, n in zip(seeded.ids, seeded.names, strict=True)}
    return ctx.check(rows == expected, "migrate: the rows did not go back to their disk objects between runs")


def drop(seeded: Seeded) -> None:
    """Remove the seeded rows and files (the benchmark's last step; the work folder goes anyway)."""
    from django_attachments.models import Attachment, Blob, Replica

    Replica.objects.filter(blob__tenant=TENANT).delete()
    Attachment.objects.filter(blob__tenant=TENANT).delete()
    Blob.objects.filter(tenant=TENANT).delete()
    for path in seeded.paths:
        path.unlink(missing_ok=True)


# -- one run ---------------------------------------------------------------------------


@dataclass
class Run:
    """One measured run of one case at one concurrency."""

    case: str
    concurrency: int
    seconds: float = 0.0
    cpu: float | None = None  # of the process doing it
    store_cpu: float | None = None  # of SeaweedFS
    rss_kib: int | None = None  # peak RSS growth of the process doing it
    setup: float | None = None  # the child's Python and Django start-up, before the command
    summary: dict[str, Any] = field(default_factory=dict)
    timers: dict[str, float] = field(default_factory=dict)
    ok: bool = False


@dataclass
class Bucket:
    """SeaweedFS, its boto3 client, and the bucket of the run in hand."""

    endpoint: str
    boto: Any
    store_pid: int | None
    name: str = ""

    def fresh(self) -> str:
        """A new bucket, its first write done (the collection's volumes grown) and undone."""
        self.name = f"migrate-{uuid.uuid4().hex[:12]}"
        self.boto.create_bucket(Bucket=self.name)
        self.boto.put_object(Bucket=self.name, Key="warm-up", Body=b"warm-up")
        self.boto.delete_object(Bucket=self.name, Key="warm-up")
        return self.name

    def keys(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for page in self.boto.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            found.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
        return found

    def drop(self) -> None:
        """Delete the bucket with its objects (SeaweedFS drops the collection), so that disk use stays at one run's."""
        with contextlib.suppress(Exception):
            self.boto.delete_bucket(Bucket=self.name)

    def sha256(self, key: str) -> tuple[str, int]:
        hasher, size = hashlib.sha256(), 0
        body = self.boto.get_object(Bucket=self.name, Key=key)["Body"]
        for chunk in iter(lambda: body.read(CHUNK), b""):
            hasher.update(chunk)
            size += len(chunk)
        return hasher.hexdigest(), size


def run_anchor(ctx: Context, bucket: Bucket, seeded: Seeded, concurrency: int) -> Run:
    """boto3's upload_file of every file: a loop, or a pool of ``concurrency`` threads sharing one client."""
    from boto3.s3.transfer import TransferConfig

    name = bucket.fresh()
    config = TransferConfig()
    keys = [f"anchor/{uuid.uuid4().hex}" for _ in seeded.paths]

    def upload(index: int) -> None:
        bucket.boto.upload_file(str(seeded.paths[index]), name, keys[index], Config=config)

    run = Run(ANCHOR, concurrency)
    sync()
    store_before = cpu_seconds(bucket.store_pid) if bucket.store_pid else None
    try:
        with PeakMeter(os.getpid()) as meter:
            started = time.perf_counter()
            if concurrency == 1:
                for index in range(len(keys)):
                    upload(index)
            else:
                with ThreadPoolExecutor(concurrency) as pool:
                    list(pool.map(upload, range(len(keys))))
            run.seconds = time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 (a sanity check, with boto3's own words)
        ctx.check(False, f"migrate: {ANCHOR} x{concurrency}: {exc}")
        return run
    run.store_cpu = _delta(bucket.store_pid, store_before)
    run.cpu, run.rss_kib = meter.cpu, meter.growth.kib if meter.growth else None
    listed = bucket.keys()
    run.ok = ctx.check(
        listed == dict(zip(keys, seeded.sizes, strict=True)),
        f"migrate: {ANCHOR} x{concurrency}: the bucket holds {len(listed)} objects, not the {len(keys)} files",
    ) and spot_check(ctx, bucket, seeded, keys, f"{ANCHOR} x{concurrency}")
    return run


def run_command(
    ctx: Context, env: dict[str, str], bucket: Bucket, seeded: Seeded, concurrency: int, profile: Path | None = None
) -> Run:
    """``migrate_attachments`` in a child process (see :func:`child`), then the sanity checks.

    With ``profile``, under cProfile, its stats written there.
    """
    from django_attachments.models import Blob, Replica

    name = bucket.fresh()
    run = Run(OURS, concurrency)
    if not reset(ctx, seeded):
        return run
    child_env = {**env, "BENCH_STORAGE": "default", "BENCH_S3_ENDPOINT": bucket.endpoint, "BENCH_S3_BUCKET": name}
    sync()
    store_before = cpu_seconds(bucket.store_pid) if bucket.store_pid else None
    done = subprocess.run(
        [sys.executable, "-m", "suite.migrate", "--child"]
        + (["--profile", str(profile)] if profile else [])
        + command_args(concurrency),
        cwd=BENCH_DIR,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    run.store_cpu = _delta(bucket.store_pid, store_before)
    try:
        measured = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        ctx.check(False, f"migrate: {OURS} x{concurrency} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return run
    run.seconds, run.cpu, run.rss_kib, run.setup = (
        measured["seconds"],
        measured["cpu"],
        measured["rss_kib"],
        measured["setup"],
    )
    run.summary, run.timers = measured["summary"], measured["timers"]
    what = f"{OURS} x{concurrency}"
    count = len(seeded.ids)
    summary = run.summary
    if not ctx.check(
        measured["exit"] == 0
        and summary.get("copied") == count
        and summary.get("moved") == count
        and summary.get("verified") == count
        and not summary.get("failed"),
        f"migrate: {what} exited {measured['exit']}: {json.dumps(summary)[:600]}\n{done.stderr[-2000:]}",
    ):
        return run
    rows = list(Blob.objects.filter(tenant=TENANT).values_list("id", "storage", "storage_identifiers", "size"))
    keys = {ids.get("key"): size for _, storage, ids, size in rows if storage == "s3" and ids.get("bucket") == name}
    if not ctx.check(
        len(keys) == count and Replica.objects.filter(blob__tenant=TENANT, storage="default").count() == count,
        f"migrate: {what}: {len(keys)} of {count} rows on s3 in bucket {name}, or a disk copy not recorded",
    ):
        return run
    listed = bucket.keys()
    if not ctx.check(listed == keys, f"migrate: {what}: the bucket holds {len(listed)} objects; the rows {count}"):
        return run
    by_id = {str(blob_id): ids["key"] for blob_id, _, ids, _ in rows}
    run.ok = spot_check(ctx, bucket, seeded, [by_id[i] for i in seeded.ids], what)
    return run


def command_args(concurrency: int) -> list[str]:
    return ["--to", "s3", "--tenant", TENANT, "--concurrency", str(concurrency), "--json"]


def spot_check(ctx: Context, bucket: Bucket, seeded: Seeded, keys: list[str], what: str) -> bool:
    """The largest blob and SPOT_CHECKS others, read back and hashed: the seeded SHA-256 and size."""
    largest = max(range(len(keys)), key=lambda i: seeded.sizes[i])
    picked = {largest, *random.Random(len(keys)).sample(range(len(keys)), min(SPOT_CHECKS, len(keys)))}
    for index in sorted(picked):
        got = bucket.sha256(keys[index])
        if not ctx.check(
            got == (seeded.checksums[index], seeded.sizes[index]),
            f"migrate: {what}: object {keys[index]} reads back as {got}, not blob {seeded.ids[index]}'s bytes",
        ):
            return False
    return True


def _delta(pid: int | None, before: float | None) -> float | None:
    if pid is None or before is None:
        return None
    now = cpu_seconds(pid)
    return None if now is None else now - before


# -- the child -------------------------------------------------------------------------


class Timers:
    """Seconds spent in wrapped functions and SQL statements, summed over the threads (timing only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.lock = threading.Lock()
        self.local = threading.local()

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.seconds[name + " calls"] = self.seconds.get(name + " calls", 0) + 1

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            previous = getattr(self.local, "inside", None)
            self.local.inside = name  # the innermost, for the statements it runs
            try:
                return function(*args, **kwargs)
            finally:
                self.local.inside = previous
                self.add(name, time.perf_counter() - started)

        return timed

    def sql(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            inside = getattr(self.local, "inside", None)
            self.add(f"sql in {inside}" if inside else "sql outside", time.perf_counter() - started)


def child(argv: list[str]) -> None:
    """Run ``migrate_attachments`` with ``argv``; print one JSON line: time, CPU, peak RSS, summary, timers.

    ``--profile FILE`` (first) runs it under cProfile and writes the stats to FILE.
    """
    started = time.perf_counter()
    profile = None
    if argv[:1] == ["--profile"]:
        profile, argv = argv[1], argv[2:]
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db.backends.signals import connection_created

    from django_attachments.services import migrating, replicas
    from django_attachments.stores import get_store
    from tests.servers import reset_peak, status_kib

    timers = Timers()
    target = get_store("s3")
    target.copy_from = timers.wrap("copy", target.copy_from)  # type: ignore[method-assign]
    replicas.verify_copy = timers.wrap("verify", replicas.verify_copy)  # type: ignore[assignment]
    migrating._switch_all = timers.wrap("switch", migrating._switch_all)  # type: ignore[assignment]
    migrating.move_blobs = timers.wrap("blob", migrating.move_blobs)  # type: ignore[assignment]

    def wrap_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
        connection.execute_wrappers.append(timers.sql)

    connection_created.connect(wrap_connection, weak=False)
    out, err = io.StringIO(), io.StringIO()
    pid = os.getpid()
    reset = reset_peak(pid)
    rss_before = status_kib(pid, "VmHWM" if reset else "VmRSS")
    setup = time.perf_counter() - started
    cpu_before = time.process_time()
    began = time.perf_counter()
    code = 0
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        call_command("migrate_attachments", *argv, stdout=out, stderr=err)
    except CommandError as exc:
        code = exc.returncode
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    rss_kib = status_kib(pid, "VmHWM") - rss_before if reset else None
    lines = [line for line in out.getvalue().splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {"output": out.getvalue()[-2000:], "errors": err.getvalue()[-2000:]}
    print(
        json.dumps(
            {
                "exit": code,
                "seconds": seconds,
                "cpu": cpu,
                "rss_kib": rss_kib,
                "setup": setup,
                "summary": summary,
                "timers": timers.seconds,
            }  # fmt: skip
        )
    )


# -- the benchmark ---------------------------------------------------------------------


@contextlib.contextmanager
def seaweedfs(ctx: Context) -> Iterator[Bucket]:
    import shutil

    import boto3

    from tests.servers import seaweedfs_server

    from .multipart import store_pid

    folder = ctx.workdir / "migrate"
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
            yield Bucket(endpoint, boto, store_pid(endpoint))
    finally:
        shutil.rmtree(folder / "seaweedfs", ignore_errors=True)


def bench_migrate(ctx: Context, env: dict[str, str]) -> None:
    count = ctx.args.migrate_blobs
    levels = QUICK_CONCURRENCY if ctx.args.quick else CONCURRENCY
    try:
        from tests.servers import weed_binary

        weed_binary()
    except RuntimeError as exc:
        log(f"  migrate: skipped: {exc}")
        ctx.tables.append(Table("migrate", "Moving blobs to S3", f"skipped: {exc}", ["-"]))
        return
    started = time.perf_counter()
    seeded = seed(ctx, count)
    log(f"  migrate: {count} blobs, {fmt_size(seeded.total)} ({seeded.total / MIB:.0f} MiB), written and inserted "
        f"in {seeded.seconds:.1f} s")  # fmt: skip
    rounds: list[list[Run]] = []
    try:
        with seaweedfs(ctx) as bucket:
            # Warm-up (not measured): the clients, SeaweedFS's first volumes, the child's imports.
            warm = Seeded(*(values[:50] for values in (seeded.ids, seeded.paths, seeded.sizes, seeded.checksums,
                                                       seeded.names)))  # fmt: skip
            run_anchor(ctx, bucket, warm, 2)
            bucket.drop()
            for repeat in range(rounds_of(ctx)):
                runs: list[Run] = []
                for level in levels:
                    order = [ANCHOR, OURS] if (repeat + levels.index(level)) % 2 == 0 else [OURS, ANCHOR]
                    for case in order:
                        if case == ANCHOR:
                            run = run_anchor(ctx, bucket, seeded, level)
                        else:
                            run = run_command(ctx, env, bucket, seeded, level)
                        bucket.drop()
                        runs.append(run)
                        log_run(repeat, run, seeded)
                rounds.append(runs)
            profiled = None
            if ctx.args.migrate_profile:
                # Apart from the figures: cProfile slows the Python parts more than the waits.
                path = Path(f"{ctx.args.migrate_profile}.prof")
                profiled = run_command(ctx, env, bucket, seeded, 1, profile=path)
                bucket.drop()
                log(f"  migrate: profile of one run at N = 1 ({profiled.seconds:.1f} s) written to {path}")
    finally:
        drop(seeded)
    log(f"  migrate: done in {time.perf_counter() - started:.1f} s")
    report(ctx, seeded, levels, rounds)
    if profiled is not None and profiled.ok:
        report_profile(ctx, Path(f"{ctx.args.migrate_profile}.prof"), profiled, len(seeded.ids))


def rounds_of(ctx: Context) -> int:
    """One round unless ``--repeat`` says otherwise: a round of ten thousand blobs takes about 45 minutes here."""
    return ctx.args.repeat if ctx.args.repeat_explicit else 1


def log_run(repeat: int, run: Run, seeded: Seeded) -> None:
    timers = run.timers
    parts = ", ".join(
        f"{k} {timers[k]:.1f} s"
        for k in ("blob", "copy", "verify", "switch", "sql in switch", "sql in blob")
        if k in timers
    )
    rate = len(seeded.ids) / max(run.seconds, 1e-9)
    log(f"  migrate #{repeat + 1} {run.case} x{run.concurrency}: {run.seconds:.2f} s ({rate:.0f} blobs/s), "
        f"CPU {run.cpu or 0:.1f} s, SeaweedFS CPU {run.store_cpu or 0:.1f} s"
        + (f"; {parts}" if parts else "") + ("" if run.ok else "; FAILED"))  # fmt: skip


# -- the tables ------------------------------------------------------------------------


def spread(values: list[float], digits: int = 2, unit: str = "") -> str:
    """Median (min–max), each followed by ``unit``."""
    if not values:
        return "-"
    text = f"{median(values):.{digits}f}{unit}"
    return text + (f" ({min(values):.{digits}f}–{max(values):.{digits}f}{unit})" if len(values) > 1 else "")


def paired(rounds: list[list[Run]], level: int, key: Callable[[Run], float | None]) -> list[float]:
    """key(ours) / key(anchor) at ``level`` in each round where both succeeded."""
    found = []
    for runs in rounds:
        by = {r.case: r for r in runs if r.concurrency == level and r.ok}
        if OURS in by and ANCHOR in by:
            ours, anchor = key(by[OURS]), key(by[ANCHOR])
            if ours is not None and anchor:
                found.append(ours / anchor)
    return found


def report(ctx: Context, seeded: Seeded, levels: list[int], rounds: list[list[Run]]) -> None:
    count, total = len(seeded.ids), seeded.total
    times = Table(
        "migrate",
        f"Moving {count:,} blobs ({total / MIB:,.0f} MiB) from local disk to SeaweedFS",
        "`migrate_attachments --to s3 --tenant migrate-bench --concurrency N --json` in a child process (the "
        "benchmark project; stream from disk, SHA-256 checked on the way and by SeaweedFS, copy verified by HEAD, "
        "row switched under its lock, disk object kept as a copy), against boto3's `upload_file` of the same files "
        "(default `TransferConfig`; a loop, or N threads sharing one client; no verification, no database), each "
        "run to a fresh bucket of one SeaweedFS. Seconds: the command's `call_command` (the child's start-up "
        "apart), the anchor's loop; median (min–max) over the rounds. Ratio: migration / anchor at the same N, "
        "paired per round. Speed-up: N = 1's median time / this one's. CPU: the process doing the work (the "
        "child; this process for the anchor), and SeaweedFS. RSS+: that process's peak RSS growth over the run, "
        "the largest over the rounds.",
        ["case", "N", "seconds", "blobs/s", "MB/s", "ratio", "speed-up", "CPU s", "SeaweedFS CPU s", "RSS+ MiB",
         "start-up s"],
    )  # fmt: skip
    for level in levels:
        for case in (ANCHOR, OURS):
            done = [r for runs in rounds for r in runs if r.case == case and r.concurrency == level and r.ok]
            if not done:
                times.rows.append([case, str(level)] + ["-"] * 9)
                continue
            seconds = median([r.seconds for r in done])
            base = [r.seconds for runs in rounds for r in runs if r.case == case and r.concurrency == 1 and r.ok]
            rss = [r.rss_kib for r in done if r.rss_kib is not None]
            times.rows.append(
                [case + (" (anchor)" if case == ANCHOR else ""), str(level), spread([r.seconds for r in done]),
                 f"{count / seconds:,.0f}", f"{total / seconds / 1e6:.1f}",
                 spread(paired(rounds, level, lambda r: r.seconds), unit="x") if case == OURS else "-",
                 f"{median(base) / seconds:.2f}x" if base else "-",
                 spread([r.cpu for r in done if r.cpu is not None], 1),
                 spread([r.store_cpu for r in done if r.store_cpu is not None], 1),
                 f"{max(rss) / 1024:.1f}" if rss else "-",
                 spread([r.setup for r in done if r.setup is not None]) if case == OURS else "-"]
            )  # fmt: skip
    times.notes.append(
        f"{len(rounds)} round(s); sizes: median {fmt_size(int(median(seeded.sizes)))}, smallest "
        f"{fmt_size(min(seeded.sizes))}, largest {fmt_size(max(seeded.sizes))}, "
        f"{sum(s >= 2 * MIB for s in seeded.sizes)} of 2 MiB or more; seeded in {seeded.seconds:.1f} s"
    )
    ctx.add(times)

    where = Table(
        "migrate-time",
        "Moving blobs to SeaweedFS: where the command's time goes",
        "Seconds summed over the command's threads (so above the wall time when N > 1), median over the rounds: "
        "`copy` is the target store's `copy_from` (read from disk, SHA-256 on the way, PUT with the checksum); "
        "`verify` is `replicas.verify_copy` (a HEAD that reports SeaweedFS's SHA-256); `switch` the transaction "
        "under the row lock (`sql in switch` its statements); `sql in blob` the other statements of `move_blob` "
        "(the blob, its copies and variants); `per blob` the rest of `move_blob`; `outside` the command's wall "
        "time not in `move_blob` (listing pages, hand-off, the progress callback). ms/blob: per blob, summed "
        "over threads; SQL/blob: statements per blob.",
        ["N", "wall s", "copy s", "verify s", "switch s", "sql in switch s", "sql in blob s", "per blob s",
         "outside s", "sql outside s", "copy ms/blob", "verify ms/blob", "switch ms/blob", "SQL/blob", "verified by"],
    )  # fmt: skip
    for level in levels:
        done = [r for runs in rounds for r in runs if r.case == OURS and r.concurrency == level and r.ok]
        if not done:
            where.rows.append([str(level)] + ["-"] * 14)
            continue

        def part(name: str, runs: list[Run] = done) -> float:
            return median([r.timers.get(name, 0.0) for r in runs])

        rest = median([r.timers.get("blob", 0.0) - sum(r.timers.get(k, 0.0) for k in ("copy", "verify", "switch"))
                       - r.timers.get("sql in blob", 0.0) for r in done])  # fmt: skip
        outside = median([max(0.0, r.seconds - r.timers.get("blob", 0.0) / level) for r in done])
        statements = median([sum(v for k, v in r.timers.items() if k.startswith("sql") and k.endswith(" calls"))
                             for r in done])  # fmt: skip
        summary = done[0].summary
        where.rows.append(
            [str(level), spread([r.seconds for r in done]), f"{part('copy'):.1f}", f"{part('verify'):.1f}",
             f"{part('switch'):.1f}", f"{part('sql in switch'):.1f}", f"{part('sql in blob'):.1f}", f"{rest:.1f}",
             f"{outside:.1f}", f"{part('sql outside'):.1f}", f"{part('copy') / count * 1000:.2f}",
             f"{part('verify') / count * 1000:.2f}", f"{part('switch') / count * 1000:.2f}",
             f"{statements / count:.1f}",
             f"checksum {summary.get('verified_by_checksum', 0)}, read {summary.get('verified_by_read', 0)}"]
        )  # fmt: skip
    where.notes.append(
        "`per blob` is what `move_blob` spends outside copy, verify, switch and its own SQL (Python, the signal); "
        "`outside` is the wall time minus `move_blob`'s summed time / N; `sql outside` the statements run outside "
        "`move_blob` (the listing's pages, counted into `outside`)."
    )
    ctx.add(where)
    for level in levels:
        found = paired(rounds, level, lambda r: r.seconds)
        ctx.target(
            f"migrate {count:,} blobs ({total / MIB:,.0f} MiB) disk -> SeaweedFS, N = {level}: vs upload_file loop",
            f"<= {TARGET}x",
            spread(found, unit="x"),
            None if not found else median(found) <= TARGET,
        )


def report_profile(ctx: Context, path: Path, run: Run, count: int) -> None:
    """The profiled run's top functions (cumulative), and the parts of a blob's move, per blob."""
    import pstats

    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    table = Table(
        "migrate-profile",
        "Moving blobs to SeaweedFS: one run at N = 1 under cProfile",
        f"`migrate_attachments {' '.join(command_args(1))}` under cProfile ({run.seconds:.1f} s, against the "
        "unprofiled run's in the table above): the 25 functions with the most cumulative time, per blob. cProfile "
        "slows Python code (the ORM, botocore's request building) more than waiting (the network, fsync).",
        ["function", "calls/blob", "cumulative ms/blob", "own ms/blob"],
    )
    ranked = sorted(entries.items(), key=lambda item: item[1][3], reverse=True)
    for (filename, line, name), (_, calls, own, cumulative, _) in ranked[:25]:
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else filename
        table.rows.append(
            [
                f"{name} ({where})",
                f"{calls / count:.1f}",
                f"{cumulative / count * 1000:.2f}",
                f"{own / count * 1000:.2f}",
            ]
        )
    ctx.add(table)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--child"]:
        raise SystemExit("usage: python -m suite.migrate --child [--profile FILE] MIGRATE_ATTACHMENTS_ARGS...")
    child(sys.argv[2:])
