"""15. The peers: an API upload to local disk next to drf-attachments, django-attachments-framework and the bare view.

Each peer is a small Django project of its own (``benchmarks/peers/``), set up
as its README says, in a virtualenv of its own that the suite makes with
``python -m venv`` and ``pip install`` of pinned versions, and keeps in the
user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``,
``django-attachments-bench/peers/``) for the next run. Django, DRF and
gunicorn are pinned to the versions of the benchmark's own environment.

Every contender runs the same way: its own server (gunicorn with one sync
worker, or runserver for all), its own SQLite database and local folder, the
same bytes from the same client, credentials a client of it would send (a
token for the DRF APIs, a session cookie and its CSRF token for the
framework's plain views; never HTTP Basic, which hashes the password on every
request). Per round, every contender uploads the round's payload in turn,
the first one rotating, each upload started alike (``measure.sync``); its
answer, and the file it stored (size and CRC-32), are checked, and the file
is deleted.

- ours: ``POST /api/attachments/`` (multipart): parsed to a temporary file
  while SHA-256 runs on a thread, type sniffed, deduplicated, stored (a
  rename), the attachment made for its owner;
- drf-attachments: ``POST /api/attachment/`` (multipart, its
  ``AttachmentViewSet`` as shipped): Django's default upload handlers, the
  type sniffed from the first KiB (python-magic), the file saved by its
  ``FileField`` (a rename), the row linked to its owner (a generic relation);
- django-attachments-framework: its whole flow on a ``FileSystemStorage``:
  ``POST upload-start/`` (JSON), the bytes sent as its ticket says (``PUT``
  of the raw body to its own ``<uuid>/upload/`` view, which spools them to a
  temporary file and copies that into the storage), ``POST
  <uuid>/upload-complete/`` linking it to its owner; and the same flow with
  the multipart ``POST`` that view also takes (Django's default handlers, a
  rename);
- bare: the benchmark project's ``/bare/upload/``, Django's default upload
  handlers and ``FileSystemStorage.save()``, no authentication.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .client import Reply, post_json, post_multipart, send_payload
from .config import BENCH_DIR, GIB, KIB, MIB, REPO_ROOT, log
from .context import Context
from .measure import FlowMeter, Growth, median, sync, worst
from .payloads import Payload, file_crc
from .processes import Server, django_server, have_gunicorn
from .report import Table, fmt_cpu, fmt_mib, fmt_rate, fmt_ratio, fmt_s, fmt_size

DEFAULT_SIZES = [256 * MIB, GIB]
QUICK_SIZES = [8 * MIB]
DEFAULT_ROUNDS = 9
PEERS_DIR = BENCH_DIR / "peers"

#: The peers: their project in PEERS_DIR, and what they need, pinned (django-filter: drf-attachments' README asks
#: for it with DRF).
PEERS = {
    "drf-attachments": (
        "drf_attachments_project",
        [
            "drf-attachments==0.4.2",
            "django-filter==26.2",
            "rest-framework-generic-relations==2.2.0",
            "content-disposition==1.2.0",
            "python-magic==0.4.27",
        ],
    ),
    "django-attachments-framework": (
        "attachments_framework_project",
        ["django-attachments-framework==0.1.0", "django-storages[s3]==1.14.6"],
    ),
}
#: Seconds a virtualenv may take to be made (pip's own network timeouts are shorter): a run without the package
#: index skips the peers instead of waiting.
SETUP_TIMEOUT = 600
QUICK_SETUP_TIMEOUT = 90


# -- virtualenvs ---------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "django-attachments-bench" / "peers"


def common_requirements() -> list[str]:
    """Django, DRF and gunicorn at the versions the benchmark's own environment runs."""
    import django
    import rest_framework

    found = [f"Django=={django.get_version()}", f"djangorestframework=={rest_framework.__version__}"]
    if have_gunicorn():
        import gunicorn

        found.append(f"gunicorn=={gunicorn.__version__}")
    return found


