"""3. The same bytes uploaded twice: the second upload (a dedup hit) must add nothing to the store."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .client import post_multipart
from .config import log
from .context import Context, api_fields
from .measure import PeakMeter, median, sync, worst
from .payloads import Payload
from .processes import Server
from .report import Table, fmt_mib, fmt_ratio, fmt_s, fmt_size
from .s3 import bucket_usage, s3_client


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
        [
            "store",
            "size",
            "1st s",
            "2nd s",
            "2nd / 1st",
            "paired 2nd / 1st (min-max)",
            "1st CPU s",
            "2nd CPU s",
            "CPU 2nd / 1st",
            "2nd RSS+ MiB",
            "added by 2nd",
            "same blob",
        ],  # fmt: skip
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
        first_cpus: list[float] = []
        second_cpus: list[float] = []
        paired: list[float] = []
        for repeat in range(ctx.args.repeat):
            payload = Payload(ctx.pool, size)

            def usage(store: str = store) -> tuple[int, ...]:
                return disk_usage(media) if store == "disk" else bucket_usage(client, ctx.bucket)

            sync(size, str(ctx.workdir / "tmp"))  # the same start for both: memory just freed
            with PeakMeter(server.pid) as first_meter:
                first = post_multipart(
                    server.url, "/api/attachments/", api_fields(ctx, f"first-{repeat}"), payload, "d.bin"
                )
            ctx.check(first.status == 201, f"dedup {store}: first upload {first.status} {first.body!r:.300}")
            before = usage()
            sync(size, str(ctx.workdir / "tmp"))  # the same start for both: memory just freed
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
            if first_meter.cpu is not None and meter.cpu is not None:
                first_cpus.append(first_meter.cpu)
                second_cpus.append(meter.cpu)
            paired.append(second.seconds / first.seconds)
            growths.append(meter.growth)
            added_all.append(added)
            same_all.append(same)
            log(
                f"  dedup {store} #{repeat + 1}: first {first.seconds:.3f} s (CPU {first_meter.cpu}), "
                f"second {second.seconds:.3f} s (CPU {meter.cpu}), added {added}"
            )
        worst_added = max(added_all, key=lambda a: (abs(a[1]), abs(a[0])))
        if store == "disk":
            added_text = f"{worst_added[0]} files, {worst_added[1]} bytes"
        else:
            added_text = f"{worst_added[0]} objects, {worst_added[1]} bytes, {worst_added[2]} uploads"
        first_t, second_t = median(firsts), median(seconds)
        first_cpu = f"{median(first_cpus):.2f}" if first_cpus else "-"
        second_cpu = f"{median(second_cpus):.2f}" if second_cpus else "-"
        cpu_ratio = fmt_ratio(median(second_cpus), median(first_cpus)) if first_cpus and median(first_cpus) else "-"
        table.rows.append(
            [store, fmt_size(size), fmt_s(first_t), fmt_s(second_t), fmt_ratio(second_t, first_t),
             f"{median(paired):.2f}x ({min(paired):.2f}-{max(paired):.2f})", first_cpu, second_cpu, cpu_ratio,
             fmt_mib(worst(growths)), added_text, "yes" if all(same_all) else "NO"]
        )  # fmt: skip
        ctx.target(f"dedup on {store}: bytes written by the 2nd upload", "0", str(worst_added[1]), not any(worst_added))
    table.notes.append(
        f"median of {ctx.args.repeat} run(s); paired: each round's second upload against its first; CPU s: the "
        "server worker's user + system time during the request (less disturbed by other work than wall time); "
        "'added by 2nd': the largest over the runs"
    )
    ctx.add(table)
