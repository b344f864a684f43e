"""manage.py process_attachments: the pipeline over stored blobs, with a real clamd and real files.

The backlog of a scanner installed after the files came, what a dead scanner
left, forced re-runs, the selections, the JSON summary, the task backend, the
exit statuses, the progress bar on a real terminal (a pty), Ctrl-C (a real
SIGINT) and two runs at once on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from django_attachments import services
from django_attachments.models import AnalysisState, Attachment, Blob, ScanState
from django_attachments.processing.scanners import ClamdScanner
from django_attachments.signals import blob_infected
from tests import clamd as clamd_helpers
from tests.test_processing import image_bytes, pdf_bytes

pytestmark = pytest.mark.django_db

CLAMD = "django_attachments.processing.scanners.ClamdScanner"


@pytest.fixture(scope="session")
def clamd(tmp_path_factory):
    yield from clamd_helpers.running_clamd(tmp_path_factory, "clamd-process-command")


def use_scanner(settings, socket, backend=CLAMD, **options):
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": {"BACKEND": backend, "OPTIONS": {"socket": socket, **options}},
    }


@pytest.fixture
def scanner(settings, clamd):
    use_scanner(settings, clamd.socket)
    return clamd


@pytest.fixture
def dead_scanner(settings, tmp_path):
    """A scanner configured, its daemon not there (a socket path nothing listens on)."""
    use_scanner(settings, str(tmp_path / "no-clamd.sock"), timeout=1)


@pytest.fixture
def infected_signals():
    received = []
    lock = threading.Lock()

    def receiver(sender, blob, signature, **kwargs):
        with lock:
            received.append((str(blob.pk), signature))

    blob_infected.connect(receiver)
    yield received
    blob_infected.disconnect(receiver)


@dataclass
class Run:
    status: int
    out: str
    err: str
    #: The CommandError's message ("" on success).
    message: str = ""

    @property
    def json(self):
        lines = self.out.splitlines()
        assert len(lines) == 1, self.out  # one object on one line, nothing else
        return json.loads(lines[0])


def run(*args, stderr=None) -> Run:
    out, err = StringIO(), stderr if stderr is not None else StringIO()
    try:
        call_command("process_attachments", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return Run(exc.returncode, out.getvalue(), err.getvalue() if stderr is None else "", str(exc))
    return Run(0, out.getvalue(), err.getvalue() if stderr is None else "")


def store(data: bytes, owners, capture=None, *, owner=None, filename="file.bin") -> Blob:
    """Store ``data``; with ``capture``, the upload commits and its pipeline runs, else the blob stays as stored."""
    owner_id = (owner or owners.alice_note).pk
    if capture is None:
        attachment = services.attach(io.BytesIO(data), owner_type="note", owner_id=owner_id, filename=filename)
    else:
        with capture(execute=True):
            attachment = services.attach(io.BytesIO(data), owner_type="note", owner_id=owner_id, filename=filename)
    return Blob.objects.get(pk=attachment.blob_id)


def states(*blobs):
    return [tuple(Blob.objects.filter(pk=b.pk).values_list("scan_state", "analysis_state").get()) for b in blobs]


def infected_file(i: int) -> bytes:
    """A distinct file holding the marker signature (found anywhere in a stream)."""
    return f"file {i}: ".encode() + clamd_helpers.MARKER + b"\x00" * (100 + i)


# -- the backlog of a scanner installed later ----------------------------------------------------


def test_the_backlog_of_a_scanner_installed_later(
    owners, store_alias, settings, clamd, infected_signals, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    eicar = store(clamd_helpers.EICAR, owners, capture, filename="eicar.com")
    pdf = store(pdf_bytes(pages=2), owners, capture, filename="report.pdf")
    image = store(image_bytes(), owners, capture, owner=owners.adam_note, filename="photo.png")
    # No scanner when they came: not scanned, the analyzers ran.
    assert states(eicar, pdf, image) == [
        (ScanState.NOT_SCANNED, AnalysisState.NOT_ANALYZED),
        (ScanState.NOT_SCANNED, AnalysisState.ANALYZED),
        (ScanState.NOT_SCANNED, AnalysisState.ANALYZED),
    ]
    use_scanner(settings, clamd.socket)
    # What is due does not include the backlog: a cron job does not start scanning every old file.
    nothing = run()
    assert nothing.status == 0
    assert nothing.out.startswith("processed 0 blob(s) inline (pending; scan, analyze, variants)")

    with capture(execute=True):  # committed, as the command's run commits: blob_infected is sent
        done = run("--scan")
    assert done.status == 0, done.message
    assert states(eicar, pdf, image) == [
        (ScanState.INFECTED, AnalysisState.NOT_ANALYZED),
        (ScanState.CLEAN, AnalysisState.ANALYZED),
        (ScanState.CLEAN, AnalysisState.ANALYZED),
    ]
    assert Blob.objects.get(pk=eicar.pk).scan_signature == clamd_helpers.EICAR_FOUND
    assert infected_signals == [(str(eicar.pk), clamd_helpers.EICAR_FOUND)]
    assert done.out.splitlines() == [
        "processed 3 blob(s) inline (pending; scan): scan: 2 clean, 1 infected, 0 failed; 0 gone, 0 with nothing to do",
        f"  infected: {eicar.pk} ({clamd_helpers.EICAR_FOUND})",
    ]
    assert done.err == ""  # not a terminal: no progress bar
    # The backlog is done: a second run finds nothing, and announces nothing again.
    with capture(execute=True):
        again = run("--scan", "--json")
    assert again.json["counts"]["blobs"] == 0 and len(infected_signals) == 1


def test_a_dead_scanner_on_the_backlog_records_failed_for_each_and_exits_1(owners, disk_store, settings):
    blobs = [store(data, owners) for data in (pdf_bytes(), clamd_helpers.EICAR)]
    use_scanner(settings, "/nonexistent/clamd.sock", timeout=1)
    result = run("--scan", "--json")
    assert result.status == 1 and "2 scan(s) could not run (scan_unavailable)" in result.message
    summary = result.json
    assert summary["counts"]["failed"] == 2 and summary["counts"]["clean"] == 0 and summary["ok"] is False
    assert sorted(item["id"] for item in summary["failed"]) == sorted(str(b.pk) for b in blobs)
    assert {item["code"] for item in summary["failed"]} == {"scan_unavailable"}
    for blob in Blob.objects.filter(pk__in=[b.pk for b in blobs]):
        # Never clean: not scanned still, the error noted (served as before the scanner came).
        assert (blob.scan_state, blob.scan_error_code) == (ScanState.NOT_SCANNED, "scan_unavailable")


def test_the_backlog_of_an_analyzer_configured_later(owners, disk_store, settings, django_capture_on_commit_callbacks):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": []}
    pdf = store(pdf_bytes(pages=4), owners, django_capture_on_commit_callbacks)
    text = store(b"nothing reads text\n" * 10, owners, django_capture_on_commit_callbacks, owner=owners.adam_note)
    assert states(pdf, text) == [(ScanState.NOT_SCANNED, AnalysisState.NOT_ANALYZED)] * 2
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": None}  # the built-ins
    assert run("--json").json["counts"]["blobs"] == 0  # a cron run does not start on the backlog
    done = run("--analyze", "--json").json
    assert done["counts"] == {**done["counts"], "blobs": 1, "analyzed": 1}  # the text file is not read
    assert Blob.objects.get(pk=pdf.pk).metadata["pdf.pages"] == 4
    assert run("--analyze", "--json").json["counts"]["blobs"] == 0


# -- what a dead scanner left ----------------------------------------------------------------------


def test_pending_after_a_dead_scanner(owners, disk_store, dead_scanner, settings, clamd):
    pending = [store(pdf_bytes(pages=i + 1), owners) for i in range(2)]  # not committed: nothing ran
    done_already = store(b"a text file, stored before\n", owners, owner=owners.adam_note)
    Blob.objects.filter(pk=done_already.pk).update(scan_state=ScanState.CLEAN)
    assert states(*pending) == [(ScanState.PENDING, AnalysisState.PENDING)] * 2

    down = run()
    assert down.status == 1
    assert down.out.startswith(
        "processed 2 blob(s) inline (pending; scan, analyze, variants): scan: 0 clean, 0 infected, 2 failed; "
        "analysis: 0 analyzed, 0 failed"
    )
    assert f"  scan failed: {pending[0].pk} (scan_unavailable, 1 attempt(s); still failed)" in down.err.splitlines()
    assert "could not run (scan_unavailable); those blobs are not clean" in down.message
    assert states(*pending) == [(ScanState.FAILED, AnalysisState.PENDING)] * 2  # never parsed unscanned

    # Down still: tried once per run (not forever in one run), attempts counted.
    assert run("--json").json["failed"][0]["attempts"] == 2

    use_scanner(settings, clamd.socket)
    back = run("-v", "2")
    assert back.status == 0, back.message
    assert back.out.splitlines() == [
        *(f"{blob.pk}: clean, analyzed" for blob in sorted(pending, key=lambda b: b.pk)),
        "processed 2 blob(s) inline (pending; scan, analyze, variants): scan: 2 clean, 0 infected, 0 failed; "
        "analysis: 2 analyzed, 0 failed; 0 gone, 0 with nothing to do",
    ]
    assert states(*pending) == [(ScanState.CLEAN, AnalysisState.ANALYZED)] * 2
    assert Blob.objects.get(pk=pending[0].pk).scan_attempts == 0
    assert run().out.startswith("processed 0 blob(s)")


def test_a_forced_rescan_that_cannot_run_keeps_the_verdict_and_exits_1(
    owners, disk_store, scanner, settings, django_capture_on_commit_callbacks
):
    blob = store(pdf_bytes(), owners, django_capture_on_commit_callbacks)
    infected = store(infected_file(3), owners, django_capture_on_commit_callbacks, owner=owners.adam_note)
    assert states(blob, infected) == [
        (ScanState.CLEAN, AnalysisState.ANALYZED),
        (ScanState.INFECTED, AnalysisState.NOT_ANALYZED),
    ]
    # Confirmed while the scanner answers: a verdict of this run, not a failure.
    confirmed = run("--blob", str(infected.pk), "--scan", "--json")
    assert confirmed.status == 0 and confirmed.json["infected"][0]["id"] == str(infected.pk)
    use_scanner(settings, "/nonexistent/clamd.sock", timeout=1)
    result = run("--all", "--scan", "--json")
    assert result.status == 1
    assert sorted(result.json["failed"], key=lambda item: item["state"]) == [
        {"id": str(blob.pk), "code": "scan_unavailable", "attempts": 0, "state": "clean"},
        {"id": str(infected.pk), "code": "scan_unavailable", "attempts": 0, "state": "infected"},
    ]
    assert result.json["counts"]["clean"] == result.json["counts"]["infected"] == 0
    assert states(blob, infected) == [
        (ScanState.CLEAN, AnalysisState.ANALYZED),
        (ScanState.INFECTED, AnalysisState.NOT_ANALYZED),
    ]


# -- forcing, choosing blobs ---------------------------------------------------------------------


def test_all_forces_every_stage_again(
    owners, disk_store, scanner, infected_signals, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    pdf = store(pdf_bytes(pages=3), owners, capture)
    png = store(image_bytes(20, 10), owners, capture, owner=owners.adam_note)
    # Judged clean by older signatures (stored, then marked so): a re-scan with today's finds it.
    old_eicar = store(clamd_helpers.EICAR, owners, owner=owners.alice_note2)
    Blob.objects.filter(pk=old_eicar.pk).update(scan_state=ScanState.CLEAN)
    Blob.objects.filter(pk=pdf.pk).update(metadata={"pdf.pages": 99, "mine": 1})  # an older analyzer's value
    scanned_at = Blob.objects.get(pk=pdf.pk).scanned_at
    assert run("--json").json["counts"]["blobs"] == 0  # nothing due

    analyzed = run("--all", "--analyze", "--json").json
    assert analyzed["counts"] == {**analyzed["counts"], "blobs": 3, "analyzed": 2, "nothing_to_do": 1, "clean": 0}
    assert analyzed["forced"] is True and analyzed["selection"] == "all" and analyzed["stages"] == ["analyze"]
    got = Blob.objects.get(pk=pdf.pk)
    assert (got.metadata["pdf.pages"], got.metadata["mine"]) == (3, 1)
    assert got.scanned_at == scanned_at  # the analyzers only

    with capture(execute=True):
        rescanned = run("--all", "--scan")
    assert rescanned.status == 0
    assert "scan: 2 clean, 1 infected, 0 failed" in rescanned.out
    assert Blob.objects.get(pk=pdf.pk).scanned_at > scanned_at
    assert states(old_eicar) == [(ScanState.INFECTED, AnalysisState.NOT_ANALYZED)]
    assert infected_signals == [(str(old_eicar.pk), clamd_helpers.EICAR_FOUND)]
    # Both stages, forced, again: the infected blob stays so, is announced no more, is never parsed.
    with capture(execute=True):
        both = run("--all", "--json").json
    assert both["counts"] == {**both["counts"], "blobs": 3, "clean": 2, "infected": 1, "analyzed": 2}
    assert len(infected_signals) == 1
    assert states(png) == [(ScanState.CLEAN, AnalysisState.ANALYZED)]


def test_blob_runs_the_blobs_named_forced(owners, disk_store, scanner, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    first = store(pdf_bytes(pages=1), owners, capture)
    second = store(pdf_bytes(pages=2), owners, capture, owner=owners.adam_note)
    stamps = dict(Blob.objects.values_list("pk", "scanned_at"))
    result = run("--blob", str(first.pk).upper(), "--blob", str(first.pk), "--json")
    assert result.status == 0
    assert result.json["counts"]["blobs"] == 1 and result.json["selection"] == "blobs"
    assert Blob.objects.get(pk=first.pk).scanned_at > stamps[first.pk]
    assert Blob.objects.get(pk=second.pk).scanned_at == stamps[second.pk]


def test_an_unknown_blob_id_is_an_error_before_anything_runs(owners, disk_store, scanner):
    pending = store(pdf_bytes(), owners)
    missing = "00000000-0000-0000-0000-000000000000"
    result = run("--blob", str(pending.pk), "--blob", missing)
    assert (result.status, result.message) == (2, f"No blob with id {missing}.")
    assert states(pending) == [(ScanState.PENDING, AnalysisState.PENDING)]


def test_a_malformed_blob_id_exits_2_on_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "django", "process_attachments", "--blob", "not-an-id", "--settings", "tests.settings"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "argument --blob: 'not-an-id' is not a blob id (a UUID)" in done.stderr


def test_limit_batches_and_resuming_with_after(owners, disk_store, scanner):
    blobs = sorted((store(pdf_bytes(pages=i + 1), owners) for i in range(5)), key=lambda b: b.pk)
    first = run("--limit", "2", "--batch-size", "1", "--json").json
    assert first["counts"]["blobs"] == 2 and first["last_blob"] == str(blobs[1].pk)
    assert (
        states(*blobs)
        == [(ScanState.CLEAN, AnalysisState.ANALYZED)] * 2 + [(ScanState.PENDING, AnalysisState.PENDING)] * 3
    )
    rest = run("--batch-size", "2", "--json").json
    assert rest["counts"]["blobs"] == 3 and rest["counts"]["analyzed"] == 3
    # A forced run resumes past the last blob an earlier one handled.
    resumed = run("--all", "--analyze", "--after", first["last_blob"], "--json").json
    assert resumed["counts"]["blobs"] == 3 and resumed["last_blob"] == str(blobs[-1].pk)


# -- the summary and the exit statuses -----------------------------------------------------------


def test_json_is_one_object_and_nothing_else(owners, disk_store, scanner, infected_signals):
    clean = store(pdf_bytes(), owners)
    infected = store(infected_file(1), owners, owner=owners.adam_note)
    broken_pdf = b"%PDF-1.7\n" + b"\x00garbage that is no PDF body" * 200
    broken = store(broken_pdf, owners, owner=owners.alice_note2, filename="broken.pdf")
    result = run("--json", "-v", "2")
    assert result.status == 0, result.message
    assert result.json == {
        "mode": "inline",
        "selection": "pending",
        "stages": ["scan", "analyze", "variants"],
        "forced": False,
        "counts": {
            "blobs": 3,
            "clean": 2,
            "infected": 1,
            "failed": 0,
            "analyzed": 1,
            "analysis_failed": 1,
            "made": 0,
            "existed": 0,
            "refused": 0,
            "busy": 0,
            "gone": 0,
            "nothing_to_do": 0,
            "errors": 0,
            "enqueued": 0,
            "not_enqueued": 0,
        },
        "infected": [{"id": str(infected.pk), "signature": clamd_helpers.MARKER_FOUND}],
        "failed": [],
        "analysis_failed": [{"id": str(broken.pk), "analyzers": {"pdf": "analysis_failed"}}],
        "refused": [],
        "uploads": [],
        "variants": [],
        "errors": [],
        "not_enqueued": [],
        "last_blob": str(max(clean.pk, infected.pk, broken.pk)),
        "interrupted": False,
        "ok": True,
    }
    assert result.err == ""


def test_a_storage_error_is_reported_and_leaves_the_blob_due(owners, disk_store):
    blob = store(pdf_bytes(), owners)  # no scanner: analysis pending
    assert states(blob) == [(ScanState.NOT_SCANNED, AnalysisState.PENDING)]
    disk_store.storage.delete(blob.storage_identifiers["name"])  # the bytes lost
    result = run("--json")
    assert result.status == 1 and "1 blob(s) failed with an error" in result.message
    assert [item["id"] for item in result.json["errors"]] == [str(blob.pk)]
    assert states(blob) == [(ScanState.NOT_SCANNED, AnalysisState.PENDING)]


@pytest.mark.django_db(transaction=True)  # committed as the command's run commits: blob_infected is sent at once
def test_a_blob_purged_during_the_run_is_gone(owners, disk_store, settings, clamd):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": None}
    blobs = [
        store(infected_file(i), owners, owner=note) for i, note in enumerate([owners.alice_note, owners.adam_note])
    ]
    use_scanner(settings, clamd.socket)
    purged = []

    def purge_the_other(sender, blob, signature, **kwargs):  # a purge that runs meanwhile
        if not purged:
            other = next(b for b in blobs if b.pk != blob.pk)
            Attachment.objects.filter(blob=other).delete()
            Blob.objects.filter(pk=other.pk).delete()
            purged.append(str(other.pk))

    blob_infected.connect(purge_the_other)
    try:
        result = run("--scan", "--json")
    finally:
        blob_infected.disconnect(purge_the_other)
    assert result.status == 0, result.message
    assert result.json["counts"] == {**result.json["counts"], "blobs": 2, "infected": 1, "gone": 1}
    assert [item["id"] for item in result.json["infected"]] != purged


def test_scanner_settings_wrong_or_missing(owners, disk_store, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": {"BACKEND": "no.such.Scanner"}}
    wrong = run()
    assert wrong.status == 2 and "DJANGO_ATTACHMENTS['SCANNER'] could not import 'no.such.Scanner'" in wrong.message
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": None}
    missing = run("--scan")
    assert missing.status == 2 and "no scanner is configured" in missing.message


# -- the task backend ----------------------------------------------------------------------------


def test_enqueue_on_the_immediate_backend(owners, disk_store, scanner):
    blobs = [store(pdf_bytes(pages=i + 1), owners) for i in range(3)]
    result = run("--enqueue")
    assert result.status == 0, result.message
    assert result.out == (
        "enqueued 3 blob(s) on task backend 'default', queue 'default' (pending; scan, analyze, variants), "
        "for the workers\n"
    )
    assert states(*blobs) == [(ScanState.CLEAN, AnalysisState.ANALYZED)] * 3


def test_enqueue_hands_ids_stages_and_force_to_the_workers(owners, disk_store, scanner, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    try:
        from django.tasks import task_backends  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from django_tasks import task_backends  # type: ignore[no-redef,unused-ignore]
    blobs = sorted((store(pdf_bytes(pages=i + 1), owners) for i in range(2)), key=lambda b: b.pk)
    summary = run("--enqueue", "--json").json
    assert (summary["mode"], summary["backend"], summary["queue"]) == ("enqueue", "default", "default")
    assert summary["counts"]["enqueued"] == 2
    assert states(*blobs) == [(ScanState.PENDING, AnalysisState.PENDING)] * 2  # for the workers, not here
    backend = task_backends["default"]
    assert [result.args for result in backend.results] == [[str(b.pk), None, False] for b in blobs]
    backend.clear()
    run("--enqueue", "--all", "--analyze")
    assert [result.args for result in backend.results] == [[str(b.pk), ["analyze"], True] for b in blobs]


def test_enqueue_on_a_backend_that_does_not_exist(owners, disk_store, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "TASK_BACKEND": "workers"}
    pending = store(pdf_bytes(), owners)
    result = run("--enqueue")
    assert result.status == 2 and "--enqueue: the task backend 'workers'" in result.message
    assert states(pending) == [(ScanState.NOT_SCANNED, AnalysisState.PENDING)]


# -- on a terminal, Ctrl-C -----------------------------------------------------------------------


def read_all(fd) -> bytes:
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_progress_bar_on_a_terminal_only(owners, disk_store, scanner):
    for i in range(3):
        store(pdf_bytes(pages=i + 1), owners)
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=True) as terminal:
            done = run(stderr=terminal)
            terminal.flush()
        drawn = read_all(master).decode()
    finally:
        os.close(master)
    assert done.status == 0
    assert drawn.startswith("\r[........")  # drawn before the first blob, which may take a while
    assert " 0/3 blobs" in drawn and " 3/3 blobs  3 clean, 0 infected, 0 failed" in drawn and "[####" in drawn
    assert "\x1b[31m" not in drawn  # not painted as an error
    assert drawn.endswith("\r\x1b[K")  # wiped before the summary
    assert "processed 3 blob(s)" in done.out and "\r" not in done.out
    # Not a terminal, or --json: nothing on stderr.
    for i in range(2):
        store(pdf_bytes(pages=i + 10), owners)
    assert run().err == ""


class InterruptingScanner(ClamdScanner):
    """clamd, and ``interrupts`` Ctrl-Cs (real SIGINTs to this process) as the run's first scan starts."""

    interrupts = 1

    def scan(self, stream):
        while InterruptingScanner.interrupts:
            InterruptingScanner.interrupts -= 1
            signal.raise_signal(signal.SIGINT)
        return super().scan(stream)


