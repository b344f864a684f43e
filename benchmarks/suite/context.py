"""What every benchmark shares: the run's context (options, servers, results, sanity checks) and API uploads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .client import Reply, get, path_of, post_multipart
from .config import KIB, log
from .measure import PeakMeter
from .payloads import Payload, Pool
from .processes import Server
from .report import Table, fmt_size


class Context:
    """The run's options, work folder, servers and pool; the tables, targets and failed sanity checks so far."""

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


def api_fields(ctx: Context, name: str) -> dict[str, str]:
    return {"owner_type": "thing", "owner_id": ctx.thing_id, "name": name}


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
