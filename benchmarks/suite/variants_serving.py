"""Variants over HTTP: many first requests for one lazy variant, and a stored variant served against a download.

The benchmark project with the example project's variants
(:mod:`suite.variants_settings`: ``thumb`` eager, ``preview`` lazy), served as
:mod:`suite.variants_server` starts it: gunicorn with several sync workers, so
that requests do run at once. Its only renderer is
:class:`suite.render_counter.CountingImageRenderer`, which logs every render
any process makes.

**First requests** (``variants-first`` table), in two modes of the Tasks
framework: ``inline`` (the immediate backend: the request that claims the
variant renders it before answering) and ``worker`` (django-tasks-db's
database backend and one ``manage.py db_worker``: every request answers 202
until the worker has made it; skipped without django-tasks-db). Per round, a
fresh photo is uploaded through the API (its eager ``thumb`` made by the
pipeline), then CLIENTS threads, released together by a barrier, each ask
``GET /api/attachments/{id}/variants/preview/`` on a connection of their own
and, on 202, sleep ``Retry-After`` seconds and ask again, until 200. A client's
latency runs from the barrier to its 200; the round's time to the last 200.
The anchor: the same clients asking again once the variant is made.

What proves one render, per round: the counter's log has exactly one
``preview`` render (and one ``thumb``, the upload's); the database has
exactly one ``preview`` Variant row for the blob and no claim left
(``VariantRender``); the media folder holds exactly one object more than
before the burst (a losing render would have deleted its own, so this alone
proves no more than no stray); every client got 200 with the same bytes,
whose SHA-256 is the row's checksum and the stored object's; the server logs
no traceback.

**Serving** (``variants-serve`` table): one client, sequential requests, each
on a new connection, read whole and hashed: ``GET variants/{name}/`` of a
stored variant against ``GET download/`` of an original of exactly its size
(random bytes uploaded through the API), alternating rounds on the same
server; requests/s and MB/s per round.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import threading
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .client import path_of
from .config import log
from .context import Context
from .pipeline import fmt_bytes, spread
from .report import Table
from .variants import FULL, QUICK, repeats
from .variants_samples import labelled, make_photo
from .variants_server import WORKERS, Served, fetch, renders, upload, variant_server

#: A client gives up after this long (a sanity failure): the variant should be there within seconds.
CLIENT_DEADLINE = 120


@dataclass
class Answer:
    """One client's outcome: its last status, the body's SHA-256 and size, its latency, its requests, its 202s."""

    status: int = 0
    sha256: str = ""
    size: int = 0
    etag: str = ""
    seconds: float = 0.0
    requests: int = 0
    pending: int = 0
    error: str = ""


def objects_in(media: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(media))


def burst(base_url: str, path: str, clients: int) -> tuple[list[Answer], float]:
    """``clients`` threads released at once, each asking ``path`` until 200 (following Retry-After)."""
    barrier = threading.Barrier(clients + 1)
    answers = [Answer() for _ in range(clients)]

    def client(answer: Answer) -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            while True:
                status, headers, body = fetch(base_url, path)
                answer.requests += 1
                if status == 202 and time.perf_counter() - started < CLIENT_DEADLINE:
                    answer.pending += 1
                    time.sleep(float(headers.get("retry-after", "1")))
                    continue
                answer.status, answer.size, answer.etag = status, len(body), headers.get("etag", "")
                answer.sha256 = hashlib.sha256(body).hexdigest()
                break
        except Exception as exc:  # a refused or reset connection: reported, not raised in a thread
            answer.error = f"{type(exc).__name__}: {exc}"
        answer.seconds = time.perf_counter() - started

    threads = [threading.Thread(target=client, args=(answer,), daemon=True) for answer in answers]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return answers, time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


@dataclass
class Round:
    total: float
    p50: float
    p95: float
    slowest: float
    requests: int
    pending: int
    renders: int = 0
    rows: int = 0
    claims: int = 0
    objects: int = 0
    render_s: float | None = None  # the render's own time, from the renderer's log


def wait_for_thumb(blob_id: Any, timeout: float = 60) -> bool:
    from django_attachments.models import Variant

    deadline = time.monotonic() + timeout
    while not Variant.objects.filter(blob_id=blob_id, name="thumb").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def first_requests(
    ctx: Context, served: Served, mode: str, photo: bytes, clients: int, rounds: int, render_log: Path
) -> tuple[list[Round], list[Round], dict[str, Any] | None]:
    """The rounds of first requests and of the anchor (the variant made); the first round's attachment."""
    from django.conf import settings

    from django_attachments.models import Attachment, Variant, VariantRender

    media = Path(settings.MEDIA_ROOT)
    firsts: list[Round] = []
    anchors: list[Round] = []
    kept = None
    for number in range(rounds):
        where = f"variants {mode}, round {number + 1}"
        before = len(renders(render_log))
        body = upload(ctx, served.url, labelled(photo, f"{mode}-{number}-{time.time_ns()}"), "photo.jpg")
        kept = kept or body
        blob_id = Attachment.objects.get(pk=body["id"]).blob_id
        ctx.check(wait_for_thumb(blob_id), f"{where}: the eager thumb was not made after the upload")
        made = renders(render_log)[before:]
        ctx.check(
            [r["spec"]["width"] for r in made] == [256],
            f"{where}: the upload rendered {[r['spec'] for r in made]}, not one thumb",
        )
        before, objects = len(renders(render_log)), objects_in(media)
        path = f"/api/attachments/{body['id']}/variants/preview/"
        answers, total = burst(served.url, path, clients)
        log_lines = renders(render_log)[before:]
        previews = [r for r in log_lines if r["spec"]["width"] == 1600]
        rows = list(Variant.objects.filter(blob_id=blob_id, name="preview"))
        claims = VariantRender.objects.filter(blob_id=blob_id).count()
        added = objects_in(media) - objects
        result = summarize(answers, total)
        result.renders, result.rows, result.claims, result.objects = len(previews), len(rows), claims, added
        if previews:
            result.render_s = previews[0]["ended"] - previews[0]["started"]
        firsts.append(result)
        check_burst(ctx, where, answers, rows, media)
        ctx.check(len(previews) == 1 and len(log_lines) == 1, f"{where}: {len(log_lines)} render(s), not one preview")
        ctx.check(len(rows) == 1 and claims == 0, f"{where}: {len(rows)} preview row(s), {claims} claim(s) left")
        ctx.check(added == 1, f"{where}: the media folder has {added} object(s) more, not 1")
        log(
            f"  {where}: {clients} clients in {total:.2f} s (p50 {result.p50:.2f}, p95 {result.p95:.2f}), "
            f"{result.requests} requests, {result.pending} answered 202, {len(previews)} render(s)"
        )
        again, total = burst(served.url, path, clients)
        anchor = summarize(again, total)
        anchor.renders, anchor.rows = len(renders(render_log)) - before - len(log_lines), len(rows)
        anchors.append(anchor)
        check_burst(ctx, f"{where}, made", again, rows, media)
        ctx.check(anchor.renders == 0 and anchor.pending == 0, f"{where}, made: renders or 202s after it was made")
    return firsts, anchors, kept