def test_ctrl_c_stops_after_the_current_blob(owners, disk_store, settings, clamd):
    use_scanner(settings, clamd.socket, backend="tests.test_process_command.InterruptingScanner")
    InterruptingScanner.interrupts = 1
    blobs = sorted((store(pdf_bytes(pages=i + 1), owners) for i in range(3)), key=lambda b: b.pk)
    handler = signal.getsignal(signal.SIGINT)
    stopped = run()
    assert signal.getsignal(signal.SIGINT) is handler  # put back
    assert stopped.status == 130
    assert stopped.out.startswith("[interrupted] processed 1 blob(s) inline")
    assert "stopping after the current blob" in stopped.err
    assert f"--after {blobs[0].pk} resumes" in stopped.message
    # The blob in hand was finished, not cut off; the others wait for the next run, which finishes them.
    assert (
        states(*blobs) == [(ScanState.CLEAN, AnalysisState.ANALYZED)] + [(ScanState.PENDING, AnalysisState.PENDING)] * 2
    )
    finished = run()
    assert finished.status == 0 and "processed 2 blob(s)" in finished.out
    assert states(*blobs) == [(ScanState.CLEAN, AnalysisState.ANALYZED)] * 3


def test_a_second_ctrl_c_stops_at_once_and_leaves_the_blob_due(owners, disk_store, settings, clamd):
    use_scanner(settings, clamd.socket, backend="tests.test_process_command.InterruptingScanner")
    InterruptingScanner.interrupts = 2  # both before the first blob's bytes reach clamd
    blob = store(pdf_bytes(), owners)
    handler = signal.getsignal(signal.SIGINT)
    stopped = run("--json")
    assert signal.getsignal(signal.SIGINT) is handler
    assert stopped.status == 130 and stopped.err == ""
    assert stopped.json["interrupted"] is True and stopped.json["counts"]["blobs"] == 0
    assert stopped.json["last_blob"] is None  # so --after skips nothing
    assert states(blob) == [(ScanState.PENDING, AnalysisState.PENDING)]
    assert run().status == 0
    assert states(blob) == [(ScanState.CLEAN, AnalysisState.ANALYZED)]


