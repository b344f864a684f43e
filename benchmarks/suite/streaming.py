"""API uploads to S3 sent on while the body arrives (``STREAM_UPLOADS``), on moto and on SeaweedFS.

For each S3 server, a fresh bucket and two project servers on it: one with
``STREAM_UPLOADS`` on (parts go to S3 as the request is parsed), one with it
off (the file is spooled to a temporary file, then written). Each round
uploads a payload of each size three ways, in a rotating order, each from
the same start (:func:`~.measure.sync`): through each project server's API,
and with boto3's ``upload_fileobj`` (default ``TransferConfig``) from a local
file to the same bucket (the anchor). Recorded per upload: wall time, the
project server worker's CPU time and peak RSS growth (the benchmark
process's for boto3), and the S3 server's CPU time. Each upload's object is
checked (size; SHA-256 from the API's answer) and the bucket emptied after
it, unmeasured.

Then the dedup hit of each mode: the bytes of an upload sent again. The
bucket must hold what it held before (objects, bytes, incomplete uploads):
"a dedup hit keeps 0 bytes", in both modes; its time says what the streamed
mode pays for sending the bytes on before it knows they are known.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .client import post_multipart
from .config import AWS_ENV, GIB, KIB, MIB, log
from .context import Context, api_fields, api_upload, warm_up
from .measure import PeakMeter, cpu_seconds, median, sync, worst
from .payloads import Payload
from .peers import minor_faults
from .processes import children_of, moto_server, project_server
from .report import Table, fmt_cpu, fmt_mib, fmt_rate, fmt_ratio, fmt_s, fmt_size
from .s3 import bucket_usage

MODES = ["streamed", "spooled", "boto3"]
#: The issue's bounds: at 1 GiB, no slower than boto3 from a local file; the server's memory flat.
TIME_BOUND = 1.0
RSS_BOUND_MIB = 64
#: Past the S3 store's multipart threshold (16 MiB), within the quick run's size (the pool's).
WARM_UP_SIZE = 24 * MIB


def listener_pid(endpoint: str) -> int | None:
    """The child of this process that serves ``endpoint`` (moto's or SeaweedFS's), named by its port."""
    port = str(urlsplit(endpoint).port)
    for pid in children_of(os.getpid()):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if any(arg.endswith(port.encode()) for arg in args):
                return pid
    return None


@contextlib.contextmanager
def s3_service(ctx: Context, name: str) -> Iterator[str]:
    folder = ctx.workdir / f"stream-{name}"
    try:
        if name == "moto":
            with moto_server(folder) as endpoint:
                yield endpoint
        else:
            from tests.servers import seaweedfs_server

            keys = {"access_key": AWS_ENV["AWS_ACCESS_KEY_ID"], "secret_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"]}
            with seaweedfs_server(folder / "seaweedfs", **keys) as endpoint:
                yield endpoint
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def empty(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


class Figures:
    def __init__(self) -> None:
        self.faults: list[int] = []
        self.seconds: list[float] = []
        self.cpu: list[float | None] = []
        self.rss: list[Any] = []
        self.store_cpu: list[float] = []


def bench_stream(ctx: Context, env: dict[str, str]) -> None:
    import boto3

    assert ctx.pool is not None
    sizes = ctx.args.stream_sizes
    table = Table(
        "stream",
        "API upload to S3 while it arrives",
        "`POST /api/attachments/` with S3 as the storage, `STREAM_UPLOADS` on (the file's parts go to S3 while "
        "the body is parsed) and off (spooled to a temporary file, then written), against boto3's "
        "`upload_fileobj` (default `TransferConfig`) of the same bytes from a local file to the same bucket. "
        "Each S3 server with a bucket and two project servers of its own; rounds alternate, each upload from "
        "the same start.",
        ["S3", "size", "how", "s", "MB/s", "range s", "CPU s", "faults", "RSS+ MiB", "S3 CPU s", "vs boto3"],
    )
    dedup_table = Table(
        "stream-dedup",
        "A dedup hit, streamed and spooled",
        "The bytes of the last upload sent again through each mode's API: its time, and what the bucket holds "
        "after it against before it (objects, bytes, incomplete multipart uploads).",
        ["S3", "size", "how", "first upload s", "dedup hit s", "hit / first", "kept objects", "kept bytes",
         "kept incomplete uploads"],
    )  # fmt: skip
    for service in ("moto", "seaweedfs"):
        try:
            context = s3_service(ctx, service)
            endpoint = context.__enter__()
        except (RuntimeError, SystemExit) as exc:
            log(f"  stream {service}: skipped: {exc}")
            continue
        try:
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            bucket = f"stream-{uuid.uuid4().hex[:12]}"
            client.create_bucket(Bucket=bucket)
            store_pid = listener_pid(endpoint)
            base = {**env, "BENCH_STORAGE": "s3", "BENCH_S3_ENDPOINT": endpoint, "BENCH_S3_BUCKET": bucket}
            with (
                project_server(ctx.args.server, {**base, "BENCH_STREAM_UPLOADS": "1"}, ctx.workdir, f"{service}-s")
                as streamed,
                project_server(ctx.args.server, {**base, "BENCH_STREAM_UPLOADS": "0"}, ctx.workdir, f"{service}-p")
                as spooled,
            ):  # fmt: skip
                servers = {"streamed": streamed, "spooled": spooled}
                for server in servers.values():
                    warm_up(ctx, server, bare=False)
                    # And one upload past the threshold, so that a streamed (or multipart) write's first
                    # costs (its client, its thread pool) are not paid by the first measured round.
                    reply = post_multipart(server.url, "/api/attachments/", api_fields(ctx, "warm-up"),
                                           Payload(ctx.pool, WARM_UP_SIZE), "w.bin")  # fmt: skip
                    ctx.check(reply.status == 201, f"stream {service} warm-up upload: {reply.status}")
                warm = Payload(ctx.pool, WARM_UP_SIZE)
                client.upload_fileobj(warm.reader(), bucket, "warm-up")
                empty(client, bucket)
                for size in sizes:
                    figures = {mode: Figures() for mode in MODES}
                    last: dict[str, Payload] = {}
                    for round_ in range(ctx.args.repeat):
                        first = round_ % len(MODES)
                        for mode in MODES[first:] + MODES[:first]:
                            payload = Payload(ctx.pool, size)
                            sync(size, str(ctx.workdir / "tmp"))
                            store_before = cpu_seconds(store_pid) if store_pid else None
                            measured = os.getpid() if mode == "boto3" else servers[mode].pid
                            faults = minor_faults(measured)
                            if mode == "boto3":
                                with PeakMeter(os.getpid()) as meter:
                                    started = time.perf_counter()
                                    client.upload_fileobj(payload.reader(), bucket, f"bare/{uuid.uuid4().hex}")
                                    seconds = time.perf_counter() - started
                            else:
                                server = servers[mode]
                                reply, meter, ok = api_upload(ctx, server, server.pid, payload, f"{service} {mode}")
                                seconds = reply.seconds
                                last[mode] = payload
                            store_after = cpu_seconds(store_pid) if store_pid else None
                            faults = minor_faults(measured) - faults
                            objects, stored, uploads = bucket_usage(client, bucket)
                            ctx.check(
                                (objects, stored, uploads) == (1, size, 0),
                                f"stream {service} {mode} {fmt_size(size)}: the bucket holds {objects} objects, "
                                f"{stored} bytes, {uploads} incomplete uploads",
                            )
                            empty(client, bucket)
                            mine = figures[mode]
                            mine.seconds.append(seconds)
                            mine.faults.append(faults)
                            mine.cpu.append(meter.cpu)
                            mine.rss.append(meter.growth)
                            if store_before is not None and store_after is not None:
                                mine.store_cpu.append(store_after - store_before)
                        log(
                            f"  stream {service} {fmt_size(size)} #{round_ + 1}: "
                            + ", ".join(f"{mode} {figures[mode].seconds[-1]:.3f} s" for mode in MODES)
                        )
                    anchor = median(figures["boto3"].seconds)
                    for mode in MODES:
                        mine = figures[mode]
                        took = median(mine.seconds)
                        table.rows.append(
                            [service, fmt_size(size), mode, fmt_s(took), fmt_rate(size, took),
                             f"{min(mine.seconds):.3f}–{max(mine.seconds):.3f}", fmt_cpu(mine.cpu),
                             f"{int(median([float(f) for f in mine.faults])):,}",
                             fmt_mib(worst(mine.rss)), fmt_cpu(mine.store_cpu), fmt_ratio(took, anchor)]
                        )  # fmt: skip
                    took = median(figures["streamed"].seconds)
                    growth = worst(figures["streamed"].rss)
                    bound = size >= GIB or ctx.args.quick
                    ctx.target(
                        f"S3 ({service}) upload {fmt_size(size)} streamed: time vs boto3",
                        f"<= {TIME_BOUND}x" if bound else "-",
                        fmt_ratio(took, anchor),
                        (took / anchor <= TIME_BOUND) if bound else None,
                    )
                    ctx.target(
                        f"S3 ({service}) upload {fmt_size(size)} streamed: server RSS growth",
                        f"<= {RSS_BOUND_MIB} MiB",
                        fmt_mib(growth) + " MiB",
                        None if growth is None else growth.kib <= RSS_BOUND_MIB * KIB,
                    )
                    dedup(ctx, client, bucket, service, size, servers, last, figures, dedup_table)
        finally:
            context.__exit__(None, None, None)
    table.notes.append(
        f"median of {ctx.args.repeat} round(s); range: fastest–slowest; CPU s: user + system time of the "
        "project server's worker (its threads: parse, hash, parts) or of the benchmark process (boto3); faults: "
        "that process's minor page faults (median); "
        "S3 CPU s: the S3 server's; vs boto3: time / boto3's time"
    )
    ctx.add(table)
    ctx.add(dedup_table)


def dedup(
    ctx: Context,
    client: Any,
    bucket: str,
    service: str,
    size: int,
    servers: dict[str, Any],
    last: dict[str, Payload],
    figures: dict[str, Figures],
    table: Table,
) -> None:
    """Each mode's last upload, sent again: a dedup hit (its blob's row is there; its object was emptied with
    the bucket, which a hit never reads). What it costs, and that the bucket keeps nothing of it."""
    for mode, server in servers.items():
        payload = last.get(mode)
        if payload is None:
            continue
        before = bucket_usage(client, bucket)
        sync(size, str(ctx.workdir / "tmp"))
        with PeakMeter(server.pid):
            hit = post_multipart(server.url, "/api/attachments/", api_fields(ctx, "dedup-2"), payload, "d.bin")
        after = bucket_usage(client, bucket)
        ctx.check(
            hit.status == 201 and hit.body.get("checksum") == payload.sha256,
            f"stream {service} {mode} dedup hit: {hit.status} {hit.body!r:.200}",
        )
        kept = [after[i] - before[i] for i in range(3)]
        ctx.check(kept == [0, 0, 0], f"stream {service} {mode} dedup hit kept {kept} (objects, bytes, uploads)")
        first_s = median(figures[mode].seconds)
        table.rows.append(
            [service, fmt_size(size), mode, fmt_s(first_s), fmt_s(hit.seconds), fmt_ratio(hit.seconds, first_s),
             str(kept[0]), str(kept[1]), str(kept[2])]
        )  # fmt: skip
        ctx.target(
            f"S3 ({service}) dedup hit {fmt_size(size)} {mode}: bytes kept", "0", str(kept[1]), kept == [0, 0, 0]
        )
        empty(client, bucket)
