"""9. Malware scan throughput: our ClamdScanner through the store, against ``clamdscan --stream`` on the same file.

A clamd of the suite's own (the test suite's helpers and signatures:
``tests.servers``, ``tests.clamd``) with its size limits raised above the
largest payload, and ``AlertExceedsMax`` on, so that a stream clamd did not
scan whole cannot pass unnoticed. Each payload is random bytes ending with the
test signature's marker: both verdicts must name it, which proves that every
byte reached clamd and was scanned.

For each size, on each store (local disk; S3 on a moto server):
``ClamdScanner.scan(store.open(identifiers).chunks())`` (INSTREAM over the
unix socket, what the pipeline's scan stage does) in a child process per
repeat, against the anchor: ``clamdscan --stream`` (ClamAV's own client, also
INSTREAM, pointed at the same daemon by a config file with its
``LocalSocket``) on the stored file on disk, the same bytes. The anchor is
measured once per size; both store rows are compared with it (on S3 the gap is
the GET from moto). Without clamd the benchmark is skipped; without clamdscan
only the anchor is.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import servers

from .config import GIB, MIB, log
from .context import Context
from .pipeline import IMAGE_ANALYZER, PDF_ANALYZER, med, mib_range, pipeline, spread
from .report import Table, fmt_rate, fmt_ratio, fmt_size
from .samples import make_scan_payload, mark_payload

FULL_SIZES = [100 * MIB, GIB]
QUICK_SIZES = [10 * MIB]

#: Raised above the largest payload, with AlertExceedsMax: a stream not scanned whole is a FOUND verdict.
# Beside the tests' configuration (its file and scan limits are the stream's, AlertExceedsMax on).
LIMITS = """\
MaxScanTime 600000
"""


@contextlib.contextmanager
def suite_clamd(workdir: Path, largest: int) -> Iterator[tuple[servers.Clamd, Path]]:
    """clamd as ``tests.servers.clamd_server`` starts it, with the limits above; (clamd, its config file)."""
    from tests.clamd import databases

    binary = servers.clamd_binary()
    assert binary is not None
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "db").mkdir()
    for name, content in databases().items():
        (workdir / "db" / name).write_text(content)
    (workdir / "tmp").mkdir()
    limit = math.ceil(largest / MIB) + 16
    conf = workdir / "clamd.conf"
    logfile = workdir / "clamd.log"
    # A unix socket's path has at most 107 bytes.
    sockdir = workdir if len(str(workdir)) < 80 else Path(tempfile.mkdtemp(prefix="clamd-"))
    socket_path = str(sockdir / "clamd.sock")
    port = servers.free_port()
    conf.write_text(
        servers.CLAMD_CONF.format(
            log=logfile,
            databases=workdir / "db",
            tmp=workdir / "tmp",
            socket=socket_path,
            port=port,
            stream_max_length=f"{limit}M",
            max_file_size=f"{limit}M",
            max_scan_size=f"{limit}M",
            alert_exceeds_max="yes",
        )
        + LIMITS
    )
    started = time.monotonic()
    with open(workdir / "clamd.out", "wb") as out:
        proc = subprocess.Popen([binary, "--config-file", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        while not servers.clamd_ping(socket_path):
            if proc.poll() is not None or time.monotonic() > started + 60:
                tail = logfile.read_text(errors="replace")[-3000:] if logfile.exists() else ""
                raise RuntimeError(f"clamd did not start:\n{tail}")
            time.sleep(0.02)
        yield servers.Clamd(socket_path, "127.0.0.1", port, proc, logfile, time.monotonic() - started), conf
    finally:
        servers.stop(proc, grace=5)
        if sockdir != workdir:
            shutil.rmtree(sockdir, ignore_errors=True)


def bench_scan(ctx: Context) -> None:
    started = time.perf_counter()
    sizes = QUICK_SIZES if ctx.args.quick else FULL_SIZES
    table = Table(
        "scan",
        "Malware scan against clamdscan",
        "`ClamdScanner.scan(store.open(identifiers).chunks())` (INSTREAM over clamd's unix socket, 64 KiB "
        "chunks, read from the store in 1 MiB chunks), each run a fresh process (no warm-up scan: the store's first "
        "MiB is read and clamd pinged first), against `clamdscan --stream "
        "--config-file` (the same daemon, INSTREAM too) on the stored file on disk. The payload is random bytes "
        "ending with the test signature's marker; both verdicts must name it (every byte scanned). `ratio` is "
        "ours over clamdscan's median time. RSS MiB is the scanning process's peak (ours: the Python child's "
        "life, Django set up; clamdscan's: `getrusage` of the program), the largest over the repeats.",
        ["size", "store", "ours s (median)", "ours s (min–max)", "ours MB/s", "clamdscan s (median)",
         "clamdscan s (min–max)", "clamdscan MB/s", "ratio", "ours RSS MiB", "clamdscan RSS MiB"],
    )  # fmt: skip
    if servers.clamd_binary() is None:
        reason = "skipped: clamd is not installed (Debian package clamav-daemon)"
        log(f"  {reason}")
        table.notes.append(reason)
        ctx.add(table)
        return
    no_clamdscan = None if shutil.which("clamdscan") else "clamdscan is not installed (Debian package clamdscan)"
    if no_clamdscan:
        log(f"  anchor skipped: {no_clamdscan}")
        table.notes.append(f"anchor skipped: {no_clamdscan}")
    from django_attachments.models import Attachment
    from django_attachments.stores import get_store
    from tests.clamd import MARKER, MARKER_FOUND

    with pipeline(ctx, "scan", [IMAGE_ANALYZER, PDF_ANALYZER]) as env:
        if env.no_s3:
            table.notes.append(env.no_s3)
        with suite_clamd(env.workdir / "clamd", max(sizes)) as (clamd, conf):
            log(f"  clamd answered after {clamd.startup:.1f} s")
            for size in sizes:
                payload = env.workdir / f"payload-{size}.bin"
                make_scan_payload(payload, size, MARKER)
                blobs = {}
                for label in env.stores:
                    mark_payload(payload, label)
                    blobs[label] = env.attach(payload, label)
                payload.unlink()
                disk_blob = blobs["disk"]
                stored_path = get_store(disk_blob.storage).storage.path(disk_blob.storage_identifiers["name"])
                ours: dict[str, list[dict[str, Any]]] = {label: [] for label in blobs}
                anchor: list[dict[str, Any]] = []
                for repeat in range(ctx.args.repeat):
                    order = ["anchor", *blobs] if repeat % 2 == 0 else [*blobs, "anchor"]
                    for which in order:
                        if which == "anchor":
                            if no_clamdscan:
                                continue
                            got = env.child("clamdscan", conf=str(conf), path=stored_path, warm=False)
                            if got is not None and ctx.check(
                                got.get("returncode") == 1 and MARKER_FOUND in got.get("output", ""),
                                f"clamdscan {fmt_size(size)}: exit {got.get('returncode')}, {got.get('output')!r}",
                            ):
                                anchor.append(got)
                            continue
                        blob = blobs[which]
                        got = env.child(
                            "scan",
                            alias=blob.storage,
                            identifiers=blob.storage_identifiers,
                            size=blob.size,
                            socket=clamd.socket,
                            warm=False,
                        )
                        if got is not None and ctx.check(
                            got.get("clean") is False
                            and got.get("signature") == MARKER_FOUND
                            and got.get("scanned") == size,
                            f"scan {fmt_size(size)} on {which}: {got}",
                        ):
                            ours[which].append(got)
                log(f"  scanned {fmt_size(size)}")
                anchor_times = [a["seconds"] for a in anchor]
                anchor_t = med(anchor_times)
                anchor_rss = [a["children_peak_kib"] for a in anchor if a.get("children_peak_kib")]
                for label, runs in ours.items():
                    times = [r["seconds"] for r in runs]
                    t = med(times)
                    table.rows.append([
                        fmt_size(size), label, "-" if t is None else f"{t:.3f}", spread(times),
                        fmt_rate(size, t), "-" if anchor_t is None else f"{anchor_t:.3f}", spread(anchor_times),
                        fmt_rate(size, anchor_t), fmt_ratio(t, anchor_t),
                        mib_range([r["peak_kib"] for r in runs if r.get("peak_kib")]), mib_range(anchor_rss),
                    ])  # fmt: skip
                for blob in blobs.values():  # room on disk and in moto for the next size: rows first, then bytes
                    Attachment.objects.filter(blob=blob).delete()
                    blob.delete()
                    get_store(blob.storage).delete(blob.storage_identifiers)
        table.notes.append(f"median of {ctx.args.repeat} run(s); MB/s are 10^6 bytes per second")
    log(f"  done in {time.perf_counter() - started:.1f} s")
    ctx.add(table)
