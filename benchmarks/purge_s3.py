"""Benchmark: purging orphan blobs on S3, batched against one request per object.

    .venv/bin/python benchmarks/purge_s3.py                  # N = 100,000, SQLite
    .venv/bin/python benchmarks/purge_s3.py --count 2000     # a quick run
    .venv/bin/python -m tests.pgcluster -- .venv/bin/python benchmarks/purge_s3.py   # PostgreSQL

Starts a moto S3 server on a free port of 127.0.0.1 (stopped at the end), sets
Django up on ``tests.settings`` with the storage alias ``bench`` (S3Storage
against moto) as ``DJANGO_ATTACHMENTS["STORAGE"]``, on a temporary SQLite file
or, when ``DJANGO_ATTACHMENTS_TEST_PG`` is set, on a fresh PostgreSQL database
(created and dropped here), and migrates it.

Then, for each path, on identically prepared data:

1. prepare N orphan blobs: N objects of 100 bytes put into the bucket by a
   thread pool (keys as the app makes them, ``attachments/ab/cd/<hex>``), N
   ``Blob`` rows by ``bulk_create`` with ``created_at`` two days ago and older,
   a millisecond apart (past the grace period; ``--same-created-at`` gives
   them all one instant instead); the preparation is timed apart and checked
   (N rows, N objects listed under the prefix);
2. purge, timed with ``time.perf_counter``:

   - ``batched``: ``services.purge_orphans(batch_size=1000)``;
   - ``naive``: for each orphan blob (same query as the purge), delete its row
     in its own transaction, then ``S3Store.delete(identifiers)``, one
     ``DeleteObject`` request per object;

3. check: no ``Blob`` row left, no object left under the prefix.

S3 requests are counted with botocore event hooks on every client the store
hands out (``S3Store.client`` is per thread, and the batched purge deletes
objects in a thread of its own), and the time spent inside S3 calls is summed
the same way. The table splits each path's wall time into S3 and the rest
(database and Python); in the batched path the two overlap, a batch's objects
being deleted while the next batch's rows go.

It prints figures and asserts nothing about speed; it exits non-zero only when
a check fails (rows or objects left, failures reported by the purge).
``--naive-sample M`` times the naive path on M blobs instead of N (said so in
the output), for when the full naive loop would take too long.
``--strays M`` then measures the stray sweep (``services.purge_strays``) on M
objects: all held by rows (listed and checked, none deleted), then the same
objects with their rows gone (listed, checked, deleted); it prints the time
per listed object of each.
``--profile PREFIX`` runs both paths under cProfile (their times are then
inflated), writes the stats to ``PREFIX.<path>.prof`` and prints the top
functions.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import os
import platform
import pstats
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ALIAS = "bench"
BODY_SIZE = 100
PREFIX = "attachments/"


# -- moto ----------------------------------------------------------------------


def moto_server(logdir: Path):
    from tests.servers import moto_server as start

    return start(logdir)


# -- Django --------------------------------------------------------------------


def setup_django(endpoint: str, bucket: str, workdir: Path) -> str | None:
    """Configure and set Django up; return the PostgreSQL database created here, if any."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.conf import settings

    from tests.conftest import s3_backend

    pg = os.environ.get("DJANGO_ATTACHMENTS_TEST_PG")
    created_db = None
    if pg:
        import psycopg

        host, port = pg.rsplit(":", 1)
        created_db = f"attachments_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{created_db}"')
        settings.DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": created_db,
                "USER": "postgres",
                "HOST": host,
                "PORT": port,
            }
        }
    else:
        settings.DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(workdir / "db.sqlite3")}}
    settings.STORAGES = {**settings.STORAGES, ALIAS: s3_backend(endpoint, bucket)}
    settings.DJANGO_ATTACHMENTS = {"STORAGE": ALIAS}
    django.setup()

    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return created_db