def summarize(answers: list[Answer], total: float) -> Round:
    latencies = [a.seconds for a in answers]
    return Round(
        total=total,
        p50=statistics.median(latencies),
        p95=percentile(latencies, 0.95),
        slowest=max(latencies),
        requests=sum(a.requests for a in answers),
        pending=sum(a.pending for a in answers),
    )


def check_burst(ctx: Context, where: str, answers: list[Answer], rows: list[Any], media: Path) -> None:
    errors = [a.error for a in answers if a.error]
    ctx.check(not errors, f"{where}: {len(errors)} client(s) failed, e.g. {errors[:1]}")
    statuses = sorted({a.status for a in answers if not a.error})
    ctx.check(statuses == [200], f"{where}: final statuses {statuses}, not all 200")
    digests = {a.sha256 for a in answers if a.status == 200}
    ctx.check(len(digests) == 1, f"{where}: {len(digests)} different bodies among the clients")
    if len(rows) == 1 and len(digests) == 1:
        variant = rows[0]
        stored = media / variant.storage_identifiers["name"]
        on_disk = hashlib.sha256(stored.read_bytes()).hexdigest() if stored.exists() else "missing"
        ctx.check(
            digests == {variant.checksum} == {on_disk},
            f"{where}: the clients' bytes, the row's checksum and the stored object differ",
        )
        ctx.check(all(a.size == variant.size and a.etag for a in answers), f"{where}: a body's size or ETag is wrong")


