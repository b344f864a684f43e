"""The processing pipeline end to end, live: uploads over HTTP, a real clamd, and real task workers.

The example project is served for real (:mod:`tests.workers`: ``runserver``
on a fresh database, seeded) on SQLite, or on PostgreSQL when the suite runs
under ``python -m tests.pgcluster``, with clamd as its scanner
(``CLAMD_SOCKET``), either

- on its own Tasks backend, the immediate one: each upload is scanned and
  analyzed inside its request, once its row commits; or
- on django-tasks-db's database backend, with ``manage.py db_worker``
  processes started and killed by the tests: the request only enqueues.

The same three ways in -- the API, the admin's attachments panel, a direct
upload -- end with a scanned and analyzed blob on both; EICAR ends
quarantined, never served. Then, with workers only: a worker killed mid-scan
leaves its blob pending for the backlog run (what ``process_attachments
--pending`` does); a scan that could not run is
retried by the backend, deferred, until it succeeds; and several workers and a
backlog run racing on the same blobs leave each one as one run would.

The database backend needs Django 5.2+ and django-tasks-db (the ``worker``
extra); without them those tests skip.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import time
from pathlib import Path

import django
import pytest

from tests import clamd as clamd_helpers
from tests import servers
from tests.workers import Browser, Project, as_time, settled, wait_for, worker_project

DATABASE = "postgres" if os.environ.get("DJANGO_ATTACHMENTS_TEST_PG") else "sqlite"
USERNAME, PASSWORD = "north", "north-demo"  # staff of Northside Dental (seed_demo)
PATIENTS = "/admin/patients/patient/"
#: Rounds of the race between workers and the backlog run.
RACE_ROUNDS = int(os.environ.get("WORKER_RACE_ROUNDS", "20"))


def needs_db_worker() -> None:
    if django.VERSION < (5, 2):
        pytest.skip("django-tasks-db, the database backend with a real worker, needs Django 5.2+")
    pytest.importorskip("django_tasks_db", reason="django-tasks-db is not installed (the worker extra)")


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    """clamd with the tests' signatures, taking streams up to 512 MiB (the killed worker's file is 200 MB)."""
    clamd_helpers.skip_without_clamd()
    with servers.clamd_server(
        tmp_path_factory.mktemp("worker-clamd"), clamd_helpers.databases(), stream_max_length="512M"
    ) as running:
        yield running


def project_env(workdir: Path, clamd: servers.Clamd) -> dict[str, str]:
    return {
        "CLAMD_SOCKET": clamd.socket,
        "ATTACHMENTS_MAX_UPLOAD_SIZE": str(1024**3),
        "WORKER_INFECTED_LOG": str(workdir / "infected.log"),
        # Direct uploads of more than 5 MiB go in parts of 5 MiB: multipart uploads of a few MiB.
        "ATTACHMENTS_MULTIPART_THRESHOLD": str(5 * 1024 * 1024),
        "ATTACHMENTS_MULTIPART_PART_SIZE": str(5 * 1024 * 1024),
    }


@pytest.fixture(scope="module")
def immediate_project(tmp_path_factory, clamd):
    """The example project on its own Tasks backend, the immediate one; seeded (and its seed scanned) by it."""
    workdir = tmp_path_factory.mktemp("worker-project")
    with worker_project(workdir, database=DATABASE, env=project_env(workdir, clamd)) as project:
        yield project


@pytest.fixture(scope="module")
def workers_project(immediate_project):
    """The same project and database, served by a server whose uploads only enqueue, for workers to run."""
    needs_db_worker()
    with immediate_project.on_workers() as project:
        yield project


@pytest.fixture
def project(workers_project):
    """The project on the database backend, with no worker running when the test starts or after it ends."""
    assert not workers_project.workers
    yield workers_project
    workers_project.stop_workers()


def browser_for(project: Project) -> Browser:
    browser = Browser(project.server.url)
    browser.log_in(USERNAME, PASSWORD)
    return browser


def patient_id(project: Project, record_number: str) -> str:
    (row,) = project.db.rows("SELECT id FROM patients_patient WHERE record_number = %s", [record_number])
    return str(row["id"])


def infected_lines(project: Project) -> list[dict]:
    log = project.workdir / "infected.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# -- files ----------------------------------------------------------------------------------------


def image_bytes(width: int, height: int, fmt: str, rng: random.Random) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3))).save(out, fmt)
    return out.getvalue()


def pdf_bytes(pages: int, rng: random.Random) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": f"referral {rng.random()}"})  # new bytes for each call
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- 1. three ways in, on both backends -----------------------------------------------------------


@pytest.fixture(params=["immediate", "database"])
def pipeline(request) -> tuple[str, Project]:
    if request.param == "immediate":
        return "immediate", request.getfixturevalue("immediate_project")
    return "database", request.getfixturevalue("project")


def test_api_admin_and_direct_uploads_end_scanned_and_analyzed_eicar_quarantined(pipeline):
    backend, project = pipeline
    browser = browser_for(project)
    # Each backend's uploads go to a patient of their own: EICAR once per patient (a second one is refused).
    patient = patient_id(project, "N-0001" if backend == "immediate" else "N-0002")
    rng = random.Random(f"three-ways-{backend}")
    files = {
        "api": ("api-photo.png", image_bytes(64, 48, "PNG", rng)),
        "admin": ("admin-referral.pdf", pdf_bytes(2, rng)),
        "direct": ("direct-photo.jpg", image_bytes(40, 30, "JPEG", rng)),
        "eicar": ("eicar.com", clamd_helpers.EICAR),
    }
    attachments = {}
    for way, (filename, data) in files.items():
        if way in ("api", "eicar"):
            attachments[way] = browser.upload_api("patient", patient, filename, data)
        elif way == "direct":
            attachments[way] = browser.upload_direct("patient", patient, filename, data)
        else:
            browser.upload_admin(PATIENTS, patient, filename, data)
            (attachments[way],) = (a for a in browser.attachments("patient", patient) if a["filename"] == filename)
    blob_ids = {way: attachment["blob_id"] for way, attachment in attachments.items()}
    # The API's answers say where each file stands: settled before the answer on the immediate backend.
    answered = {"api": "analyzed", "admin": "analyzed", "direct": "analyzed", "eicar": "not_analyzed"}
    if backend == "database":
        answered = {**answered, "api": "pending", "admin": "pending", "direct": "pending"}
    for way, attachment in attachments.items():
        scan = ("infected" if way == "eicar" else "clean") if backend == "immediate" else "pending"
        assert (attachment["scan"], attachment["analysis"]) == (scan, answered[way]), (way, attachment)

    if backend == "database":
        # No worker yet: every blob waits for its scan, and none is served meanwhile.
        for way, blob_id in blob_ids.items():
            row = project.db.blob(blob_id)
            assert (row["scan_state"], row["analysis_state"]) == (
                "pending",
                "not_analyzed" if way == "eicar" else "pending",
            ), way
            assert browser.download_error(attachments[way]) == (409, "scan_pending"), way
            assert len(project.db.tasks_for(blob_id)) == 1
        started = time.monotonic()
        project.start_worker("three-ways")
        rows = dict(zip(blob_ids, project.wait_settled(blob_ids.values()), strict=True))
        waited = time.monotonic() - started
    else:
        # The immediate backend ran the pipeline inside each upload's request: settled when it answered.
        rows = {way: project.db.blob(blob_id) for way, blob_id in blob_ids.items()}
        assert all(settled(row) for row in rows.values()), rows

    for way in ("api", "admin", "direct"):
        row = rows[way]
        assert (row["scan_state"], row["analysis_state"], row["scan_signature"]) == ("clean", "analyzed", ""), way
        assert row["scanned_by"] == "clamd" and row["scanned_at"] and row["analyzed_at"], way
        assert row["analysis_errors"] == {} and row["scan_attempts"] == 0, way
    assert (rows["api"]["metadata"]["image.width"], rows["api"]["metadata"]["image.height"]) == (64, 48)
    assert rows["api"]["metadata"]["image.format"] == "PNG"
    assert rows["admin"]["metadata"]["pdf.pages"] == 2
    assert (rows["direct"]["metadata"]["image.format"], rows["direct"]["metadata"]["image.width"]) == ("JPEG", 40)
    for way in ("api", "admin", "direct"):  # the upload's own keys stay beside the analyzers'
        assert "declared_content_type" in rows[way]["metadata"], way
        status, body = browser.download(attachments[way])
        assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(files[way][1]).digest(), way

    listed = {attachment["blob_id"]: attachment for attachment in browser.attachments("patient", patient)}
    for way, row in rows.items():
        attachment = listed[blob_ids[way]]
        assert (attachment["scan"], attachment["analysis"]) == (row["scan_state"], row["analysis_state"]), way
        # The analyzers' keys, and only those: the upload's own (declared_content_type) stay private.
        assert attachment["metadata"] == {key: value for key, value in row["metadata"].items() if "." in key}, way
    assert listed[blob_ids["eicar"]]["scan_signature"] == clamd_helpers.EICAR_FOUND  # shown to staff
    assert listed[blob_ids["eicar"]]["metadata"] == {}

    eicar = rows["eicar"]
    assert (eicar["scan_state"], eicar["scan_signature"]) == ("infected", clamd_helpers.EICAR_FOUND)
    assert eicar["analysis_state"] == "not_analyzed" and not any("." in key for key in eicar["metadata"])
    assert browser.download_error(attachments["eicar"]) == (409, "quarantined")
    # Never taken again either: the same bytes uploaded anew are refused, not linked.
    status, _, raw = browser.multipart(
        "/api/attachments/", {"owner_type": "patient", "owner_id": patient}, "again.com", [clamd_helpers.EICAR], 68
    )
    assert (status, json.loads(raw)["code"]) == (409, "quarantined")

    if backend == "database":
        for way, blob_id in blob_ids.items():
            (task,) = project.wait_tasks_done(blob_id)
            assert task["status"] == "SUCCESSFUL" and task["worker_ids"] == ["three-ways"], (way, task)
            assert task["return_value"]["scan"] == rows[way]["scan_state"]
            ran = (as_time(task["finished_at"]) - as_time(task["started_at"])).total_seconds()
            print(f"[{DATABASE}] worker ran {way} ({len(files[way][1])} bytes) in {ran * 1000:.0f} ms")
        print(f"[{DATABASE}] worker started and settled 4 blobs in {waited:.1f} s")

    # Announced once (the task has ended: its receivers ran), by the process that ran the scan: the server
    # itself on the immediate backend, the worker on the database backend.
    announced = [line for line in infected_lines(project) if line["blob"] == blob_ids["eicar"]]
    assert [line["signature"] for line in announced] == [clamd_helpers.EICAR_FOUND]
    assert (announced[0]["pid"] == project.server.pid) == (backend == "immediate")


# -- 2. a worker killed mid-scan ------------------------------------------------------------------

BIG = 200 * 1000 * 1000


def big_chunks(seed: int) -> list[bytes]:
    """200 MB as 200 references to one random megabyte: the test holds 1 MB, the server streams 200."""
    block = random.Random(seed).randbytes(1000 * 1000)
    return [block] * (BIG // len(block))


def finish_backlog(project: Project) -> list[dict]:
    """What ``manage.py process_attachments --pending`` does: ``processing.process`` for each unfinished blob.

    Through ``manage.py shell`` while the command is not in the package yet; its outcomes, one dict per blob.
    """
    script = (
        "import json; from django_attachments.services import processing\n"
        "for pk in list(processing.unfinished().values_list('pk', flat=True)):\n"
        "    print(json.dumps(processing.process(pk).as_dict()))\n"
    )
    done = project.manage("shell", "-c", script)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_a_worker_killed_mid_scan_leaves_its_blob_pending_and_the_backlog_run_finishes_it(project, clamd):
    browser = browser_for(project)
    alan = patient_id(project, "N-0002")
    chunks = big_chunks(2)
    started = time.monotonic()
    status, _, raw = browser.multipart(
        "/api/attachments/", {"owner_type": "patient", "owner_id": alan}, "big.bin", chunks, BIG
    )
    assert status == 201, raw[:500]
    uploaded = time.monotonic() - started
    attachment = json.loads(raw)
    blob_id = attachment["blob_id"]
    assert project.db.blob(blob_id)["scan_state"] == "pending"

    # clamd writes the stream it receives into a file of its TemporaryDirectory, and scans it once all came:
    # the worker is killed while that file grows, with part of the bytes sent.
    clamd_tmp = Path(clamd.log).parent / "tmp"

    def streamed() -> int:
        sizes = [path.stat().st_size for path in clamd_tmp.glob("clamav-*.tmp")]
        return max(sizes, default=0)

    victim = project.start_worker("victim")
    sent = wait_for(
        "the worker to stream the file to clamd",
        lambda: (size := streamed()) > 10 * 1000 * 1000 and size,
        interval=0.002,
    )
    victim.kill()
    victim.wait()
    project.workers.remove(victim)
    assert sent < BIG, sent
    assert [row["status"] for row in project.db.tasks_for(blob_id)] == ["RUNNING"]

    row = project.db.blob(blob_id)
    assert (row["scan_state"], row["scan_attempts"], row["scanned_at"]) == ("pending", 0, None), row
    assert browser.download_error(attachment) == (409, "scan_pending")

    # A new worker takes new tasks, but not the dead one's: its task stays RUNNING, the blob pending.
    project.start_worker("after-the-kill")
    small = browser.upload_api("patient", alan, "after.png", image_bytes(8, 8, "PNG", random.Random(3)))
    project.wait_settled([small["blob_id"]])
    assert project.db.blob(blob_id)["scan_state"] == "pending"
    assert [row["status"] for row in project.db.tasks_for(blob_id)] == ["RUNNING"]

    started = time.monotonic()
    outcomes = finish_backlog(project)
    backlog = time.monotonic() - started
    assert [(outcome["blob_id"], outcome["scan"], outcome["ran"]) for outcome in outcomes] == [
        (blob_id, "clean", ["scan"])
    ]
    row = project.db.blob(blob_id)
    assert (row["scan_state"], row["analysis_state"]) == ("clean", "not_analyzed")
    status, _, body = browser.request(
        "GET", attachment["download_url"].split(project.server.url, 1)[1], headers={"Range": "bytes=0-999"}
    )
    assert (status, body) == (206, chunks[0][:1000])
    print(
        f"[{DATABASE}] 200 MB: upload {uploaded:.1f} s; killed with {sent / 1e6:.0f} MB sent to clamd; "
        f"the backlog run (Django start + scan) {backlog:.1f} s"
    )


# -- 3. retries, deferred by the backend ------------------------------------------------------------


def test_a_scan_that_could_not_run_is_retried_deferred_until_it_succeeds(project, tmp_path_factory):
    # The worker's scanner points at a socket nothing listens on yet; clamd comes there after the first failure.
    sockdir = tmp_path_factory.mktemp("late-clamd")
    assert len(str(sockdir)) < 80  # else clamd_server would put its socket elsewhere
    socket_path = str(sockdir / "clamd.sock")
    browser = browser_for(project)
    alan = patient_id(project, "N-0002")
    attachment = browser.upload_api("patient", alan, "retried.png", image_bytes(20, 10, "PNG", random.Random(4)))
    blob_id = attachment["blob_id"]
    project.start_worker("retrying", env={"CLAMD_SOCKET": socket_path, "ATTACHMENTS_SCAN_RETRY_DELAY": "1"})

    failed = wait_for("the scan to fail", lambda: (row := project.db.blob(blob_id))["scan_state"] == "failed" and row)
    assert failed["scan_error_code"] == "scan_unavailable" and socket_path in failed["scan_error"]
    assert failed["scan_attempts"] >= 1 and failed["analysis_state"] == "pending"  # never parsed unscanned
    assert browser.download_error(attachment) == (409, "scan_pending")
    # The failed run enqueues the retry, then the worker records the run's result.
    first, retry = wait_for(
        "the first run's result and the retry's task",
        lambda: (rows := project.db.tasks_for(blob_id))[1:] and rows[0]["status"] != "RUNNING" and rows[:2],
    )
    assert first["status"] == "SUCCESSFUL"
    assert (first["return_value"]["scan"], first["return_value"]["retry_in"]) == ("failed", 1.0)
    deferred = (as_time(retry["run_after"]) - as_time(first["started_at"])).total_seconds()
    assert 1.0 <= deferred < 5, deferred  # SCAN_RETRY_DELAY after the failure, not at once

    with servers.clamd_server(sockdir, clamd_helpers.databases()) as late:
        assert late.socket == socket_path
        (row,) = project.wait_settled([blob_id], timeout=60)
        assert (row["scan_state"], row["analysis_state"]) == ("clean", "analyzed")
        assert (row["scan_attempts"], row["scan_error_code"], row["scan_error"]) == (0, "", "")
        assert row["metadata"]["image.width"] == 20
        tasks = project.wait_tasks_done(blob_id)
        assert len(tasks) >= 2 and {task["status"] for task in tasks} == {"SUCCESSFUL"}
        assert [task["return_value"]["scan"] for task in tasks][-1] == "clean"
        assert all(task["return_value"]["scan"] == "failed" for task in tasks[:-1])
        project.stop_workers()
    assert browser.download(attachment)[0] == 200
    print(f"[{DATABASE}] scanner repaired: clean after {len(tasks)} task runs, {len(tasks) - 1} of them failed")


# -- 4. workers and the backlog run racing ----------------------------------------------------------


def test_workers_and_a_backlog_run_racing_on_the_same_blobs_leave_each_as_one_run_would(project):
    before = {row["id"] for row in project.db.tasks()}
    for number in range(3):
        project.start_worker(f"racer-{number}")
    started = time.monotonic()
    driver = project.manage(
        "shell",
        "-c",
        "from tests.worker_driver import main; main()",
        env={"DRIVER_ROUNDS": str(RACE_ROUNDS), "DRIVER_EXTRA_TASKS": "2"},
    )
    assert driver.returncode == 0, driver.stderr[-3000:]
    driven = time.monotonic() - started
    lines = [json.loads(line) for line in driver.stdout.splitlines() if line.startswith("{")]
    rounds = [line for line in lines if "round" in line]
    assert len(rounds) == RACE_ROUNDS
    blobs = {blob_id: (line["round"], kind) for line in rounds for kind, blob_id in line["blobs"].items()}
    assert len(blobs) == 3 * RACE_ROUNDS

    def race_tasks() -> list[dict]:
        return [row for row in project.db.tasks() if row["id"] not in before]

    wait_for(
        "every task of the race to finish",
        lambda: all(row["status"] in ("SUCCESSFUL", "FAILED") for row in race_tasks()),
        timeout=120,
    )
    elapsed = time.monotonic() - started
    tasks = race_tasks()
    assert len(tasks) == 3 * len(blobs)  # one on commit and two more per blob
    failed = [row for row in tasks if row["status"] != "SUCCESSFUL"]
    assert not failed, failed[0]["traceback"][-3000:]

    announced: dict[str, int] = {}
    for line in infected_lines(project):
        announced[line["blob"]] = announced.get(line["blob"], 0) + 1
    for blob_id, (number, kind) in blobs.items():
        row = project.db.blob(blob_id)
        metadata = row["metadata"]
        assert metadata["record_ref"] == f"R-{number}-{kind}" and metadata["billing.code"] == f"D0210-{number}"
        assert "declared_content_type" in metadata
        if kind == "marked":
            assert (row["scan_state"], row["scan_signature"]) == ("infected", clamd_helpers.MARKER_FOUND), row
            assert row["analysis_state"] == "not_analyzed" and announced.get(blob_id) == 1, (row, announced)
        else:
            assert (row["scan_state"], row["analysis_state"]) == ("clean", "analyzed"), row
            assert announced.get(blob_id) is None
            assert ("image.width" if kind == "image" else "pdf.pages") in metadata, metadata
        assert row["analysis_errors"] == {} and row["scan_attempts"] == 0

    # How many times each blob was scanned, by any process: more than once means two processes read it
    # pending and scanned it at once (a run that finds a verdict scans nothing). Without such overlaps this
    # test would prove nothing about runs at once.
    driver_summary = lines[-1]
    scans = {blob_id: count for blob_id, count in driver_summary["scanned"].items() if blob_id in blobs}
    for row in tasks:
        if "scan" in row["return_value"]["ran"]:
            scans[row["return_value"]["blob_id"]] = scans.get(row["return_value"]["blob_id"], 0) + 1
    assert set(scans) == set(blobs) and all(count >= 1 for count in scans.values())
    overlapped = [blob_id for blob_id, count in scans.items() if count > 1]
    assert overlapped, "no blob was scanned by two processes at once: the race did not happen"
    infected_overlapped = [blob_id for blob_id in overlapped if blobs[blob_id][1] == "marked"]
    creating = sum(line["seconds"]["create"] for line in rounds)
    backlog = sum(line["seconds"]["backlog"] for line in rounds)
    print(
        f"[{DATABASE}] race: {RACE_ROUNDS} rounds, {len(blobs)} blobs, {len(tasks)} tasks on 3 workers beside "
        f"the backlog run, all done in {elapsed:.1f} s (the driver: {driven:.1f} s, of which creating the rounds "
        f"{creating:.1f} s and its backlog runs {backlog:.1f} s); {sum(scans.values())} scans in all, "
        f"{driver_summary['driver_ran']['scan']} by the backlog run; {len(overlapped)} blobs scanned by two "
        f"processes or more at once ({len(infected_overlapped)} of them infected, each announced once)"
    )


# -- 5. variants: eager ones by the pipeline, lazy ones by a worker --------------------------------


def variant_path(attachment: dict, name: str) -> str:
    return f"/api/attachments/{attachment['id']}/variants/{name}/"


def test_thumbnails_are_made_by_the_pipeline_and_previews_on_request_on_both_backends(pipeline):
    """The example project's eager ``thumb`` comes with the pipeline; its lazy ``preview`` on first request:
    at once on the immediate backend, by a worker (202 meanwhile) on the database backend."""
    from PIL import Image

    backend, project = pipeline
    browser = browser_for(project)
    patient = patient_id(project, "N-0001" if backend == "immediate" else "N-0002")
    rng = random.Random(f"variants-{backend}")
    noise = Image.frombytes("RGB", (640, 480), rng.randbytes(640 * 480 * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=90)
    files = {"photo": ("v-photo.jpg", out.getvalue()), "letter": ("v-letter.pdf", pdf_bytes(3, rng))}
    attachments = {kind: browser.upload_api("patient", patient, name, data) for kind, (name, data) in files.items()}
    blob_ids = [attachment["blob_id"] for attachment in attachments.values()]
    if backend == "database":
        for attachment in attachments.values():
            status, _, raw = browser.request("GET", variant_path(attachment, "thumb"))
            assert status in (202, 409), (status, raw[:200])  # a worker makes it (once the file is scanned)
        project.start_worker("variants")
    project.wait_settled(blob_ids)

    def thumbs_made():
        rows = project.db.rows(
            "SELECT blob_id, name, width, height FROM django_attachments_variant WHERE name = 'thumb'"
        )
        made = {str(row["blob_id"]).replace("-", ""): row for row in rows}
        return len([b for b in blob_ids if b.replace("-", "") in made]) == len(blob_ids) and made

    wait_for("the eager thumbnails", thumbs_made)
    listed = {attachment["id"]: attachment for attachment in browser.attachments("patient", patient)}
    for attachment in attachments.values():  # the JSON lists the thumbnail, made, and the preview, to make
        variants = listed[attachment["id"]]["variants"]
        assert variants["thumb"]["ready"] and variants["thumb"]["url"].endswith(variant_path(attachment, "thumb"))
        assert set(variants) == {"thumb", "preview"}
    for kind, attachment in attachments.items():
        status, headers, raw = browser.request("GET", variant_path(attachment, "thumb"))
        assert status == 200 and headers.get("content-type") == "image/webp", (kind, status)
        image = Image.open(io.BytesIO(raw))
        assert max(image.size) == 256 or kind == "letter", image.size

        path = variant_path(attachment, "preview")
        status, headers, raw = browser.request("GET", path)
        if backend == "database":
            assert status in (200, 202), status
            status, headers, raw = wait_for(
                "the preview", lambda path=path: (answer := browser.request("GET", path))[0] == 200 and answer
            )
        assert status == 200 and headers.get("content-type") == "image/jpeg", (kind, status)
        assert Image.open(io.BytesIO(raw)).format == "JPEG"
    if backend == "database":
        made = project.db.finished_tasks("django_attachments.tasks.make_variant")
        assert all(row["status"] == "SUCCESSFUL" for row in made), [(row["worker_ids"], row["status"]) for row in made]


def test_a_multipart_upload_is_verified_by_the_pipeline_on_both_backends(pipeline):
    """Its parts joined and read back inside the completing request on the immediate backend (201 at once);
    by a worker on the database backend, the client polling (202 with Retry-After) meanwhile."""
    from urllib.parse import urlsplit

    backend, project = pipeline
    browser = browser_for(project)
    patient = patient_id(project, "N-0001" if backend == "immediate" else "N-0002")
    part = 5 * 1024 * 1024
    data = b"%PDF-1.4\n" + random.Random(f"multipart-{backend}").randbytes(2 * part + 777)
    status, started = browser.json(
        "POST",
        "/api/attachments/uploads/",
        {"owner_type": "patient", "owner_id": patient, "filename": f"mp-{backend}.bin", "size": len(data)},
    )
    assert status == 201 and started["upload"]["multipart"]["part_count"] == 3, started
    ticket = started["upload"]
    pieces = [data[i : i + part] for i in range(0, len(data), part)]
    wanted = [{"number": n, "checksum": hashlib.sha256(p).hexdigest()} for n, p in enumerate(pieces, 1)]
    status, signed = browser.json("POST", urlsplit(ticket["multipart"]["parts_url"]).path, {"parts": wanted})
    assert status == 200, signed
    for target in signed["parts"]:
        url = urlsplit(target["url"])
        status, _, raw = browser.request(
            "PUT", f"{url.path}?{url.query}", body=pieces[target["number"] - 1], headers=target["headers"]
        )
        assert status == 204, raw[:300]
    complete_path = urlsplit(ticket["complete_url"]).path
    status, answer = browser.json("POST", complete_path, {})
    if backend == "immediate":
        assert status == 201, answer
    else:
        assert status == 202 and answer["upload"]["status"] == "verifying", answer
        project.start_worker("verify")
        status, answer = wait_for(
            "the verification", lambda: (reply := browser.json("POST", complete_path, {}))[0] == 200 and reply
        )
        ran = project.db.finished_tasks("django_attachments.tasks.verify_upload")
        assert all(row["status"] == "SUCCESSFUL" for row in ran), [row["status"] for row in ran]
    assert answer["attachment"]["checksum"] == hashlib.sha256(data).hexdigest(), answer
    assert answer["upload"]["status"] == "completed"
    project.wait_settled([answer["attachment"]["blob_id"]])  # then scanned and analyzed as any upload
