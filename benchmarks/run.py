"""Benchmarks of django_attachments, each next to what a project writes by hand.

    .venv/bin/python benchmarks/run.py                      # the full suite (~105 min, ~20 GiB of scratch disk)
    .venv/bin/python benchmarks/run.py --quick              # tiny sizes, one repeat: a minute or two (CI)
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
   ``--quick``; otherwise this only points to it);
7. direct uploads (``direct``), to S3 (the S3 sizes) and to local disk (the
   disk sizes): start, PUT of the bytes to the ticket's URL (moto's presigned
   URL; the API's own upload URL on disk), complete -- each step's wall time,
   the server worker's CPU time and peak RSS growth over each step and over
   the flow -- next to an upload of the same size through the API measured
   alongside. On S3 the bytes bypass the worker; moto reports no checksum of
   its own, so completion streams the object back through SHA-256 (a table
   column says which read completion did);
8. metadata analysis (``analyze``) of a 24-megapixel JPEG, a 300-page PDF and
   a 1 GiB video, on disk and on S3 (a moto server of its own):
   ``processing.process(blob_id, stages=["analyze"], force=True)`` and the
   analyzer alone on a ``SeekableReader`` -- anchor: the whole object streamed
   through the store; time, bytes fetched, peak RSS of a child process per
   case (``suite/analysis.py``);
9. malware scan (``scan``) of 100 MiB and 1 GiB: ``ClamdScanner`` through the
   store -- anchor: ``clamdscan --stream`` on the same file, same clamd
   (``suite/scanning.py``; skipped without clamd);
10. variants (``variants``): the thumbnail of a 24-megapixel JPEG by
    ``ImageRenderer`` -- anchors: naive Pillow and pyvips' thumbnail; the
    first page of a 300-page PDF and a DICOM frame by their renderers --
    anchors: pypdfium2 and pydicom by hand; each a fresh process (time, peak
    RSS, bytes read); 200 concurrent first requests for one lazy variant on a
    live server (one render, the same bytes for all) -- anchor: the same
    requests once it is made; a stored variant served -- anchor: the
    download of an original of its size (``suite/variants.py``);
11. multipart direct uploads (``multipart``): a 2 GiB file (80 MiB with
    ``--quick``; ``--multipart-size``) sent in parts through the API of a live
    server to SeaweedFS (parts hashed with SHA-256, signed in batches and PUT
    to their presigned URLs while later parts are hashed; then completion,
    which reads the object back) -- anchors: boto3's ``upload_file`` of the
    same file to the same bucket, with the default ``TransferConfig`` and with
    SHA-256 checksums; the transfer and the verification timed apart, CPU
    time of this process, of SeaweedFS and of the Django worker; on local
    disk too, next to one API upload (``suite/multipart.py``; skipped without
    SeaweedFS).
12. moving blobs to S3 (``migrate``): 10,000 blobs of mixed sizes (~1 GiB;
    100 and ~10 MiB with ``--quick``; ``--migrate-blobs``) made on local disk,
    moved to SeaweedFS by ``manage.py migrate_attachments --to s3`` (a child
    process) with ``--concurrency`` 1, 2, 4, 8 (1 and 4 with ``--quick``) --
    anchor: boto3's ``upload_file`` of the same files to the same SeaweedFS, a
    loop or a pool of as many threads; one round unless ``--repeat`` is given;
    time, CPU time, peak RSS, and where the command's time goes
    (``suite/migrate.py``; skipped without SeaweedFS);
13. authentication per API request (``auth``), in process with Django's
    test client: session, token and HTTP Basic -- anchor: the same request
    with no authentication (``suite/auth.py``);
14. parsing an upload (``parse``): Django's multipart parser in a fresh
    process per run, reading 256 MiB and 1 GiB (16 MiB with ``--quick``)
    from a loopback TCP connection through gunicorn's ``Body``, with the
    API's handlers at chunk sizes of 64 KiB to 4 MiB and with SHA-256 on the
    parser's thread -- anchor: Django's default handlers at 64 KiB, the bare
    view's parse; wall, user and system time, minor page faults
    (``suite/parsing.py``);
15. the peers (``peers``): an upload to local disk through the API next to
    drf-attachments 0.4.2 and django-attachments-framework 0.1.0 (its start,
    upload and complete), each a small project of its own
    (``benchmarks/peers/``) in a virtualenv the suite makes with pip and keeps
    in the user's cache, and the bare view; 256 MiB and 1 GiB (8 MiB with
    ``--quick``; ``--peer-sizes``), 9 alternating rounds unless ``--repeat``
    is given; a token or a session, never HTTP Basic
    (``suite/peers.py``; a peer whose virtualenv cannot be made, e.g. without
    the package index, is skipped with the reason);
16. API uploads to S3 as they arrive (``stream``): per S3 server (moto,
    SeaweedFS), a bucket and two project servers, ``STREAM_UPLOADS`` on and
    off, next to boto3's ``upload_fileobj`` from a local file, rotating
    rounds; 256 MiB and 1 GiB (32 MiB with ``--quick``; ``--stream-sizes``);
    then a dedup hit of each mode and what the bucket keeps of it
    (``suite/streaming.py``).

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
match, bytes written by a dedup hit, a direct upload's bytes sent elsewhere
than its ticket says), which means the benchmark itself is
broken. A "targets" table at the end compares the figures with the project's
goals, for information.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

# The suite's package sits next to this file; ``tests.servers`` is imported from the repository root.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from suite.analysis import bench_analyze  # noqa: E402  (sys.path first)
from suite.auth import bench_auth  # noqa: E402
from suite.config import (  # noqa: E402
    AWS_ENV,
    BENCH_DIR,
    DEFAULT_S3_SIZES,
    DEFAULT_SIZES,
    GIB,
    KIB,
    LIST_COUNTS,
    MIB,
    QUICK_LIST_COUNTS,
    QUICK_S3_SIZES,
    QUICK_SIZES,
    REPO_ROOT,
    S3_MAX,
    TAIL,
    log,
)
from suite.context import Context, keep_one, warm_up  # noqa: E402
from suite.dedup import bench_dedup  # noqa: E402
from suite.direct import bench_direct  # noqa: E402
from suite.download import bench_download  # noqa: E402
from suite.listing import bench_list  # noqa: E402
from suite.migrate import DEFAULT_BLOBS as MIGRATE_BLOBS  # noqa: E402
from suite.migrate import QUICK_BLOBS as QUICK_MIGRATE_BLOBS  # noqa: E402
from suite.migrate import bench_migrate  # noqa: E402
from suite.multipart import DEFAULT_SIZE as MULTIPART_SIZE  # noqa: E402
from suite.multipart import QUICK_SIZE as QUICK_MULTIPART_SIZE  # noqa: E402
from suite.multipart import bench_multipart  # noqa: E402
from suite.parsing import bench_parse  # noqa: E402
from suite.payloads import Pool  # noqa: E402
from suite.peers import DEFAULT_SIZES as PEER_SIZES  # noqa: E402
from suite.peers import QUICK_SIZES as QUICK_PEER_SIZES  # noqa: E402
from suite.peers import bench_peers  # noqa: E402
from suite.processes import database_env, have_gunicorn, moto_server, project_server  # noqa: E402
from suite.purge import bench_purge  # noqa: E402
from suite.report import fmt_size, machine_facts, parse_size, print_targets, write_markdown  # noqa: E402
from suite.scanning import bench_scan  # noqa: E402
from suite.streaming import bench_stream  # noqa: E402
from suite.uploads import bench_disk_upload, bench_s3_upload  # noqa: E402
from suite.variants import bench_variants  # noqa: E402

BENCHMARKS = ["disk", "s3", "direct", "dedup", "download", "list", "purge", "analyze", "scan", "variants", "multipart",
              "migrate", "auth", "parse", "peers", "stream"]  # fmt: skip


#: The shared servers' direct uploads measure the one-request flow, whatever the size: the multipart
#: threshold at its maximum (5 GiB). The multipart benchmark starts servers of its own, with the default.
ONE_REQUEST = {"BENCH_MULTIPART_THRESHOLD": str(5 * 1024**3)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat, 10/100 attachments (CI; 1-2 min)")
    parser.add_argument("--sizes", help="upload sizes to disk, e.g. 10M,100M,1G (default: 10M,100M,1G)")
    parser.add_argument("--s3-sizes", help="upload sizes to S3 (default: 10M,100M; or --sizes up to 1G where given)")
    parser.add_argument(
        "--repeat",
        type=int,
        help="measured runs per figure, median reported (default 3; 1 with --quick; variants: 5, 3 with --quick)",
    )
    parser.add_argument(
        "--multipart-size", help="the multipart benchmark's file (default: 2G; 80M with --quick; above 64M)"
    )
    parser.add_argument(
        "--stream-sizes", help="the stream benchmark's upload sizes to S3 (default: 256M,1G; 32M with --quick)"
    )
    parser.add_argument("--peer-sizes", help="the peers benchmark's upload sizes (default: 256M,1G; 8M with --quick)")
    parser.add_argument(
        "--migrate-blobs", type=int, help="blobs the migrate benchmark moves (default: 10000, ~1 GiB; 100 with --quick)"
    )
    parser.add_argument(
        "--migrate-profile",
        metavar="PREFIX",
        help="migrate: one more run at --concurrency 1 under cProfile, apart from the figures (PREFIX.prof)",
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
    args.peer_sizes = (
        sorted({parse_size(s) for s in args.peer_sizes.split(",") if s.strip()})
        if args.peer_sizes
        else list(QUICK_PEER_SIZES if args.quick else PEER_SIZES)
    )
    args.stream_sizes = (
        sorted({parse_size(s) for s in args.stream_sizes.split(",") if s.strip()})
        if args.stream_sizes
        else [32 * MIB]
        if args.quick
        else [256 * MIB, 1024 * MIB]
    )
    if any(s <= 2 * TAIL for s in args.sizes + args.s3_sizes + args.peer_sizes):
        parser.error("sizes must be larger than 64 bytes")
    args.repeat_explicit = args.repeat is not None  # the variants benchmark repeats more unless told
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.multipart_size = (
        parse_size(args.multipart_size)
        if args.multipart_size
        else (QUICK_MULTIPART_SIZE if args.quick else MULTIPART_SIZE)
    )
    if args.multipart_size <= 64 * MIB:
        parser.error("--multipart-size must be above 64 MiB (the default MULTIPART_THRESHOLD)")
    args.migrate_blobs = args.migrate_blobs or (QUICK_MIGRATE_BLOBS if args.quick else MIGRATE_BLOBS)
    if args.migrate_blobs < 1:
        parser.error("--migrate-blobs must be at least 1")
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
    need_s3 = bool({"s3", "direct", "dedup", "download"} & set(args.only)) and bool(args.s3_sizes)
    need_disk = bool({"disk", "direct", "dedup", "download"} & set(args.only))
    largest = max(
        (args.sizes if {"disk", "direct", "download"} & set(args.only) else [0])
        + (args.s3_sizes if need_s3 else [0])
        + [args.dedup_size, 256 * KIB]
    )
    free = shutil.disk_usage(workdir).free
    needed = (2 * args.repeat + 2) * max(args.sizes) + largest
    if "direct" in args.only:  # an API upload and a direct one kept per run
        needed += 2 * args.repeat * max(args.sizes)
    if "multipart" in args.only:  # the file, a repeat's objects on SeaweedFS, parts and object on disk
        needed += 7 * args.multipart_size
    if "stream" in args.only:  # the pool, a scratch file, the objects of a round on both S3 servers
        needed += 4 * max(args.stream_sizes)
    if "peers" in args.only:  # the pool, a scratch file, an upload and its temporary file
        needed += 4 * max(args.peer_sizes)
    if "migrate" in args.only:  # the blobs on disk and one run's objects on SeaweedFS
        needed += 3 * args.migrate_blobs * (GIB // MIGRATE_BLOBS)
    if free < needed:
        log(f"warning: {workdir} has {free / GIB:.1f} GiB free; this run may need about {needed / GIB:.1f} GiB")
    log(f"work folder {workdir}; server: {args.server}; sizes: {', '.join(map(fmt_size, args.sizes))}; "
        f"S3 sizes: {', '.join(map(fmt_size, args.s3_sizes))}; repeat: {args.repeat}")  # fmt: skip
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

            if need_disk or need_s3 or {"peers", "stream"} & set(args.only):
                pooled = args.sizes + args.s3_sizes + [args.dedup_size, 256 * KIB]
                pooled += args.peer_sizes if "peers" in args.only else []
                pooled += args.stream_sizes if "stream" in args.only else []
                ctx.pool = Pool(workdir / "pool.bin", max(pooled))
            if need_disk:
                ctx.disk_server = stack.enter_context(
                    project_server(
                        args.server, {**base_env, **ONE_REQUEST, "BENCH_STORAGE": "default"}, workdir, "disk"
                    )
                )
                warm_up(ctx, ctx.disk_server, bare=True)
            if need_s3:
                ctx.s3_server = stack.enter_context(
                    project_server(args.server, {**base_env, **ONE_REQUEST, "BENCH_STORAGE": "s3"}, workdir, "s3")
                )
                warm_up(ctx, ctx.s3_server, bare=False)

            steps: list[tuple[str, Callable[[Context], None]]] = [
                ("disk", bench_disk_upload),
                ("s3", bench_s3_upload),
                ("direct", bench_direct),
                ("dedup", bench_dedup),
                ("download", bench_download),
                ("list", bench_list),
                ("purge", bench_purge),
                ("analyze", bench_analyze),
                ("scan", bench_scan),
                ("variants", bench_variants),
                ("multipart", functools.partial(bench_multipart, env=base_env)),
                ("migrate", functools.partial(bench_migrate, env=base_env)),
                ("auth", bench_auth),
                ("parse", bench_parse),
                ("peers", bench_peers),
                ("stream", functools.partial(bench_stream, env=base_env)),
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


if __name__ == "__main__":
    sys.exit(main())
