"""The example project served for real, in a subprocess, for tests that need a live server.

    with example_server(tmp_path) as server:
        server.url          # "http://127.0.0.1:PORT"
        server.pid          # the server process, e.g. to read its memory

It runs on a fresh SQLite database and media folder inside ``workdir`` (or,
with ``database="postgres"``, a fresh database on the throwaway cluster that
``python -m tests.pgcluster`` started),
migrated and seeded with ``seed_demo`` (users ``north``/``north-demo`` and
``harbour``/``harbour-demo``, one per clinic), with ``runserver --noreload``
on a free port of 127.0.0.1. Extra ``env`` reaches the server, e.g.
``ATTACHMENTS_MAX_UPLOAD_SIZE``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import servers

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "example_project"


def fresh_postgres_database() -> dict[str, str]:
    """A new, empty database on the test cluster, as the example project's DJANGO_DB_* variables."""
    import uuid

    import psycopg

    host, port = os.environ["DJANGO_ATTACHMENTS_TEST_PG"].rsplit(":", 1)
    name = f"live_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return {"DJANGO_DB_HOST": host, "DJANGO_DB_PORT": port, "DJANGO_DB_NAME": name, "DJANGO_DB_USER": "postgres"}


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    log: Path
    env: dict[str, str]

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        """Run a management command against the server's database and storage."""
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=EXAMPLE_DIR, env=self.env, capture_output=True, text=True
        )


@contextmanager
def example_server(workdir: Path, *, env: dict[str, str] | None = None, database: str = "sqlite") -> Iterator[Server]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DJANGO_ATTACHMENTS_TEST_PG"}
    }
    environment.update(
        DJANGO_DB_PATH=str(workdir / "db.sqlite3"),
        DJANGO_MEDIA_ROOT=str(workdir / "media"),
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="live-test-server",
        DJANGO_API_BASIC_AUTH="1",
        PYTHONUNBUFFERED="1",
        **(env or {}),
    )
    if database == "postgres":
        environment.update(fresh_postgres_database())

    def manage(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=EXAMPLE_DIR, env=environment, capture_output=True
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr.decode()[-3000:]}")

    workdir.mkdir(parents=True, exist_ok=True)

    manage("migrate", "--noinput", "-v", "0")
    manage("seed_demo")
    port = servers.free_port()
    log = workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            # --insecure: serve the admin's static files although DEBUG is off.
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
            cwd=EXAMPLE_DIR,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        servers.wait_until(url + "/api/schema/", proc, "the example server", log)
        yield Server(url=url, pid=proc.pid, log=log, env=environment)
    finally:
        servers.stop(proc)