def throughput(ctx: Context, served: Served, cases: dict[str, tuple[str, int, str]], count: int) -> dict[str, list]:
    """Seconds per round of ``count`` sequential requests, per case (path, size, SHA-256); every body checked."""
    times: dict[str, list[float]] = {case: [] for case in cases}
    for number in range(repeats(ctx)):
        order = list(cases) if number % 2 == 0 else list(reversed(cases))
        for case in order:
            path, size, digest = cases[case]
            bad = 0
            started = time.perf_counter()
            for _ in range(count):
                status, _headers, body = fetch(served.url, path)
                bad += status != 200 or len(body) != size or hashlib.sha256(body).hexdigest() != digest
            times[case].append(time.perf_counter() - started)
            ctx.check(bad == 0, f"variants serving, {case}: {bad} of {count} answers wrong (status, size or bytes)")
    return times


def bench_serving(ctx: Context) -> None:
    sizes = QUICK if ctx.args.quick else FULL
    clients, rounds = sizes["clients"], sizes["rounds"]
    folder = ctx.workdir / "variants-serve"
    folder.mkdir()
    width, height = sizes["photo"]
    photo = make_photo(width, height)
    first = Table(
        "variants-first",
        f"Variants: {clients} concurrent first requests for one lazy variant",
        f"`GET /api/attachments/{{id}}/variants/preview/` (fit 1600, JPEG 85) of a fresh {width} x {height} JPEG "
        f"({fmt_bytes(len(photo))}) per round, by {clients} client threads released at once, each on its own "
        "connection, following `202` + `Retry-After` until `200`; the server: gunicorn, "
        f"{WORKERS} sync workers (2 cores). `inline`: the immediate Tasks backend (the claiming request renders); "
        "`worker`: django-tasks-db and one `db_worker` (polling every 0.2 s). The anchor row: the same clients once "
        "the variant is made. Times: median over the rounds (min–max); a client's latency runs from the barrier "
        "to its 200. Per round: `render s` the render's own time (the renderer's log), `renders` the renders that "
        "log counts (every process), `rows` the preview's Variant rows, `claims` VariantRender rows left, "
        "`objects` the objects the burst added to the media folder; `checks`: every sanity check of the mode "
        "passed (among them: every client's body hashes to the row's checksum and to the stored object).",
        ["mode", "case", "rounds", "total s", "p50 s", "p95 s", "max s", "requests", "202s", "render s", "renders",
         "rows", "claims", "objects", "checks"],
    )  # fmt: skip
    modes = list(sizes["modes"])
    if "worker" not in modes:
        first.notes.append("worker mode: in full runs only")
    elif find_spec("django_tasks_db") is None:
        modes.remove("worker")
        first.notes.append("worker mode skipped: django-tasks-db is not installed")
    if ctx.args.server != "gunicorn":
        first.notes.append("served by runserver (threaded): gunicorn is not installed")
    serve = Table(
        "variants-serve",
        "Variants: serving a stored variant against downloading an original of its size",
        "One client, sequential requests on a new connection each, bodies read whole and hashed; the same server "
        f"(gunicorn, {WORKERS} sync workers, the immediate backend). `GET variants/{{name}}/` of a stored variant "
        "against `GET download/` of an original of exactly its size (random bytes uploaded through the API). "
        "Rounds alternate; figures are the median over the rounds (min–max); `ratio` the variant's requests/s over "
        "the download's, per round, median (min–max).",
        ["variant", "size", "case", "requests", "req/s", "req/s (min–max)", "MB/s", "ratio"],
    )  # fmt: skip
    for mode in modes:
        render_log = folder / f"renders-{mode}.jsonl"
        failed_before = len(ctx.problems)
        with variant_server(ctx, mode, render_log) as served:
            firsts, anchors, kept = first_requests(ctx, served, mode, photo, clients, rounds, render_log)
            if mode == "inline" and kept is not None:
                serving(ctx, served, kept, serve)
            broken = served.tracebacks()
            ctx.check(not broken, f"variants {mode}: traceback(s) in {', '.join(broken)}")
        for case, runs in (("first requests", firsts), ("made (anchor)", anchors)):
            first.rows.append(round_row(mode, case, runs, len(ctx.problems) == failed_before))
    ctx.add(first)
    ctx.add(serve)