def virtualenv(name: str, requirements: list[str], timeout: float) -> Path:
    """The Python of a virtualenv with ``requirements`` installed, made once and kept in the cache.

    Keyed by the interpreter's version and the requirements; a folder left half
    made (no ``ready`` file) is made again. Raises RuntimeError with pip's words
    where it cannot be made (no package index, no such version).
    """
    key = hashlib.sha256("\n".join([sys.version, *requirements]).encode()).hexdigest()[:12]
    home = cache_root() / f"{name}-{key}"
    python = home / "bin" / "python"
    if (home / "ready").exists() and python.exists():
        return python
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", "--timeout", "10", "--retries", "1"]
    steps = {
        "python -m venv": [sys.executable, "-m", "venv", str(home)],
        "pip install": [*pip, "install", *requirements],
    }
    try:
        for step, command in steps.items():
            done = subprocess.run(command, capture_output=True, text=True, timeout=max(deadline - time.monotonic(), 1))
            if done.returncode != 0:
                said = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
                raise RuntimeError(f"{step} failed: {said[-1].strip() if said else done.returncode}")
        frozen = subprocess.run([*pip, "freeze"], capture_output=True, text=True, check=True, timeout=60).stdout
    except subprocess.TimeoutExpired:
        shutil.rmtree(home, ignore_errors=True)
        raise RuntimeError(f"making the virtualenv took over {timeout:.0f} s (no package index?)") from None
    except RuntimeError:
        shutil.rmtree(home, ignore_errors=True)
        raise
    (home / "ready").write_text(frozen)
    return python


def installed_version(python: Path, package: str) -> str:
    for line in (python.parent.parent / "ready").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.lower() == package.lower():
            return version
    return "?"


# -- the contenders' projects and servers --------------------------------------------------------------------------


@dataclass
class Project:
    """One served Django project: its Python, settings, work folder, server and what ``prepare.py`` made."""

    label: str
    python: str
    settings: str
    pythonpath: list[Path]
    owner_model: str
    workdir: Path
    server: Server | None = None
    token: str = ""
    session: str = ""
    owner: str = ""
    csrf: str = field(default_factory=lambda: secrets.token_hex(16))  # a CSRF secret: 32 letters and digits

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BENCH_") and k not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV"}
        }
        env.update(
            BENCH_WORKDIR=str(self.workdir),
            DJANGO_SETTINGS_MODULE=self.settings,
            PYTHONPATH=os.pathsep.join(str(p) for p in self.pythonpath),
            PYTHONUNBUFFERED="1",
            TMPDIR=str(self.workdir / "tmp"),  # a PUT's spooled file, beside the store
        )
        return env

    def prepare(self) -> None:
        for folder in ("media", "bare-media", "tmp"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [self.python, str(PEERS_DIR / "prepare.py"), "--owner", self.owner_model],
            cwd=PEERS_DIR, env=self.env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"preparing {self.label} failed:\n{done.stderr[-3000:]}")
        found = json.loads(done.stdout.strip().splitlines()[-1])
        self.token, self.session, self.owner = found.get("token", ""), found.get("session", ""), str(found["owner"])


@contextlib.contextmanager
def serve(kind: str, project: Project) -> Iterator[Server]:
    """The project's server on a free port of 127.0.0.1, as ``processes.project_server`` starts the suite's own."""
    with django_server(
        kind,
        python=project.python,
        cwd=PEERS_DIR,
        env=project.env(),
        application="django.core.wsgi:get_wsgi_application()",
        logfile=project.workdir / "server.log",
        what=f"the {project.label} server",
        any_status=True,
    ) as server:
        yield server


# -- the uploads ---------------------------------------------------------------------------------------------------


@dataclass
class Contender:
    key: str
    label: str
    project: Project
    store: Path  # the folder its files land in
    upload: Callable[[Project, Payload, FlowMeter], str | None]  # None, or what went wrong
    requests: int = 1
    times: dict[int, list[float]] = field(default_factory=dict)
    cpu: dict[int, list[float | None]] = field(default_factory=dict)
    rss: dict[int, list[Growth | None]] = field(default_factory=dict)
    faults: dict[int, list[int]] = field(default_factory=dict)