def drop_database(name: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    host, port = os.environ["DJANGO_ATTACHMENTS_TEST_PG"].rsplit(":", 1)
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


# -- S3 request counting -------------------------------------------------------


class S3Meter:
    """Counts S3 API calls (and HTTP attempts) of a store's clients, in every thread, and the time spent in them.

    The store keeps a client per thread, and the batched purge deletes objects in a thread of its own:
    each client the store hands out is watched from its first use. ``seconds`` sums the calls of every
    thread (the purge's thread overlaps the database work of the next batch); ``main_seconds`` those of
    the thread that runs the path.
    """

    def __init__(self, store: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.sends = 0
        self.seconds = 0.0
        self.main_seconds = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._main = threading.get_ident()
        self._watched: set[int] = set()
        handed_out = type(store).client
        meter = self

        def client(store_self: Any) -> Any:
            found = handed_out.fget(store_self)
            meter.watch(found)
            return found

        type(store).client = property(client)  # this process only: a benchmark's instrument
        self.watch(store.client)

    def watch(self, client: Any) -> None:
        with self._lock:
            if id(client) in self._watched:
                return
            self._watched.add(id(client))
        events = client.meta.events
        events.register("before-call.s3.DeleteObjects", self._delete_many)
        events.register("before-call.s3.DeleteObject", self._delete_one)
        events.register("before-call.s3", self._before)
        events.register("after-call.s3", self._after)
        events.register("after-call-error.s3", self._after)
        events.register("before-send.s3", self._send)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.sends = 0
            self.seconds = 0.0
            self.main_seconds = 0.0

    def _count(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def _delete_many(self, **kwargs: Any) -> None:
        self._count("DeleteObjects (hook)")

    def _delete_one(self, **kwargs: Any) -> None:
        self._count("DeleteObject (hook)")

    def _before(self, model: Any = None, **kwargs: Any) -> None:
        self._count(getattr(model, "name", "?"))
        self._local.started = time.perf_counter()

    def _after(self, **kwargs: Any) -> None:
        started = getattr(self._local, "started", None)
        if started is not None:
            spent = time.perf_counter() - started
            self._local.started = None
            with self._lock:
                self.seconds += spent
                if threading.get_ident() == self._main:
                    self.main_seconds += spent

    def _send(self, **kwargs: Any) -> None:
        with self._lock:
            self.sends += 1

    @property
    def delete_requests(self) -> int:
        return self.calls["DeleteObjects"] + self.calls["DeleteObject"]


# -- preparation ---------------------------------------------------------------


def prep_client(endpoint: str, threads: int) -> Any:
    """A client for preparing and checking only: its requests are not metered."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(max_pool_connections=threads, retries={"max_attempts": 10, "mode": "standard"}),
    )


def count_objects(client: Any, bucket: str) -> int:
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        total += page.get("KeyCount", 0)
    return total


@contextlib.contextmanager
def explicit_created_at() -> Iterator[None]:
    """Let bulk_create keep the created_at values given (auto_now_add would set them all to now)."""
    from django_attachments.models import Blob

    field = Blob._meta.get_field("created_at")
    field.auto_now_add = False
    try:
        yield
    finally:
        field.auto_now_add = True


def prepare(label: str, n: int, *, store: Any, client: Any, threads: int, same_created_at: bool) -> dict[str, float]:
    """N objects in the bucket and N orphan Blob rows (subject=label) that reference them, past the grace period.

    The rows' ``created_at`` are a millisecond apart, two days ago and older, as
    uploads over time would leave them; with ``same_created_at`` they are all
    set to the same instant, two days ago, by one UPDATE.
    """
    from django.db import transaction
    from django.utils import timezone

    from django_attachments.models import Blob

    bucket = store.bucket
    region = client.meta.region_name

    def put(i: int) -> tuple[dict[str, Any], str]:
        name = store.new_name()
        key = store.key_of(name)
        body = name.encode("ascii").ljust(BODY_SIZE, b".")[:BODY_SIZE]
        response = client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
        identifiers = {
            "storage": ALIAS,
            "name": name,
            "bucket": bucket,
            "key": key,
            "region": region,
            "etag": str(response.get("ETag", "")).strip('"'),
        }
        return identifiers, hashlib.sha256(body).hexdigest()

    times: dict[str, float] = {}
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        stored = list(pool.map(put, range(n), chunksize=64))
    times["objects"] = time.perf_counter() - start

    start = time.perf_counter()
    two_days_ago = timezone.now() - timedelta(days=2)
    oldest = two_days_ago - timedelta(milliseconds=n)
    with transaction.atomic(), explicit_created_at():
        for i in range(0, n, 5000):
            Blob.objects.bulk_create(
                [
                    Blob(
                        checksum=checksum,
                        size=BODY_SIZE,
                        content_type="application/octet-stream",
                        filename=f"{label}-{i + j}.bin",
                        storage=ALIAS,
                        storage_identifiers=identifiers,
                        tenant="bench",
                        subject=label,
                        created_at=oldest + timedelta(milliseconds=i + j),
                    )
                    for j, (identifiers, checksum) in enumerate(stored[i : i + 5000])
                ],
                batch_size=1000,
            )
        if same_created_at:
            Blob.objects.filter(subject=label).update(created_at=two_days_ago)
    times["rows"] = time.perf_counter() - start

    start = time.perf_counter()
    rows = Blob.objects.filter(subject=label).count()
    objects = count_objects(client, bucket)
    times["check"] = time.perf_counter() - start
    if rows != n or objects != n:
        raise SystemExit(f"preparation of {label!r} failed: {rows} rows and {objects} objects, expected {n} of each")
    return times


# -- the two paths ---------------------------------------------------------------


def profiled(profile: str | None, path: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)``, under cProfile when ``profile`` is set (stats to ``<profile>.<path>.prof``)."""
    if not profile:
        return func(*args, **kwargs)
    profiler = cProfile.Profile()
    result = profiler.runcall(func, *args, **kwargs)
    target = f"{profile}.{path}.prof"
    profiler.dump_stats(target)
    out = io.StringIO()
    for order in ("cumulative", "tottime"):
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(25)
    print(f"\ncProfile of the {path} path (stats in {target}), top 25 by cumulative and by own time:")
    print(out.getvalue(), flush=True)
    return result


def run_batched() -> Any:
    from django_attachments import services

    return services.purge_orphans(batch_size=1000)


def run_naive(store: Any) -> int:
    """One orphan at a time: delete its row (own transaction), then one DeleteObject request."""
    from django.db import transaction

    from django_attachments.models import Blob
    from django_attachments.services.purging import _cutoff

    candidates = Blob.objects.orphans().filter(created_at__lt=_cutoff(None)).order_by("created_at", "pk")
    done = 0
    for blob in list(candidates):
        with transaction.atomic():
            Blob.objects.filter(pk=blob.pk).delete()
        store.delete(blob.storage_identifiers)
        done += 1
    return done


def run_strays(n: int, *, store: Any, client: Any, threads: int, meter: S3Meter) -> bool:
    """The stray sweep's cost per listed object: N objects all held by rows (listed and checked, none deleted),
    then the same N with their rows gone (listed, checked and deleted). Prints its lines; True when clean."""
    from django_attachments import services
    from django_attachments.models import Blob

    label = "bench-strays"
    prep = prepare(label, n, store=store, client=client, threads=threads, same_created_at=False)
    print(f"[strays] prepared {n:,} objects and rows in {prep['objects'] + prep['rows']:.1f} s", flush=True)
    ok = True
    for case in ("held", "stray"):
        if case == "stray":
            Blob.objects.filter(subject=label)._raw_delete(Blob.objects.db)  # the rows only: the objects stay
        meter.reset()
        start = time.perf_counter()
        # Every object is younger than the grace period (just put): the sweep is told to look at them all.
        result = services.purge_strays(older_than=timedelta(0), allow_young=True)
        seconds = time.perf_counter() - start
        expected = 0 if case == "held" else n
        left = count_objects(client, bucket=store.bucket)
        clean = result.removed == expected and not result.failures and left == n - expected
        ok &= clean
        print(
            f"[strays] {case}: {n:,} objects listed in {seconds:.2f} s ({seconds / n * 1e6:,.0f} us per object; "
            f"in S3 {meter.seconds:.2f} s, the rest {seconds - meter.main_seconds:.2f} s); "
            f"{result.removed:,} deleted, {left:,} left; S3 calls: {dict(sorted(meter.calls.items()))} "
            f"-> {'OK' if clean else 'FAILED'}",
            flush=True,
        )
    return ok


def verify(label: str, client: Any, bucket: str) -> tuple[int, int]:
    from django_attachments.models import Blob

    return Blob.objects.filter(subject=label).count(), count_objects(client, bucket)


# -- report --------------------------------------------------------------------


def machine_facts() -> list[tuple[str, str]]:
    import boto3
    import django
    import moto
    import storages
    from django.db import connection

    if connection.vendor == "postgresql":
        version = connection.pg_version
        db = f"postgresql {version // 10000}.{version % 10000} (database {connection.settings_dict['NAME']})"
    else:
        import sqlite3

        db = f"{connection.vendor} {sqlite3.sqlite_version} (file {connection.settings_dict['NAME']})"
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return [
        ("nproc", str(affinity)),
        ("cpu", platform.processor() or platform.machine()),
        ("os", platform.platform()),
        ("python", platform.python_version()),
        ("django", django.get_version()),
        ("database", db),
        ("boto3", boto3.__version__),
        ("django-storages", storages.__version__),
        ("moto server", f"{moto.__version__} (subprocess on 127.0.0.1)"),
    ]


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="orphan blobs per path (default 100,000)")
    parser.add_argument(
        "--naive-sample", type=int, default=None, metavar="M", help="time the naive path on M blobs instead of N"
    )
    parser.add_argument("--threads", type=int, default=16, help="threads putting objects while preparing")
    parser.add_argument("--naive-first", action="store_true", help="run the naive path first")
    parser.add_argument(
        "--same-created-at",
        action="store_true",
        help="give all rows one created_at (by one UPDATE) instead of one a millisecond apart",
    )
    parser.add_argument(
        "--strays",
        type=int,
        default=0,
        metavar="M",
        help="then sweep M objects for strays, all held, then none held (the sweep's cost per object)",
    )
    parser.add_argument(
        "--profile", metavar="PREFIX", help="run both paths under cProfile; stats to PREFIX.batched.prof, .naive.prof"
    )
    args = parser.parse_args(argv)
    if args.count < 1 or (args.naive_sample is not None and not 0 < args.naive_sample):
        parser.error("--count and --naive-sample must be positive")

    script_start = time.perf_counter()
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    # Importing the test fixtures keeps boto3 away from a developer's own AWS configuration.
    import tests.conftest  # noqa: F401

    workdir = Path(tempfile.mkdtemp(prefix="attachments-bench-"))
    created_db = None
    failed = False
    try:
        with moto_server(workdir) as endpoint:
            client = prep_client(endpoint, args.threads)
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            client.create_bucket(Bucket=bucket)
            created_db = setup_django(endpoint, bucket, workdir)

            from django_attachments.stores import get_store

            store = get_store(ALIAS)
            assert type(store).__name__ == "S3Store", store
            meter = S3Meter(store)  # every thread's client of the store

            naive_n = args.count if args.naive_sample is None else args.naive_sample
            order = ["naive", "batched"] if args.naive_first else ["batched", "naive"]
            print(f"Purging orphan blobs on S3 (moto at {endpoint}, bucket {bucket}).")
            for key, value in machine_facts():
                print(f"  {key:16} {value}")
            sample = " [sample]" if args.count != naive_n else ""
            print(f"  {'N':16} {args.count:,} (batched), {naive_n:,} (naive){sample}")
            when = "all the same instant" if args.same_created_at else "1 ms apart"
            print(f"  {'created_at':16} 2 days ago and older, {when}")
            print(flush=True)

            results: dict[str, dict[str, Any]] = {}
            for path in order:
                n = args.count if path == "batched" else naive_n
                label = f"bench-{path}"
                prep = prepare(
                    label, n, store=store, client=client, threads=args.threads, same_created_at=args.same_created_at
                )
                print(
                    f"[{path}] prepared {n:,} blobs: objects {prep['objects']:.1f} s "
                    f"({n / prep['objects']:,.0f}/s, {args.threads} threads), rows {prep['rows']:.1f} s, "
                    f"check {prep['check']:.1f} s",
                    flush=True,
                )
                meter.reset()
                start = time.perf_counter()
                if path == "batched":
                    outcome = profiled(args.profile, path, run_batched)
                    removed, failures = outcome.removed, outcome.failures
                else:
                    removed, failures = profiled(args.profile, path, run_naive, store), []
                seconds = time.perf_counter() - start
                rows_left, objects_left = verify(label, client, bucket)
                ok = removed == n and not failures and rows_left == 0 and objects_left == 0
                failed |= not ok
                results[path] = {
                    "n": n,
                    "seconds": seconds,
                    "s3_seconds": meter.seconds,
                    "main_s3_seconds": meter.main_seconds,
                    "deletes": meter.delete_requests,
                    "calls": dict(meter.calls),
                    "sends": meter.sends,
                    "ok": ok,
                }
                print(
                    f"[{path}] purged {removed:,} in {seconds:.2f} s; left: {rows_left} rows, {objects_left} objects; "
                    f"failures: {len(failures)}; S3 calls: {dict(sorted(meter.calls.items()))}, "
                    f"HTTP requests sent: {meter.sends} -> {'OK' if ok else 'FAILED'}",
                    flush=True,
                )
                for failure in failures[:5]:
                    print(f"    {failure}")

            print()
            rate = {path: r["n"] / r["seconds"] for path, r in results.items()}
            rows = []
            for path in ["batched", "naive"]:
                r = results[path]
                rows.append(
                    [
                        path + (" (sample)" if path == "naive" and args.count != naive_n else ""),
                        f"{r['n']:,}",
                        f"{r['seconds']:.2f}",
                        f"{r['s3_seconds']:.2f}",
                        f"{r['seconds'] - r['main_s3_seconds']:.2f}",
                        f"{rate[path]:,.0f}",
                        f"{r['deletes']:,}",
                        f"{rate[path] / rate['naive']:.1f}x",
                        "yes" if r["ok"] else "NO",
                    ]
                )
            print_table(
                ["path", "blobs", "seconds", "in S3 s", "other s", "blobs/s", "S3 delete reqs", "vs naive", "clean"],
                rows,
            )
            print(
                "\nin S3 s: time inside the store's S3 calls (botocore before-call..after-call), in every thread; "
                "other s: the rest of the wall time beside the S3 calls made in the path's own thread (database, "
                "Python). The batched path deletes each batch's objects in a thread while the next batch's rows go: "
                "its S3 time overlaps its other time."
            )
            if args.profile:
                print("Both paths ran under cProfile: their times are inflated.")
            if args.count != naive_n:
                print(f"The naive figure is from a sample of {naive_n:,} blobs, not the full {args.count:,}.")
            print(f"Batched is {rate['batched'] / rate['naive']:.1f}x the naive loop's blobs/s.")
            if args.strays:
                print()
                failed |= not run_strays(args.strays, store=store, client=client, threads=args.threads, meter=meter)
    finally:
        if created_db:
            drop_database(created_db)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Wall time of the whole run: {time.perf_counter() - script_start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
