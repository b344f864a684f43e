"""4. Downloads in proxy mode, whole and a 1 MiB range, against the stored bytes read without the app."""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path
from urllib.parse import quote

from .client import get, path_of
from .config import CHUNK, KIB, MIB, log
from .context import Context
from .measure import PeakMeter, median, sync, worst
from .report import Table, fmt_mib, fmt_rate, fmt_ratio, fmt_s, fmt_size
from .s3 import s3_client, s3_get


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
