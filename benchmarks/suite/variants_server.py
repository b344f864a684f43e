"""The project the variants benchmark asks over HTTP: its server (and task worker), and the client's calls.

:func:`variant_server` serves the benchmark project with the variants'
settings (:mod:`suite.variants_settings`) on the run's database and media
folder, without authentication like every other benchmark of the suite:
gunicorn with :data:`WORKERS` sync workers (runserver, threaded, where
gunicorn is missing), and in ``worker`` mode one ``manage.py db_worker``
(django-tasks-db) beside it, after migrating that app's tables. Every process
appends its renders to the same log (:func:`renders` reads it).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.servers import free_port, stop, wait_until

from .client import post_multipart
from .config import BENCH_DIR
from .context import Context, api_fields
from .pipeline import child_env
from .processes import children_of

WORKERS = 4
TIMEOUT = 60  # seconds a request may take: a guard against a hung server


class Body:
    """Bytes in memory, as the suite's multipart client sends a payload."""

    def __init__(self, data: bytes) -> None:
        self.data, self.size = data, len(data)

    def chunks(self) -> Iterator[bytes]:
        yield self.data


def fetch(base_url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` on a connection of its own: the status, the headers (lower-case names), the whole body."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"Accept": "*/*"})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


@dataclass
class Served:
    """A running server: its URL, its process, and the logs (server, worker) to search for tracebacks."""

    url: str
    proc: subprocess.Popen
    logfiles: list[Path]

    def tracebacks(self) -> list[str]:
        return [p.name for p in self.logfiles if p.exists() and "Traceback" in p.read_text(errors="replace")]


@contextlib.contextmanager
def variant_server(ctx: Context, mode: str, render_log: Path) -> Iterator[Served]:
    """The project served with the variants' settings (and, in ``worker`` mode, one db_worker beside it)."""
    env = {
        **child_env(),
        "DJANGO_SETTINGS_MODULE": "suite.variants_settings",
        "BENCH_RENDER_LOG": str(render_log),
        "BENCH_VARIANT_TASKS": mode,
        "TMPDIR": str(ctx.workdir / "tmp"),
    }
    folder = ctx.workdir / "variants-serve"
    if mode == "worker":  # django-tasks-db's tables, beside the run's own
        subprocess.run([sys.executable, "-m", "django", "migrate", "--noinput", "-v0"], cwd=BENCH_DIR, env=env,
                       check=True, capture_output=True, timeout=300)  # fmt: skip
    port = free_port()
    logfile = folder / f"server-{mode}.log"
    if ctx.args.server == "gunicorn":
        command = [
            sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class", "sync", "--timeout", "600",
            "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "benchproject.wsgi:application",
        ]  # fmt: skip
    else:
        command = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with contextlib.ExitStack() as stack:
        with open(logfile, "wb") as out:
            proc = subprocess.Popen(command, cwd=BENCH_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
        stack.callback(stop, proc)
        url = f"http://127.0.0.1:{port}"
        wait_until(url + "/bare/list/?owner_type=thing&owner_id=0", proc, f"the variants server ({mode})", logfile)
        if ctx.args.server == "gunicorn":
            deadline = time.monotonic() + 30
            while len(children_of(proc.pid)) != WORKERS:
                if time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn's {WORKERS} workers did not show up")
                time.sleep(0.1)
        logfiles = [logfile]
        if mode == "worker":
            worker_log = folder / "db_worker.log"
            with open(worker_log, "wb") as out:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "django", "db_worker", "--interval", "0.2", "--no-startup-delay",
                     "--no-reload", "--worker-id", "bench-variants"],
                    cwd=BENCH_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            stack.callback(stop, worker)
            logfiles.append(worker_log)
        yield Served(url, proc, logfiles)


def renders(render_log: Path) -> list[dict[str, Any]]:
    """The renders logged so far by :class:`suite.render_counter.CountingImageRenderer`, in order."""
    if not render_log.exists():
        return []
    return [json.loads(line) for line in render_log.read_text().splitlines() if line.strip()]


def upload(ctx: Context, base_url: str, data: bytes, filename: str) -> dict[str, Any]:
    """``POST /api/attachments/`` of ``data`` to the run's owner; the attachment's JSON (201, or the run stops)."""
    reply = post_multipart(base_url, "/api/attachments/", api_fields(ctx, ""), Body(data), filename)
    if reply.status != 201:
        raise SystemExit(f"variants: upload answered {reply.status}: {reply.body!r:.500}")
    return reply.body
