"""The processes the suite starts (moto and the project's server) and the database it runs on."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests import servers
from tests.servers import free_port, stop, wait_until

from .config import AWS_ENV, BENCH_DIR


def moto_server(workdir: Path):
    return servers.moto_server(workdir, env=AWS_ENV)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def have_gunicorn() -> bool:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    kind: str
    logfile: Path

    @property
    def pid(self) -> int:
        """The process that handles requests: gunicorn's worker, or runserver itself."""
        if self.kind == "runserver":
            return self.proc.pid
        workers = children_of(self.proc.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker under {self.proc.pid}, found {workers}")
        return workers[0]

    def log_tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def project_server(kind: str, env: dict[str, str], workdir: Path, label: str) -> Iterator[Server]:
    with django_server(
        kind,
        python=sys.executable,
        cwd=BENCH_DIR,
        env=env,
        application="benchproject.wsgi:application",
        logfile=workdir / f"server-{label}.log",
        what=f"the {label} server",
        ready="/bare/list/?owner_type=thing&owner_id=0",
        worker_missing=SystemExit,
    ) as server:
        yield server


@contextlib.contextmanager
def django_server(
    kind: str,
    *,
    python: str,
    cwd: Path,
    env: dict[str, str],
    application: str,
    logfile: Path,
    what: str,
    ready: str = "/",
    any_status: bool = False,
    worker_missing: type[BaseException] = RuntimeError,
) -> Iterator[Server]:
    """A Django project served on a free port of 127.0.0.1 by ``python``: gunicorn with one sync worker
    (``application`` its WSGI app), or runserver; ready once ``ready`` answers (any status if ``any_status``)."""
    port = free_port()
    if kind == "gunicorn":
        command = [
            python, "-m", "gunicorn",
            "--workers", "1", "--worker-class", "sync", "--timeout", "600",
            "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
            application,
        ]  # fmt: skip
    else:
        command = [python, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"]
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    server = Server(url, proc, kind, logfile)
    try:
        wait_until(url + ready, proc, what, logfile, any_status=any_status)
        if kind == "gunicorn":
            deadline = time.monotonic() + 30
            while len(children_of(proc.pid)) != 1:
                if time.monotonic() > deadline:
                    raise worker_missing(f"gunicorn's worker did not show up:\n{server.log_tail()}")
                time.sleep(0.1)
        yield server
    finally:
        stop(proc)


@contextlib.contextmanager
def database_env() -> Iterator[dict[str, str]]:
    """SQLite in the work folder, or a fresh PostgreSQL database where DJANGO_ATTACHMENTS_TEST_PG is set."""
    address = os.environ.get("DJANGO_ATTACHMENTS_TEST_PG")
    if not address:
        yield {}
        return
    import psycopg

    host, port = address.rsplit(":", 1)
    name = f"attachments_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"BENCH_PG_HOST": host, "BENCH_PG_PORT": port, "BENCH_PG_NAME": name}
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