def minor_faults(pid: int) -> int:
    """Minor page faults of the process (all its threads) so far: a page it touched for the first time."""
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])


def _answer(reply: Reply, status: int) -> str | None:
    return None if reply.status == status else f"{reply.status} {reply.body!r:.300}"


def upload_ours(project: Project, payload: Payload, flow: FlowMeter) -> str | None:
    assert project.server is not None
    fields = {"owner_type": "thing", "owner_id": project.owner, "name": ""}
    with flow.step("upload"):
        reply = post_multipart(
            project.server.url, "/api/attachments/", fields, payload, "b.bin",
            headers={"Authorization": f"Token {project.token}"},
        )  # fmt: skip
    if reply.status == 201 and (reply.body.get("checksum"), reply.body.get("size")) != (payload.sha256, payload.size):
        return f"checksum/size mismatch {reply.body!r:.300}"
    return _answer(reply, 201)


def upload_bare(project: Project, payload: Payload, flow: FlowMeter) -> str | None:
    assert project.server is not None
    fields = {"owner_type": "thing", "owner_id": project.owner, "name": ""}  # the same request shape as ours
    with flow.step("upload"):
        reply = post_multipart(project.server.url, "/bare/upload/", fields, payload, "b.bin")
    return _answer(reply, 201)


def upload_drf_attachments(project: Project, payload: Payload, flow: FlowMeter) -> str | None:
    assert project.server is not None
    url = project.server.url
    fields = {"name": "b", "context": "attachment", "content_object": f"{url}/api/thing/{project.owner}/"}
    with flow.step("upload"):
        reply = post_multipart(
            url, "/api/attachment/", fields, payload, "b.bin", headers={"Authorization": f"Token {project.token}"}
        )
    return _answer(reply, 201)


def framework_flow(multipart: bool) -> Callable[[Project, Payload, FlowMeter], str | None]:
    """django-attachments-framework's start, upload (its ticket's PUT, or a multipart POST) and complete."""

    def upload(project: Project, payload: Payload, flow: FlowMeter) -> str | None:
        assert project.server is not None
        url = project.server.url
        cookie = f"sessionid={project.session}; csrftoken={project.csrf}"
        headers = {"Cookie": cookie, "X-CSRFToken": project.csrf}
        with flow.step("start"):
            start = post_json(
                url, "/attachments/upload-start/",
                {"name": "b.bin", "size": payload.size, "content_type": "application/octet-stream"}, headers,
            )  # fmt: skip
        if start.status != 200:
            return f"start: {_answer(start, 200)}"
        ticket = start.body["upload"]
        with flow.step("upload"):
            if multipart:
                sent = post_multipart(url, ticket["url"], {}, payload, "b.bin", headers=headers)
            else:
                sent = send_payload(
                    ticket["method"], url + ticket["url"],
                    {**ticket["headers"], "Content-Length": str(payload.size), "Cookie": cookie}, payload,
                )  # fmt: skip
        if sent.status != 200:
            return f"upload: {_answer(sent, 200)}"
        with flow.step("complete"):
            relations = {project.owner_model.lower(): [project.owner]}  # model label -> primary keys
            done = post_json(url, start.body["complete_url"], {"relations": relations}, headers)
        if done.status == 200 and (done.body.get("size"), bool(done.body.get("upload_completed_on"))) != (
            payload.size,
            True,
        ):
            return f"complete: size or completion wrong {done.body!r:.300}"
        return None if done.status == 200 else f"complete: {_answer(done, 200)}"

    return upload


def anonymous_status(project: Project, payload: Payload) -> int:
    """The status of a project's first upload request sent without credentials: 401 or 403 if it asks for a login."""
    assert project.server is not None
    url = project.server.url
    if project.label == "ours":
        fields = {"owner_type": "thing", "owner_id": project.owner, "name": ""}
        return post_multipart(url, "/api/attachments/", fields, payload, "a.bin").status
    if project.label == "drf-attachments":
        fields = {"name": "a", "context": "attachment", "content_object": f"{url}/api/thing/{project.owner}/"}
        return post_multipart(url, "/api/attachment/", fields, payload, "a.bin").status
    headers = {"Cookie": f"csrftoken={project.csrf}", "X-CSRFToken": project.csrf}  # CSRF passes, no session
    data = {"name": "a.bin", "size": payload.size, "content_type": "application/octet-stream"}
    return post_json(url, "/attachments/upload-start/", data, headers).status


