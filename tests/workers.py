"""The example project with real task workers, for tests/test_worker.py: its processes, its rows, a browser.

::

    with worker_project(workdir, database="sqlite", env={"CLAMD_SOCKET": path}) as project:
        project.server                               # runserver on the immediate backend (the example's own)
        with project.on_workers() as workers:        # a second runserver, on the same database, that enqueues
            worker = workers.start_worker("w1")      # manage.py db_worker, a process of its own
            workers.db.blob(blob_id)                 # the blob's row, read straight from the database
            workers.db.tasks_for(blob_id)            # its process_blob task rows (django-tasks-db)
            worker.kill()                            # SIGKILL; workers.stop_workers(): SIGTERM

The project is :func:`tests.live.example_server` (migrated, seeded, served by
``runserver``) under :mod:`tests.worker_settings`. Every process of it -- the
servers, workers, management commands -- shares its database and media
folder. The test reads the rows through the database's own client (sqlite3,
psycopg), not the ORM: the test process runs another project.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests import servers
from tests.live import EXAMPLE_DIR, Server, example_server

ROOT = Path(__file__).resolve().parent.parent
TASK_PATH = "django_attachments.tasks.process_blob"
BLOB_TABLE = "django_attachments_blob"
TASK_TABLE = "django_tasks_database_dbtaskresult"
HTTP_TIMEOUT = 120
#: Seconds a worker waits before it looks for a task again, when it found none. With three workers polling
#: every 50 ms, the race of tests/test_worker.py took twice as long (busy two-core machine) as every 200 ms.
POLL_INTERVAL = 0.2


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60, interval: float = 0.05) -> Any:
    """Call ``probe`` until it returns something true; that value. AssertionError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last seen: {value!r}")
        time.sleep(interval)


