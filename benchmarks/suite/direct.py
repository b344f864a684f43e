"""7. Direct uploads (start, send the bytes where the ticket says, complete) next to the upload through the API.

For each store and size, two payloads of that size go up (two, not one: a
shared checksum would make the second a dedup hit), in alternating order:

- through the API: ``POST /api/attachments/`` (multipart), as benchmarks 1 and 2 do;
- directly: ``POST /api/attachments/uploads/`` with the size and SHA-256
  (start), then the bytes sent to the ticket's ``url`` with exactly its
  ``headers`` (PUT), then ``POST`` to its ``complete_url`` (complete). On S3
  the URL is a presigned one of the moto server: the bytes never reach the
  Django worker. On disk it is the API's own upload URL, which hashes the
  bytes while it writes them.

The Django worker's CPU time and peak RSS growth are measured over each step
and over the whole flow. Completion checks the object's SHA-256: where it is
known (the store's own checksum, as real S3 reports it, or the one the API's
upload URL took), it reads only the first bytes to sniff the type; where the
store reports none (moto), it streams the whole object back through SHA-256.
Which of the two happened is read from the store after each flow, the way
completion decides it, and printed next to the completion's own figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .client import path_of, post_json, send_payload
from .config import KIB, log
from .context import Context, api_upload
from .measure import FlowMeter, Growth, median, sync, worst
from .payloads import Payload
from .processes import Server
from .report import Table, fmt_cpu, fmt_mib, fmt_rate, fmt_ratio, fmt_s, fmt_size

STEPS = ("start", "put", "complete")


@dataclass
class DirectFlow:
    meter: FlowMeter
    ok: bool  # all three steps answered as expected and the attachment holds the payload's bytes
    whole: bool | None = None  # completion streamed the whole object (no known checksum); None: not found out


def bench_direct(ctx: Context) -> None:
    assert ctx.pool is not None
    compare = Table(
        "direct",
        "Direct upload against the upload through the API",
        "The same number of bytes sent two ways to the live server: `POST /api/attachments/` (multipart, through "
        "the Django worker), and a direct upload: `POST /api/attachments/uploads/` (start), the bytes sent to the "
        "ticket's URL with exactly its headers (PUT: to moto for S3, to the API's own upload URL for disk), then "
        "`POST` to its `complete_url` (complete). CPU s and RSS+ are the Django worker's, over the whole flow for "
        "the direct upload; moto's CPU is not counted.",
        ["store", "size", "API s", "API MB/s", "API CPU s", "API RSS+ MiB", "direct s", "direct MB/s",
         "direct CPU s", "direct RSS+ MiB", "ratio"],
    )  # fmt: skip
    steps = Table(
        "direct-steps",
        "Direct upload, step by step",
        "The direct uploads above, one step at a time: wall time, and the Django worker's CPU time and peak RSS "
        "growth during each step. 'complete reads' says how completion checked the SHA-256: `first bytes` (the "
        "checksum was known: taken by the API's upload URL while writing, or reported by the store; only the "
        "first bytes are read, to sniff the type) or `whole object` (the store reported no checksum of its own, "
        "as moto does not: the object is streamed back through SHA-256; real S3 returns the checksum it verified "
        "on the PUT, and completion would read the first bytes only).",
        ["store", "size", "start s", "PUT s", "PUT MB/s", "complete s", "complete reads", "start CPU s",
         "PUT CPU s", "complete CPU s", "PUT RSS+ MiB", "complete RSS+ MiB"],
    )  # fmt: skip
    stores: list[tuple[str, Server, list[int]]] = []
    if ctx.disk_server is not None:
        stores.append(("disk", ctx.disk_server, ctx.args.sizes))
    if ctx.s3_server is not None:
        stores.append(("s3", ctx.s3_server, ctx.args.s3_sizes))
    for store, server, sizes in stores:
        # Warm up the direct path (its views, the presigner), as the suite's warm-up does for API uploads.
        if not direct_upload(ctx, server, store, Payload(ctx.pool, 256 * KIB)).ok:
            continue
        for size in sizes:
            api_times, api_cpu, api_rss, flows, wholes = [], [], [], [], set()
            for repeat in range(ctx.args.repeat):
                order = ["api", "direct"] if repeat % 2 == 0 else ["direct", "api"]
                for which in order:
                    payload = Payload(ctx.pool, size)
                    sync()
                    if which == "api":
                        reply, meter, _ok = api_upload(ctx, server, server.pid, payload, label_of(store))
                        api_times.append(reply.seconds)
                        api_cpu.append(meter.cpu)
                        api_rss.append(meter.growth)
                    else:
                        flow = direct_upload(ctx, server, store, payload)
                        if flow.ok:
                            flows.append(flow.meter)
                            wholes.add(flow.whole)
            log_sizes(store, size, api_times, flows)
            api_t = median(api_times)
            api_g = worst(api_rss)
            if not flows:
                compare.rows.append([store, fmt_size(size), fmt_s(api_t), fmt_rate(size, api_t), fmt_cpu(api_cpu),
                                     fmt_mib(api_g)] + ["-"] * 5)  # fmt: skip
                steps.rows.append([store, fmt_size(size)] + ["-"] * 10)
                continue
            direct_t = median([f.wall for f in flows if f.wall is not None])
            direct_g = worst([f.growth for f in flows])
            step_t = {s: median([f.seconds[s] for f in flows]) for s in STEPS}
            step_cpu = {s: fmt_cpu([f.meters[s].cpu for f in flows]) for s in STEPS}
            step_rss: dict[str, Growth | None] = {s: worst([f.meters[s].growth for f in flows]) for s in STEPS}
            reads = {True: "whole object", False: "first bytes"}
            compare.rows.append(
                [store, fmt_size(size), fmt_s(api_t), fmt_rate(size, api_t), fmt_cpu(api_cpu), fmt_mib(api_g),
                 fmt_s(direct_t), fmt_rate(size, direct_t), fmt_cpu([f.cpu for f in flows]), fmt_mib(direct_g),
                 fmt_ratio(direct_t, api_t)]
            )  # fmt: skip
            steps.rows.append(
                [store, fmt_size(size), fmt_s(step_t["start"]), fmt_s(step_t["put"]), fmt_rate(size, step_t["put"]),
                 fmt_s(step_t["complete"]), " / ".join(reads.get(w, "?") for w in sorted(wholes, key=str)),
                 step_cpu["start"], step_cpu["put"], step_cpu["complete"], fmt_mib(step_rss["put"]),
                 fmt_mib(step_rss["complete"])]
            )  # fmt: skip
            if size == max(sizes):
                ctx.target(
                    f"direct upload {label_of(store)} {fmt_size(size)}: server RSS growth over the flow",
                    "flat (<= 16 MiB)",
                    fmt_mib(direct_g) + " MiB",
                    None if direct_g is None else direct_g.kib <= 16 * KIB,
                )
                if store == "s3":
                    put_cpu = [f.meters["put"].cpu for f in flows if f.meters["put"].cpu is not None]
                    ctx.target(
                        f"direct upload S3 {fmt_size(size)}: server CPU during the PUT",
                        "0 (the bytes bypass it)",
                        step_cpu["put"] + " s",
                        None if not put_cpu else max(put_cpu) <= 0.01,
                    )
    compare.notes.append(
        f"median of {ctx.args.repeat} run(s); RSS+: largest growth over the runs; CPU s: user + system time of the "
        "server worker (all threads; 10 ms ticks); direct s is the whole flow (start + PUT + complete); "
        "ratio: direct time / API time"
    )
    steps.notes.append(
        f"median of {ctx.args.repeat} run(s); RSS+: largest growth over the runs; on S3 the PUT goes to moto, so "
        "the worker is idle during it"
    )
    ctx.add(compare)
    ctx.add(steps)


def label_of(store: str) -> str:
    return "S3" if store == "s3" else store


def log_sizes(store: str, size: int, api_times: list[float], flows: list[FlowMeter]) -> None:
    for number, flow in enumerate(flows, 1):
        parts = ", ".join(f"{s} {flow.seconds[s]:.3f} s" for s in STEPS)
        log(f"  direct {store} {fmt_size(size)} #{number}: {parts}; CPU {flow.cpu or 0:.2f} s")
    log(f"  direct {store} {fmt_size(size)}: API uploads {', '.join(f'{t:.3f} s' for t in api_times)}")


def direct_upload(ctx: Context, server: Server, store: str, payload: Payload) -> DirectFlow:
    """Start, PUT, complete under a FlowMeter of the server's worker; check every answer and the stored bytes."""
    size = payload.size
    what = f"{label_of(store)} direct upload {fmt_size(size)}"
    fields = {
        "owner_type": "thing",
        "owner_id": ctx.thing_id,
        "filename": "direct.bin",
        "size": size,
        "checksum": payload.sha256,
    }
    # Where the bytes must go: moto for S3 (not the worker), the API itself for disk.
    expected_host = urlsplit(ctx.s3_endpoint if store == "s3" else server.url).netloc
    with FlowMeter(server.pid) as flow:
        with flow.step("start"):
            started = post_json(server.url, "/api/attachments/uploads/", fields)
        body = started.body if isinstance(started.body, dict) else {}
        ticket = body.get("upload") if started.status == 201 else None
        if not ctx.check(
            isinstance(ticket, dict) and body.get("attachment") is None,
            f"{what}: start answered {started.status} {started.body!r:.300}",
        ):
            return DirectFlow(flow, False)
        headers = ticket.get("headers") or {}
        lengths = [value for name, value in headers.items() if name.lower() == "content-length"]
        if not ctx.check(
            lengths == [str(size)] and urlsplit(ticket.get("url", "")).netloc == expected_host,
            f"{what}: the ticket sends the bytes to {ticket.get('url')!r:.120} with headers {headers!r:.300}; "
            f"expected {expected_host} and Content-Length {size}",
        ):
            return DirectFlow(flow, False)
        with flow.step("put"):
            sent = send_payload(ticket["method"], ticket["url"], headers, payload)
        if not ctx.check(200 <= sent.status < 300, f"{what}: PUT answered {sent.status} {sent.body!r:.300}"):
            return DirectFlow(flow, False)
        with flow.step("complete"):
            done = post_json(server.url, path_of(ticket["complete_url"]))
    attachment = done.body.get("attachment") if isinstance(done.body, dict) else None
    ok = ctx.check(
        done.status == 201 and isinstance(attachment, dict),
        f"{what}: complete answered {done.status} {done.body!r:.300}",
    )
    ok = ok and ctx.check(
        attachment.get("checksum") == payload.sha256 and attachment.get("size") == size,
        f"{what}: checksum/size mismatch {attachment!r:.300}",
    )
    return DirectFlow(flow, ok, completion_read_whole(ticket["id"]) if ok else None)


def completion_read_whole(upload_id: str) -> bool | None:
    """Whether completing the ticket had to stream the whole object: as completion decides, from the store's stat.

    Completion takes the checksum the store reports for the object, else the
    one the API's upload URL took while writing; only without either does it
    hash the object itself.
    """
    from django_attachments.models import DirectUpload
    from django_attachments.stores import get_store

    upload = DirectUpload.objects.select_related("attachment__blob").filter(pk=upload_id).first()
    if upload is None or upload.attachment is None:
        return None
    blob = upload.attachment.blob
    stat = get_store(blob.storage).stat(blob.storage_identifiers)
    return not (stat.checksum or upload.received_checksum)