def stored_files(folder: Path) -> list[Path]:
    return [Path(root) / name for root, _, names in os.walk(folder) for name in names]


def run_one(ctx: Context, contender: Contender, payload: Payload, *, measured: bool) -> bool:
    """One upload of ``payload`` by ``contender``, started alike; checked, and its file deleted."""
    project = contender.project
    assert project.server is not None
    size = payload.size
    sync(size if measured else 0, str(project.workdir / "tmp"))
    pid = project.server.pid
    faults = minor_faults(pid)
    with FlowMeter(pid) as flow:
        try:
            problem = contender.upload(project, payload, flow)
        except (OSError, KeyError, TypeError, AttributeError) as exc:  # no answer, or not the one expected
            problem = repr(exc)
    faults = minor_faults(pid) - faults
    what = f"peers {contender.label} {fmt_size(size)}"
    if not ctx.check(problem is None, f"{what}: {problem}\n{project.server.log_tail()[-1500:]}"):
        return False
    files = stored_files(contender.store)
    ok = ctx.check(len(files) == 1, f"{what}: expected one stored file in {contender.store}, found {len(files)}")
    ok = ok and ctx.check(
        file_crc(files[0]) == (size, payload.crc32), f"{what}: the stored file differs from the bytes sent"
    )
    for path in files:
        path.unlink()
    if measured and ok:
        assert flow.wall is not None
        contender.times.setdefault(size, []).append(flow.wall)
        contender.cpu.setdefault(size, []).append(flow.cpu)
        contender.rss.setdefault(size, []).append(flow.growth)
        contender.faults.setdefault(size, []).append(faults)
    return ok


# -- the benchmark -------------------------------------------------------------------------------------------------


