"""5. Listing one owner's attachments in process (Django's test client): queries and time per request."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

from .config import log
from .context import Context
from .measure import median
from .report import Table, fmt_ratio


def make_listed_owner(count: int) -> str:
    """A Thing with ``count`` attachments, each on its own blob (rows only: listing reads no bytes)."""
    from benchapp.models import Thing
    from django.db import transaction

    from django_attachments.models import Attachment, Blob

    thing = Thing.objects.create(label=f"listed-{count}")
    blobs, attachments = [], []
    for i in range(count):
        token = uuid.uuid4().hex
        blob = Blob(
            checksum=hashlib.sha256(token.encode()).hexdigest(),
            size=1000 + i,
            content_type="application/pdf",
            filename=f"file-{i}.pdf",
            storage="default",
            storage_identifiers={"storage": "default", "name": f"attachments/{token[:2]}/{token[2:4]}/{token}"},
        )
        blobs.append(blob)
        attachments.append(
            Attachment(blob=blob, owner_type="thing", owner_id=str(thing.pk), name=f"slot-{i}", description="listed")
        )
    with transaction.atomic():
        Blob.objects.bulk_create(blobs, batch_size=500)
        Attachment.objects.bulk_create(attachments, batch_size=500)
    return str(thing.pk)


def timed_requests(client: Any, url: str, n: int) -> tuple[int, int, list[float], Any]:
    """(status, queries of the last request, seconds of each, parsed body)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):  # warm-up
        client.get(url)
    times = []
    queries = 0
    response = None
    for _ in range(n):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        queries = max(queries, len(captured.captured_queries))
    assert response is not None
    return response.status_code, queries, times, json.loads(response.content)


def bench_list(ctx: Context) -> None:
    from django.test import Client

    from django_attachments.conf import app_settings

    counts = ctx.args.list_counts
    n = 5 if ctx.args.quick else 30
    page_sizes = [app_settings.PAGE_SIZE, app_settings.MAX_PAGE_SIZE]
    table = Table(
        "list",
        "List one owner's attachments",
        "`GET /api/attachments/?owner_type=thing&owner_id=…` in process through Django's test client (the "
        "project's middleware and URLs, no network), against a bare view that pages the same rows with Django's "
        "`Paginator` over `values()` (blob columns joined). Queries counted with `CaptureQueriesContext`; time is "
        f"the median of {n} requests after two warm-ups.",
        ["attachments", "page size", "rows", "API queries", "API ms", "bare queries", "bare ms", "ratio"],
    )
    client = Client()
    api_queries: set[int] = set()
    full_pages: list[tuple[float, float]] = []  # (API ms, bare ms) of pages of MAX_PAGE_SIZE rows
    for count in counts:
        owner = make_listed_owner(count)
        for page_size in page_sizes:
            query = f"owner_type=thing&owner_id={owner}&page_size={page_size}"
            status, queries, times, body = timed_requests(client, f"/api/attachments/?{query}", n)
            rows = min(count, page_size)
            ctx.check(
                status == 200
                and isinstance(body, dict)
                and body.get("count") == count
                and len(body.get("results", [])) == rows,
                f"list {count}: API status {status}, body {body!r:.200}",
            )
            bare_status, bare_queries, bare_times, bare_body = timed_requests(client, f"/bare/list/?{query}", n)
            ctx.check(
                bare_status == 200 and bare_body.get("count") == count and len(bare_body["results"]) == rows,
                f"list {count}: bare view status {bare_status}",
            )
            api_queries.add(queries)
            api_ms, bare_ms = median(times) * 1000, median(bare_times) * 1000
            if rows == app_settings.MAX_PAGE_SIZE:
                full_pages.append((api_ms, bare_ms))
            table.rows.append(
                [f"{count:,}", str(page_size), str(rows), str(queries), f"{api_ms:.1f}", str(bare_queries),
                 f"{bare_ms:.1f}", fmt_ratio(api_ms, bare_ms)]
            )  # fmt: skip
            log(
                f"  list {count} page {page_size}: API {queries} queries {api_ms:.1f} ms, "
                f"bare {bare_queries} queries {bare_ms:.1f} ms"
            )
    table.notes.append("ratio: API time / bare view time; queries: the most seen in one request")
    ctx.target("list: queries per request", "constant", ", ".join(map(str, sorted(api_queries))), len(api_queries) == 1)
    rows = app_settings.MAX_PAGE_SIZE
    if full_pages:
        ratio = max(api / bare for api, bare in full_pages)
        ctx.target(
            f"list {rows} rows: time vs bare view",
            "<= 1.5x",
            ", ".join(fmt_ratio(api, bare) for api, bare in full_pages),
            ratio <= 1.5,
        )
    else:  # --quick lists fewer attachments than a full page
        ctx.target(f"list {rows} rows: time vs bare view", "<= 1.5x", "not measured", None)
    ctx.add(table)