def serving(ctx: Context, served: Served, kept: dict[str, Any], table: Table) -> None:
    """Each variant of the kept attachment against the download of an original of its size."""
    from django_attachments.models import Attachment, Variant

    count = (QUICK if ctx.args.quick else FULL)["requests"]
    blob_id = Attachment.objects.get(pk=kept["id"]).blob_id
    cases: dict[str, tuple[str, int, str]] = {}
    for name in ("preview", "thumb"):
        variant = Variant.objects.get(blob_id=blob_id, name=name)
        original = upload(ctx, served.url, os.urandom(variant.size), f"{name}-size.bin")
        cases[f"{name} variant"] = (f"/api/attachments/{kept['id']}/variants/{name}/", variant.size, variant.checksum)
        cases[f"{name} download"] = (path_of(original["download_url"]), variant.size, original["checksum"])
    times = throughput(ctx, served, cases, count)
    for name in ("preview", "thumb"):
        ours, anchor = times[f"{name} variant"], times[f"{name} download"]
        ratios = [a / o for o, a in zip(ours, anchor, strict=True)]  # requests/s: the inverse of the times
        size = cases[f"{name} variant"][1]
        for case, values in (("variant", ours), ("download (anchor)", anchor)):
            rates = [count / t for t in values]
            rate = statistics.median(rates)
            table.rows.append([
                name, fmt_bytes(size), case, str(count), f"{rate:.0f}", spread(rates, 0), f"{rate * size / 1e6:.3g}",
                ratio_of(ratios) if case == "variant" else "-",
            ])  # fmt: skip
        ctx.target(
            f"serving the {name} variant ({fmt_bytes(size)}): requests/s over the download's",
            "none set (1: as fast)",
            ratio_of(ratios),
            None,
        )
    table.notes.append(f"{repeats(ctx)} rounds of {count} requests per case")


def round_row(mode: str, case: str, runs: list[Round], ok: bool) -> list[str]:
    def field(name: str) -> str:
        values = [getattr(r, name) for r in runs]
        return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"

    def each(name: str, digits: int | None = None) -> str:
        values = [getattr(r, name) for r in runs]
        return ", ".join("-" if v is None else (f"{v:.2f}" if digits else str(v)) for v in values)

    first = case == "first requests"
    return [
        mode, case, str(len(runs)), field("total"), field("p50"), field("p95"), field("slowest"),
        each("requests"), each("pending"), each("render_s", 2) if first else "-", each("renders"), each("rows"),
        each("claims") if first else "-", each("objects") if first else "-", "passed" if ok else "FAILED",
    ]  # fmt: skip


def ratio_of(ratios: list[float]) -> str:
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}x"
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}–{max(ratios):.2f})"