def bench_peers(ctx: Context) -> None:
    assert ctx.pool is not None
    args = ctx.args
    sizes: list[int] = args.peer_sizes
    rounds = args.repeat if args.repeat_explicit else (1 if args.quick else DEFAULT_ROUNDS)
    table = Table(
        "peers",
        "Upload to local disk next to the peers",
        "Our API, drf-attachments, django-attachments-framework (its start, upload and complete: 3 requests; with "
        "the PUT its ticket names, and with the multipart POST its upload view also takes) and the bare view, each "
        f"its own project and server ({args.server}), SQLite, local disk; the peers in virtualenvs of their own. "
        "Same bytes, same client; a token (the DRF APIs) or a session (the framework's views), the bare view "
        "unauthenticated. Rounds alternate the contenders, the first one rotating; every upload starts alike.",
        ["size", "contender", "requests", "s", "min–max s", "MB/s", "CPU s", "minor faults", "RSS+ MiB", "vs bare"],
    )
    work = ctx.workdir / "peers"
    # Ours runs in this environment: the benchmark project, and a PYTHONPATH given to the run (e.g. another tree's src).
    given = [Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    here = [PEERS_DIR, BENCH_DIR, REPO_ROOT, *given]
    ours_project = Project("ours", sys.executable, "ours_project.settings", here, "benchapp.Thing", work / "ours")
    projects = [ours_project]
    contenders = [
        Contender("ours", "ours", ours_project, ours_project.workdir / "media", upload_ours),
    ]
    bare = Contender("bare", "bare view", ours_project, ours_project.workdir / "bare-media", upload_bare)
    timeout = QUICK_SETUP_TIMEOUT if args.quick else SETUP_TIMEOUT
    versions = []
    for name, (package, requirements) in PEERS.items():
        started = time.perf_counter()
        try:
            python = virtualenv(name, [*requirements, *common_requirements()], timeout)
        except RuntimeError as exc:
            reason = f"{name} skipped: its virtualenv could not be made: {exc}"
            log(f"  {reason}")
            table.notes.append(reason)
            continue
        log(f"  {name}: virtualenv ready in {time.perf_counter() - started:.1f} s ({python.parent.parent})")
        versions.append(f"{name} {installed_version(python, name)}")
        project = Project(name, str(python), f"{package}.settings", [PEERS_DIR], f"{package}.Thing", work / name)
        projects.append(project)
        store = project.workdir / "media"
        if name == "drf-attachments":
            contenders.append(Contender(name, name, project, store, upload_drf_attachments))
        else:
            contenders.append(Contender(f"{name}-put", f"{name} (PUT)", project, store, framework_flow(False), 3))
            contenders.append(Contender(f"{name}-post", f"{name} (POST)", project, store, framework_flow(True), 3))
    contenders.append(bare)

    with contextlib.ExitStack() as stack:
        for project in projects:
            project.prepare()
            project.server = stack.enter_context(serve(args.server, project))
            status = anonymous_status(project, Payload(ctx.pool, 256 * KIB))
            ctx.check(status in {401, 403}, f"peers {project.label}: an upload without credentials answered {status}")
        for contender in list(contenders):
            for _ in range(2):  # imports, libmagic, the first queries (new bytes each time: ours would dedup)
                if not run_one(ctx, contender, Payload(ctx.pool, 256 * KIB), measured=False):
                    contenders.remove(contender)
                    break
        for size in sizes:
            for r in range(rounds):
                payload = Payload(ctx.pool, size)
                start = r % len(contenders)
                for contender in contenders[start:] + contenders[:start]:
                    run_one(ctx, contender, payload, measured=True)
                log(
                    f"  peers {fmt_size(size)} #{r + 1}: "
                    + ", ".join(f"{c.key} {c.times[size][-1]:.3f} s" for c in contenders if c.times.get(size))
                )
        for project in projects:
            if project.server is not None and "Traceback" in project.server.logfile.read_text(errors="replace"):
                log(f"  note: the {project.label} server's log has tracebacks; see it with --keep")

    for size in sizes:
        bare_t = median(bare.times[size]) if bare.times.get(size) else None
        for contender in contenders:
            times = contender.times.get(size)
            if not times:
                continue
            t = median(times)
            table.rows.append(
                [fmt_size(size), contender.label, str(contender.requests), fmt_s(t),
                 f"{fmt_s(min(times))}–{fmt_s(max(times))}", fmt_rate(size, t), fmt_cpu(contender.cpu[size]),
                 f"{median(contender.faults[size]):,.0f}", fmt_mib(worst(contender.rss[size])), fmt_ratio(t, bare_t)]
            )  # fmt: skip
        ours_times = contenders[0].times.get(size) if contenders and contenders[0].key == "ours" else None
        peer_times = {
            c.label: median(c.times[size]) for c in contenders if c.key not in {"ours", "bare"} and c.times.get(size)
        }
        if size >= 100 * MIB and ours_times and peer_times:
            ours_t = median(ours_times)
            fastest = min(peer_times, key=lambda label: peer_times[label])
            slowest = max(peer_times, key=lambda label: peer_times[label])
            ctx.target(
                f"disk upload {fmt_size(size)}: time vs fastest / slowest peer",
                "<= 1.00x each peer",
                f"{fmt_ratio(ours_t, peer_times[fastest])} ({fastest}) / {fmt_ratio(ours_t, peer_times[slowest])}",
                ours_t <= peer_times[fastest],
            )
    table.notes.append(
        f"median of {rounds} round(s); min–max over them; CPU s: user + system time of the server worker over the "
        "whole flow (median); minor faults: the worker's over the flow (median), a page touched for the first time "
        "each; RSS+: the worker's largest peak RSS growth over a flow; vs bare: time / the bare view's time"
    )
    if versions:
        table.notes.append("installed: " + ", ".join(versions) + "; with " + ", ".join(common_requirements()))
    ctx.add(table)