# -- two runs at once ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not os.environ.get("DJANGO_ATTACHMENTS_TEST_PG"),
    reason="threads need a server database (run under tests.pgcluster)",
)
def test_two_runs_at_once_end_as_one_and_announce_each_infection_once(
    owners, disk_store, settings, clamd, infected_signals
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": None}
    infected = [store(infected_file(i), owners) for i in range(6)]
    clean = [store(pdf_bytes(pages=i + 1), owners, owner=owners.adam_note) for i in range(6)]
    # The backlog of a scanner installed later, and analyses a dead worker left.
    Blob.objects.filter(pk__in=[b.pk for b in clean]).update(analysis_state=AnalysisState.PENDING, metadata={"mine": 1})
    use_scanner(settings, clamd.socket)
    summaries, errors = [], []

    def one_run():
        try:
            summaries.append(run("--scan", "--analyze", "--json", "--batch-size", "4"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [s.status for s in summaries] == [0, 0], [(s.message, s.out) for s in summaries]
    for blob in Blob.objects.filter(pk__in=[b.pk for b in infected]):
        assert (blob.scan_state, blob.scan_signature) == (ScanState.INFECTED, clamd_helpers.MARKER_FOUND)
        assert blob.analysis_state == AnalysisState.NOT_ANALYZED
    for blob in Blob.objects.filter(pk__in=[b.pk for b in clean]):
        assert (blob.scan_state, blob.analysis_state) == (ScanState.CLEAN, AnalysisState.ANALYZED)
        assert blob.metadata["mine"] == 1 and blob.metadata["pdf.pages"] >= 1
    assert sorted(pk for pk, _ in infected_signals) == sorted(str(b.pk) for b in infected)
    # Each infected blob is reported by the run that scanned it (one run or both), none as clean or failed.
    reported = [summary.json for summary in summaries]
    assert {item["id"] for report in reported for item in report["infected"]} == {str(b.pk) for b in infected}
    assert all(report["failed"] == [] and report["errors"] == [] for report in reported)
    assert sum(report["counts"]["clean"] for report in reported) <= 2 * len(clean)
    # And a third run finds nothing left.
    assert run("--scan", "--analyze", "--json").json["counts"]["blobs"] == 0


def test_a_second_ctrl_c_stops_at_once_even_where_sigint_was_ignored(owners, disk_store, settings, clamd):
    """A run started in the background by a non-interactive shell inherits SIGINT ignored (CI's)."""
    use_scanner(settings, clamd.socket, backend="tests.test_process_command.InterruptingScanner")
    InterruptingScanner.interrupts = 2
    blob = store(pdf_bytes(), owners)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stopped = run("--json")
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # put back as it was
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stopped.status == 130 and stopped.json["counts"]["blobs"] == 0
    assert states(blob) == [(ScanState.PENDING, AnalysisState.PENDING)]