def as_time(value: Any) -> datetime:
    """A timestamp as either client returns it (SQLite: text in UTC; psycopg: an aware datetime)."""
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class ProjectDatabase:
    """The project's database, read by its own client in autocommit (each query sees what has committed)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.postgres = bool(env.get("DJANGO_DB_HOST"))
        if self.postgres:
            import psycopg
            from psycopg.rows import dict_row

            self.conn: Any = psycopg.connect(
                host=env["DJANGO_DB_HOST"],
                port=env["DJANGO_DB_PORT"],
                user=env["DJANGO_DB_USER"],
                dbname=env["DJANGO_DB_NAME"],
                autocommit=True,
                row_factory=dict_row,
            )
        else:
            self.conn = sqlite3.connect(env["DJANGO_DB_PATH"], timeout=30, isolation_level=None)
            self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self.conn.close()

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Rows of ``sql`` (``%s`` placeholders) as dicts, JSON columns decoded."""
        if not self.postgres:
            sql = sql.replace("%s", "?")
        found = [dict(row) for row in self.conn.execute(sql, tuple(params)).fetchall()]
        for row in found:
            for key in ("metadata", "analysis_errors", "args_kwargs", "return_value", "worker_ids"):
                if isinstance(row.get(key), str):
                    row[key] = json.loads(row[key])
        return found

    def _id(self, blob_id: Any) -> str:
        # Django stores a UUID as 32 hex digits on SQLite, as a uuid on PostgreSQL.
        value = uuid.UUID(str(blob_id))
        return str(value) if self.postgres else value.hex

    def blob(self, blob_id: Any) -> dict[str, Any]:
        (row,) = self.rows(f"SELECT * FROM {BLOB_TABLE} WHERE id = %s", [self._id(blob_id)])
        return row

    def blobs(self, blob_ids: Iterable[Any]) -> list[dict[str, Any]]:
        return [self.blob(blob_id) for blob_id in blob_ids]

    def tasks(self) -> list[dict[str, Any]]:
        """Every process_blob task row, oldest first."""
        return self.rows(f"SELECT * FROM {TASK_TABLE} WHERE task_path = %s ORDER BY enqueued_at", [TASK_PATH])

    def finished_tasks(self, task_path: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Every row of ``task_path``, once there is one and none is waiting or running. A worker records a
        task's result after the task's own work has committed: what the work made is seen before it."""

        def probe() -> list[dict[str, Any]] | None:
            rows = self.rows(f"SELECT * FROM {TASK_TABLE} WHERE task_path = %s ORDER BY enqueued_at", [task_path])
            return rows if rows and all(row["status"] in ("SUCCESSFUL", "FAILED") for row in rows) else None

        return wait_for(f"the {task_path} tasks to finish", probe, timeout=timeout)

    def tasks_for(self, blob_id: Any) -> list[dict[str, Any]]:
        wanted = str(uuid.UUID(str(blob_id)))
        return [row for row in self.tasks() if row["args_kwargs"]["args"][0] == wanted]


def settled(row: dict[str, Any]) -> bool:
    """The pipeline has nothing left to do for the blob: a verdict, and analysis done or not due."""
    return row["scan_state"] in ("clean", "infected", "not_scanned") and row["analysis_state"] != "pending"


@dataclass
class Project:
    server: Server
    workdir: Path
    db: ProjectDatabase
    workers: list[subprocess.Popen] = field(default_factory=list)
    #: Servers started by :meth:`serve`, stopped with the project.
    extra_servers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    def start_worker(self, name: str, *, env: dict[str, str] | None = None) -> subprocess.Popen:
        """``manage.py db_worker`` as a process of its own (polling every POLL_INTERVAL); its output in <name>.log."""
        with open(self.workdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "db_worker",
                    "--interval",
                    str(POLL_INTERVAL),
                    "--no-startup-delay",
                    "--no-reload",
                    "--worker-id",
                    name,
                ],
                cwd=EXAMPLE_DIR,
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(proc)
        return proc

    def serve(self, name: str, *, env: dict[str, str]) -> Server:
        """Another ``runserver`` on the project's database and media, with ``env`` on top of the project's."""
        environment = {**self.env, **env}
        port = servers.free_port()
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
                cwd=EXAMPLE_DIR,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.extra_servers.append(proc)
        url = f"http://127.0.0.1:{port}"
        servers.wait_until(url + "/api/schema/", proc, f"the server {name}", log)
        return Server(url=url, pid=proc.pid, log=log, env=environment)

    @contextlib.contextmanager
    def on_workers(self) -> Iterator[Project]:
        """The project on django-tasks-db's database backend: a server of its own, workers the caller starts."""
        env = {"WORKER_TASKS_BACKEND": "database"}
        helper = dataclasses.replace(self, workers=[], extra_servers=[])
        try:
            helper.server = helper.serve("worker-server", env=env)
            yield helper
        finally:
            helper.stop()

    def stop_workers(self) -> None:
        for proc in self.workers:
            servers.stop(proc, grace=10)
        self.workers.clear()

    def stop(self) -> None:
        self.stop_workers()
        for proc in self.extra_servers:
            servers.stop(proc)
        self.extra_servers.clear()

    def manage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=EXAMPLE_DIR,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
        )

    def wait_settled(self, blob_ids: Iterable[Any], timeout: float = 60) -> list[dict[str, Any]]:
        ids = list(blob_ids)

        def probe() -> list[dict[str, Any]] | None:
            rows = self.db.blobs(ids)
            return rows if all(settled(row) for row in rows) else None

        return wait_for(f"blobs {ids} to be scanned and analyzed", probe, timeout=timeout)

    def wait_tasks_done(self, blob_id: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """The blob's task rows, once none is waiting or running (a worker records its result after the blob's)."""

        def probe() -> list[dict[str, Any]] | None:
            rows = self.db.tasks_for(blob_id)
            return rows if rows and all(row["status"] in ("SUCCESSFUL", "FAILED") for row in rows) else None

        return wait_for(f"the tasks of blob {blob_id} to finish", probe, timeout=timeout)


@contextlib.contextmanager
def worker_project(workdir: Path, *, database: str, env: dict[str, str] | None = None) -> Iterator[Project]:
    """The example project served live on ``database`` ("sqlite", "postgres"), on its own immediate backend."""
    environment = {
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    with example_server(workdir, env=environment, database=database) as server:
        project = Project(server=server, workdir=workdir, db=ProjectDatabase(server.env))
        try:
            yield project
        finally:
            project.stop()
            project.db.close()


# -- a browser: one session, for the admin and the API -------------------------------------------


class Browser:
    """HTTP/1.1 requests to the live server with a session cookie and its CSRF token, as a logged-in browser."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies: dict[str, str] = {}

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if "csrftoken" in self.cookies:
            sent["X-CSRFToken"] = self.cookies["csrftoken"]
        return sent

    def _remember(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | Iterable[bytes] = b"",
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; (status, headers, body). An iterable ``body`` is sent piece by piece (``length`` bytes)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        try:
            sent = self._headers(headers)
            conn.putrequest(method, path)
            size = len(body) if isinstance(body, (bytes, bytearray)) else length
            if size is None:
                raise ValueError("an iterable body needs its length")
            for name, value in {**sent, "Content-Length": str(size)}.items():
                conn.putheader(name, value)
            conn.endheaders()
            for piece in [body] if isinstance(body, (bytes, bytearray)) else body:
                conn.send(piece)
            response = conn.getresponse()
            self._remember(response)
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
        status, _, raw = self.request(
            method,
            path,
            body=json.dumps(payload).encode() if payload is not None else b"",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw[:500]

    def log_in(self, username: str, password: str) -> None:
        """Through the admin's login form: a session the admin and the API both accept."""
        status, _, page = self.request("GET", "/admin/login/")
        assert status == 200, status
        found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert found, page[:500]
        token = found.group(1).decode()
        form = f"username={username}&password={password}&csrfmiddlewaretoken={token}&next=/admin/".encode()
        status, headers, _ = self.request(
            "POST", "/admin/login/", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 302 and "sessionid" in self.cookies, (status, headers)

    def multipart(
        self, path: str, fields: dict[str, str], filename: str, chunks: Iterable[bytes], size: int
    ) -> tuple[int, dict[str, str], bytes]:
        """A form POST with one file, streamed from ``chunks`` (``size`` bytes in all)."""
        boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        return self.request(
            "POST",
            path,
            body=[head, *chunks, tail],
            length=len(head) + size + len(tail),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "application/json"},
        )

    # -- the three ways in -----------------------------------------------------------------

    def upload_api(self, owner_type: str, owner_id: str, filename: str, data: bytes) -> dict[str, Any]:
        """POST /api/attachments/; the attachment (201)."""
        status, _, raw = self.multipart(
            "/api/attachments/", {"owner_type": owner_type, "owner_id": owner_id}, filename, [data], len(data)
        )
        assert status == 201, (status, raw[:500])
        return json.loads(raw)

    def upload_admin(self, changelist_path: str, object_id: str, filename: str, data: bytes) -> None:
        """The attachments panel's upload form on an owner's admin change page (which it redirects back to)."""
        upload_path = f"{changelist_path}{object_id}/attachments/upload/"
        status, headers, raw = self.multipart(upload_path, {"name": "", "description": ""}, filename, [data], len(data))
        change_path = f"{changelist_path}{object_id}/change/"
        assert status == 302 and headers["location"] == change_path + "#attachments", (status, headers, raw[:500])
        status, _, page = self.request("GET", change_path)
        assert status == 200 and f"Attached {filename}.".encode() in page, status

    def upload_direct(self, owner_type: str, owner_id: str, filename: str, data: bytes) -> dict[str, Any]:
        """A direct upload: the ticket, the bytes PUT to its URL (local disk: the API's own), completion."""
        import hashlib

        status, started = self.json(
            "POST",
            "/api/attachments/uploads/",
            {
                "owner_type": owner_type,
                "owner_id": owner_id,
                "filename": filename,
                "size": len(data),
                "checksum": hashlib.sha256(data).hexdigest(),
            },
        )
        assert status == 201 and started["upload"], started
        ticket = started["upload"]
        parts = urlsplit(ticket["url"])
        status, _, raw = self.request(
            ticket["method"], f"{parts.path}?{parts.query}", body=data, headers=dict(ticket["headers"])
        )
        assert status == 204, (status, raw[:500])
        status, completed = self.json("POST", urlsplit(ticket["complete_url"]).path)
        assert status == 201, completed
        return completed["attachment"]

    def attachments(self, owner_type: str, owner_id: str) -> list[dict[str, Any]]:
        status, body = self.json("GET", f"/api/attachments/?owner_type={owner_type}&owner_id={owner_id}&page_size=100")
        assert status == 200, body
        return body["results"]

    def download(self, attachment: dict[str, Any]) -> tuple[int, bytes]:
        status, _, raw = self.request("GET", urlsplit(attachment["download_url"]).path)
        return status, raw

    def download_error(self, attachment: dict[str, Any]) -> tuple[int, str | None]:
        """A refused download's status and stable code."""
        status, raw = self.download(attachment)
        try:
            return status, json.loads(raw).get("code")
        except ValueError:
            return status, None
