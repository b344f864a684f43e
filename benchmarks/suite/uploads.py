"""1 and 2. Uploads through the API, to local disk (anchor: a bare Django view) and to S3 (anchor: boto3)."""

from __future__ import annotations

import os
import time
import uuid

from .client import post_multipart
from .config import KIB, MIB, log
from .context import Context, api_fields, api_upload
from .measure import PeakMeter, median, sync, worst
from .payloads import Payload, file_crc
from .report import Table, fmt_cpu, fmt_mib, fmt_rate, fmt_ratio, fmt_s, fmt_size
from .s3 import s3_client


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
                sync(size, str(ctx.workdir / "tmp"))  # the same start for both: memory just freed
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
                sync(size, str(ctx.workdir / "tmp"))  # the same start for both: memory just freed
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
