"""The processing pipeline: scan, quarantine, analyze -- on the Tasks framework's immediate backend, a real clamd.

Uploads go through the services (and the API), whose ``blob_created`` is sent
on commit: ``django_capture_on_commit_callbacks(execute=True)`` runs it, and
with it the task, as a committing request would. A real worker on the
database backend is tested in tests/test_worker.py.
"""

from __future__ import annotations

import io
import os
import threading

import pytest
from django.db import connection

from django_attachments import services
from django_attachments.exceptions import Quarantined, ScanFailed, ScanPending
from django_attachments.models import AnalysisState, Attachment, Blob, ScanState
from django_attachments.policy import check_servable
from django_attachments.processing.scanners import Scanner
from django_attachments.services import processing
from django_attachments.signals import blob_infected
from tests import clamd as clamd_helpers
from tests.apitools import LIST, download, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def clamd(tmp_path_factory):
    yield from clamd_helpers.running_clamd(tmp_path_factory, "clamd-processing")


@pytest.fixture
def scanner(settings, clamd):
    """The clamd scanner, over its unix socket."""
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": {
            "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
            "OPTIONS": {"socket": clamd.socket},
        },
    }
    return clamd


@pytest.fixture
def dead_scanner(settings, tmp_path):
    """A scanner whose daemon is not there (a socket path nothing listens on)."""
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": {
            "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
            "OPTIONS": {"socket": str(tmp_path / "no-clamd.sock"), "timeout": 1},
        },
    }


@pytest.fixture
def infected_signals():
    received = []

    def receiver(sender, blob, signature, **kwargs):
        received.append((blob.pk, signature))

    blob_infected.connect(receiver)
    yield received
    blob_infected.disconnect(receiver)


def image_bytes(width=64, height=48, fmt="PNG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


def pdf_bytes(pages=3, padding=0, page_content=0) -> bytes:
    """A valid PDF of pages; ``page_content`` bytes of content stream each (spreading the objects
    over the file, as real documents do), ``padding`` bytes of an embedded stream at the end."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, NameObject

    writer = PdfWriter()
    for number in range(pages):
        page = writer.add_blank_page(width=595, height=842)
        if page_content:
            content = DecodedStreamObject()
            text = f"BT /F1 10 Tf 72 790 Td (page {number}) Tj ET\n% ".encode()
            content.set_data(text + os.urandom(page_content // 2).hex().encode())
            page[NameObject("/Contents")] = writer._add_object(content)
    if padding:
        stream = DecodedStreamObject()
        stream.set_data(b"x" * padding)
        writer._root_object[NameObject("/Padding")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def attach(data: bytes, owners, capture, *, owner=None, filename="file.bin") -> Attachment:
    with capture(execute=True):
        return services.attach(
            io.BytesIO(data), owner_type="note", owner_id=(owner or owners.alice_note).pk, filename=filename
        )


# -- without a scanner: analyzed, not scanned, served --------------------------------------------


def test_an_image_is_analyzed_after_its_upload_commits(owners, disk_store, django_capture_on_commit_callbacks):
    attachment = attach(image_bytes(64, 48), owners, django_capture_on_commit_callbacks)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert (blob.scan_state, blob.analysis_state) == (ScanState.NOT_SCANNED, AnalysisState.ANALYZED)
    assert (blob.metadata["image.width"], blob.metadata["image.height"]) == (64, 48)
    assert blob.metadata["image.format"] == "PNG"
    # The keys the upload recorded stay beside the analyzers'.
    assert "declared_content_type" in blob.metadata
    assert blob.analysis_errors == {} and blob.analyzed_at is not None


def test_a_new_blob_starts_pending_and_a_committed_transaction_is_needed(owners, disk_store, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": "tests.test_processing.NeverScanner"}
    # Inside the test's transaction: nothing commits, so nothing is enqueued; the states say what is due.
    attachment = services.attach(io.BytesIO(pdf_bytes()), owner_type="note", owner_id=owners.alice_note.pk)
    blob = attachment.blob
    assert (blob.scan_state, blob.analysis_state) == (ScanState.PENDING, AnalysisState.PENDING)
    assert list(processing.unfinished()) == [blob]


def test_a_type_no_analyzer_reads_is_not_analyzed(owners, disk_store, django_capture_on_commit_callbacks):
    attachment = attach(b"plain text, nothing to analyze\n" * 10, owners, django_capture_on_commit_callbacks)
    assert attachment.blob.analysis_state == AnalysisState.NOT_ANALYZED
    assert Blob.objects.get(pk=attachment.blob_id).analysis_state == AnalysisState.NOT_ANALYZED


def test_a_corrupt_pdf_is_an_analyzer_error_not_a_failed_upload(owners, disk_store, django_capture_on_commit_callbacks):
    broken = b"%PDF-1.7\n" + b"\x00garbage that is no PDF body" * 200
    attachment = attach(broken, owners, django_capture_on_commit_callbacks, filename="broken.pdf")
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert blob.content_type == "application/pdf"
    assert blob.analysis_state == AnalysisState.FAILED
    assert blob.analysis_errors["pdf"]["code"] == "analysis_failed" and blob.analysis_errors["pdf"]["detail"]
    assert not any(key.startswith("pdf.") for key in blob.metadata)
    with services.open_blob(blob) as stream:  # the file is kept, and served: it is only unreadable to us
        assert b"".join(stream.chunks()) == broken


def test_a_decompression_bomb_is_refused_not_decoded(owners, disk_store, django_capture_on_commit_callbacks, settings):
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "ANALYZERS": [
            {"BACKEND": "django_attachments.processing.analyzers.ImageAnalyzer", "OPTIONS": {"max_pixels": 1000}}
        ],
    }
    attachment = attach(image_bytes(100, 100), owners, django_capture_on_commit_callbacks)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert blob.analysis_state == AnalysisState.FAILED
    assert "pixels" in blob.analysis_errors["image"]["detail"]


def test_a_rerun_replaces_only_its_own_keys(owners, disk_store, django_capture_on_commit_callbacks):
    attachment = attach(pdf_bytes(pages=4), owners, django_capture_on_commit_callbacks)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert blob.metadata["pdf.pages"] == 4
    # Someone else's keys, and a stale one of the PDF analyzer's own, written meanwhile.
    Blob.objects.filter(pk=blob.pk).update(metadata={**blob.metadata, "other.key": 1, "pdf.stale": True})
    outcome = processing.process(blob.pk, force=True)
    blob.refresh_from_db()
    assert outcome.ran == ["analyze"]
    assert blob.metadata["other.key"] == 1 and "pdf.stale" not in blob.metadata and blob.metadata["pdf.pages"] == 4


def test_nothing_left_to_do_reads_nothing(owners, disk_store, django_capture_on_commit_callbacks, monkeypatch):
    attachment = attach(pdf_bytes(), owners, django_capture_on_commit_callbacks)
    opened = []
    monkeypatch.setattr(type(disk_store), "open", lambda *a, **k: opened.append(a) or pytest.fail("read"))
    outcome = processing.process(attachment.blob_id)
    assert outcome.ran == [] and opened == []


def test_a_purged_blob_is_nothing_to_do(db):
    outcome = processing.process("00000000-0000-0000-0000-000000000000")
    assert outcome.found is False and outcome.ran == []


def test_an_analysis_reads_a_fraction_of_a_large_pdf(owners, store, django_capture_on_commit_callbacks, monkeypatch):
    """Ranged reads, not a copy of the file: a 300-page PDF of ~29 MB is analyzed from its ends.

    pypdf's lenient mode reads the header of every object (most of such a file, by ranges); the
    analyzer reads a sound file in strict mode first."""
    from django_attachments.stores import SeekableReader

    readers = []
    real_buffered = SeekableReader.buffered

    def counting(*args, **kwargs):
        stream = real_buffered(*args, **kwargs)
        readers.append(stream.raw)
        return stream

    monkeypatch.setattr(SeekableReader, "buffered", staticmethod(counting))
    # 300 pages of 30 KB each (about 9 MB over ~600 objects), and 20 MB that a parser that seeks never needs.
    data = pdf_bytes(pages=300, padding=20 * 1024 * 1024, page_content=30_000)
    attachment = attach(data, owners, django_capture_on_commit_callbacks, filename="big.pdf")
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert blob.metadata.get("pdf.pages") == 300, blob.analysis_errors
    fetched = sum(reader.fetched for reader in readers)
    assert 0 < fetched < len(data) / 10, (fetched, len(data))


# -- with a scanner ------------------------------------------------------------------------------


def test_a_clean_file_is_scanned_then_analyzed_and_served(
    owners, store, scanner, staff, django_capture_on_commit_callbacks
):
    data = pdf_bytes(pages=2)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff["a"], "note", owners.alice_note.pk, data, filename="clean.pdf")
    assert response.status_code == 201, response.content
    blob = Blob.objects.get(pk=response.json()["blob_id"])
    assert (blob.scan_state, blob.analysis_state) == (ScanState.CLEAN, AnalysisState.ANALYZED)
    assert blob.scanned_by == "clamd" and blob.scanned_at is not None and blob.scan_signature == ""
    assert blob.metadata["pdf.pages"] == 2
    got = staff["a"].get(download(response.json()["id"]))
    assert got.status_code == 200 and b"".join(got.streaming_content) == data


def test_eicar_is_quarantined_and_never_served(
    owners, store, scanner, staff, infected_signals, django_capture_on_commit_callbacks, settings
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff["a"], "note", owners.alice_note.pk, clamd_helpers.EICAR, filename="eicar.com")
    assert response.status_code == 201  # stored, then found: the upload itself is not the scan
    blob = Blob.objects.get(pk=response.json()["blob_id"])
    assert blob.scan_state == ScanState.INFECTED and blob.scan_signature == clamd_helpers.EICAR_FOUND
    assert blob.analysis_state == AnalysisState.NOT_ANALYZED  # never parsed
    assert infected_signals == [(blob.pk, clamd_helpers.EICAR_FOUND)]
    for mode in ("proxy", "redirect"):
        settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "DOWNLOAD_MODE": mode}
        got = staff["a"].get(download(response.json()["id"]))
        assert (got.status_code, got.json()["code"]) == (409, "quarantined")
        assert clamd_helpers.EICAR_SIGNATURE not in got.content.decode()  # the signature is for staff
    # Not even with pending scans served.
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SERVE_PENDING_SCANS": True}
    assert staff["a"].get(download(response.json()["id"])).status_code == 409
    # Never deduplicated against, never linked: the same bytes again are refused.
    again = upload(staff["a"], "note", owners.alice_note2.pk, clamd_helpers.EICAR, filename="again.com")
    assert (again.status_code, again.json()["code"]) == (409, "quarantined")
    with pytest.raises(Quarantined):
        services.link(blob, owner_type="patient", owner_id=owners.alice.pk)
    linked = staff["a"].post(
        LIST, {"blob_id": str(blob.pk), "owner_type": "patient", "owner_id": str(owners.alice.pk)}, format="json"
    )
    assert (linked.status_code, linked.json()["code"]) == (409, "quarantined")
    # Its link stays (for the project to act on), and a second scan announces nothing new.
    assert Attachment.objects.filter(blob=blob).count() == 1
    processing.process(blob.pk, force=True)
    assert len(infected_signals) == 1


def test_a_marker_deep_in_a_large_file_is_found(owners, store, scanner, django_capture_on_commit_callbacks):
    data = b"\x00" * (5 * 1024 * 1024 + 17) + clamd_helpers.MARKER + b"\x00" * 1024
    attachment = attach(data, owners, django_capture_on_commit_callbacks)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert (blob.scan_state, blob.scan_signature) == (ScanState.INFECTED, clamd_helpers.MARKER_FOUND)


def test_a_dead_scanner_is_a_failed_scan_retried_never_clean(
    owners, disk_store, dead_scanner, staff, django_capture_on_commit_callbacks, settings, clamd
):
    data = pdf_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff["a"], "note", owners.alice_note.pk, data)
    assert response.status_code == 201
    blob = Blob.objects.get(pk=response.json()["blob_id"])
    assert (blob.scan_state, blob.scan_attempts, blob.scan_error_code) == (ScanState.FAILED, 1, "scan_unavailable")
    assert blob.analysis_state == AnalysisState.PENDING  # not parsed before the scanner passed it
    got = staff["a"].get(download(response.json()["id"]))
    assert (got.status_code, got.json()["code"]) == (409, "scan_pending")
    with pytest.raises(ScanPending):
        check_servable(blob)
    # Linking a blob whose scan is pending is allowed: it is scanned once, for every link.
    services.link(blob, owner_type="patient", owner_id=owners.alice.pk)
    # A second failure counts; the retry delay doubles.
    outcome = processing.process(blob.pk)
    assert outcome.retry_in == 120  # SCAN_RETRY_DELAY (a minute), doubled
    # Served while pending when the project says so.
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SERVE_PENDING_SCANS": True}
    assert staff["a"].get(download(response.json()["id"])).status_code == 200
    # The daemon is back: the next run finishes the blob.
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": {
            "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
            "OPTIONS": {"socket": clamd.socket},
        },
    }
    outcome = processing.process(blob.pk)
    blob.refresh_from_db()
    assert outcome.ran == ["scan", "analyze"] and outcome.retry_in is None
    assert (blob.scan_state, blob.scan_attempts, blob.scan_error) == (ScanState.CLEAN, 0, "")
    assert blob.analysis_state == AnalysisState.ANALYZED


def test_the_retries_end(owners, disk_store, dead_scanner, settings, django_capture_on_commit_callbacks):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCAN_MAX_ATTEMPTS": 2}
    attachment = attach(pdf_bytes(), owners, django_capture_on_commit_callbacks)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert blob.scan_attempts == 1
    outcome = processing.process(blob.pk)
    assert outcome.retry_in is None and outcome.scan == ScanState.FAILED
    blob.refresh_from_db()
    with pytest.raises(ScanFailed):
        check_servable(blob)


def test_a_file_over_the_scanners_limit_is_failed_for_good(owners, disk_store, settings, tmp_path_factory):
    clamd_helpers.skip_without_clamd()
    from tests import servers

    with servers.clamd_server(
        tmp_path_factory.mktemp("small-clamd"), clamd_helpers.databases(), stream_max_length="1M"
    ) as small:
        settings.DJANGO_ATTACHMENTS = {
            **settings.DJANGO_ATTACHMENTS,
            "SCANNER": {
                "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
                "OPTIONS": {"socket": small.socket},
            },
        }
        attachment = services.attach(
            io.BytesIO(b"\x01" * (2 * 1024 * 1024)), owner_type="note", owner_id=owners.alice_note.pk
        )
        outcome = processing.process(attachment.blob_id)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert (blob.scan_state, blob.scan_error_code) == (ScanState.FAILED, "scan_too_large")
    assert outcome.retry_in is None
    with pytest.raises(ScanFailed):  # not "try again shortly": nothing retries it by itself
        check_servable(blob)


def test_a_blob_stored_before_the_scanner_came_is_scanned_by_the_backlog_run(
    owners, disk_store, settings, clamd, django_capture_on_commit_callbacks
):
    attachment = attach(clamd_helpers.EICAR, owners, django_capture_on_commit_callbacks)
    assert Blob.objects.get(pk=attachment.blob_id).scan_state == ScanState.NOT_SCANNED
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": {
            "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
            "OPTIONS": {"socket": clamd.socket},
        },
    }
    processing.process(attachment.blob_id, stages=["scan"])
    assert Blob.objects.get(pk=attachment.blob_id).scan_state == ScanState.INFECTED


def test_a_backlog_run_with_the_scanner_down_keeps_serving_what_it_served(owners, disk_store, settings, tmp_path):
    attachment = services.attach(io.BytesIO(pdf_bytes()), owner_type="note", owner_id=owners.alice_note.pk)
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": {
            "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
            "OPTIONS": {"socket": str(tmp_path / "x.sock")},
        },
    }
    processing.process(attachment.blob_id)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert blob.scan_state == ScanState.NOT_SCANNED and blob.scan_error_code == "scan_unavailable"


# -- concurrency: many runs of one blob at once --------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not os.environ.get("DJANGO_ATTACHMENTS_TEST_PG"),
    reason="threads need a server database (run under tests.pgcluster); SQLite: tests/test_worker.py's processes",
)
def test_concurrent_runs_announce_an_infection_once_and_lose_no_keys(owners, disk_store, scanner, infected_signals):
    for _ in range(10):
        infected = services.attach(
            io.BytesIO(clamd_helpers.EICAR + b""), owner_type="note", owner_id=owners.alice_note.pk, name=""
        )
        Blob.objects.filter(pk=infected.blob_id).update(scan_state=ScanState.PENDING)
        clean = services.attach(io.BytesIO(pdf_bytes(pages=5)), owner_type="note", owner_id=owners.adam_note.pk)
        Blob.objects.filter(pk=clean.blob_id).update(
            scan_state=ScanState.PENDING, analysis_state=AnalysisState.PENDING, metadata={"mine": 1}
        )
        infected_signals.clear()  # the uploads' own runs (committed, immediate backend); now the race
        errors: list[Exception] = []

        def run(pk, force, errors=errors):
            try:
                processing.process(pk, force=force)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=run, args=(pk, i % 2 == 1))
            for i in range(6)
            for pk in (infected.blob_id, clean.blob_id)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        got = Blob.objects.get(pk=infected.blob_id)
        assert got.scan_state == ScanState.INFECTED
        assert [pk for pk, _ in infected_signals] == [infected.blob_id]
        infected_signals.clear()
        got = Blob.objects.get(pk=clean.blob_id)
        assert (got.scan_state, got.analysis_state) == (ScanState.CLEAN, AnalysisState.ANALYZED)
        assert got.metadata["mine"] == 1 and got.metadata["pdf.pages"] == 5
        Attachment.objects.all().delete()
        Blob.objects.all().delete()


class NeverScanner(Scanner):
    """Stands for a configured scanner in tests that never reach the scan."""

    name = "never"

    def scan(self, stream):  # pragma: no cover - the tests using it never commit
        raise AssertionError("not scanned in this test")


def test_a_blob_purged_while_it_is_processed_is_nothing_to_do(owners, disk_store, scanner, monkeypatch):
    """The row and the bytes go between the task's read of the row and its read of the bytes."""
    attachment = services.attach(io.BytesIO(pdf_bytes()), owner_type="note", owner_id=owners.alice_note.pk)
    blob = attachment.blob
    real_open = type(disk_store).open

    def purge_then_open(store, identifiers, **kwargs):
        Attachment.objects.filter(blob=blob).delete()
        Blob.objects.filter(pk=blob.pk).delete()
        store.delete(identifiers)
        return real_open(store, identifiers, **kwargs)

    monkeypatch.setattr(type(disk_store), "open", purge_then_open)
    outcome = processing.process(blob.pk)
    assert (outcome.found, outcome.retry_in) == (False, None)


def test_a_backend_that_refuses_the_task_fails_no_upload(
    owners, disk_store, settings, caplog, django_capture_on_commit_callbacks
):
    """The upload has committed when the task is enqueued: a refusal is logged, and the blob waits for the command."""
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
        "files": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["elsewhere"]},
    }
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "TASK_BACKEND": "files"}
    attachment = attach(pdf_bytes(), owners, django_capture_on_commit_callbacks)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert blob.analysis_state == AnalysisState.PENDING and list(processing.unfinished()) == [blob]
    assert "Could not enqueue the processing of blob" in caplog.text
    # The queue it takes: the same upload's blob is processed by the next run.
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "TASK_QUEUE": "elsewhere"}
    from django_attachments import tasks

    result = tasks.enqueue(blob.pk)
    assert result.status == "SUCCESSFUL" and result.return_value["analysis"] == AnalysisState.ANALYZED


def test_blobs_stored_before_an_analyzer_came_are_analyzed_by_the_next_run(owners, disk_store, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": []}
    attachment = services.attach(io.BytesIO(pdf_bytes(pages=6)), owner_type="note", owner_id=owners.alice_note.pk)
    assert attachment.blob.analysis_state == AnalysisState.NOT_ANALYZED
    assert processing.process(attachment.blob_id).ran == []  # still none configured: nothing, and no write
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": None}
    outcome = processing.process(attachment.blob_id)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert outcome.ran == ["analyze"] and blob.metadata["pdf.pages"] == 6
    assert processing.process(attachment.blob_id).ran == []  # analyzed: done


def test_a_forced_rescan_that_fails_keeps_the_verdict_and_notes_nothing(
    owners, disk_store, scanner, settings, tmp_path
):
    attachment = services.attach(io.BytesIO(pdf_bytes()), owner_type="note", owner_id=owners.alice_note.pk)
    processing.process(attachment.blob_id)
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": {
            "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
            "OPTIONS": {"socket": str(tmp_path / "gone.sock")},
        },
    }
    outcome = processing.process(attachment.blob_id, stages=["scan"], force=True)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert (blob.scan_state, blob.scan_error_code, outcome.retry_in) == (ScanState.CLEAN, "", None)


def test_due_is_the_unfinished_and_the_backlog(owners, disk_store, settings, clamd):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": []}
    old_pdf = services.attach(io.BytesIO(pdf_bytes()), owner_type="note", owner_id=owners.alice_note.pk).blob
    text = services.attach(io.BytesIO(b"text " * 100), owner_type="note", owner_id=owners.alice_note.pk).blob
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": None}
    assert set(processing.due(backlog=True)) == {old_pdf}  # a PDF analyzer came; nothing reads text
    assert set(processing.due()) == set()  # nothing pending: the backlog is only asked for
    assert set(processing.due(["scan"], backlog=True)) == set()  # no scanner: nothing to scan
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": {
            "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
            "OPTIONS": {"socket": clamd.socket},
        },
    }
    assert set(processing.due(["scan"], backlog=True)) == {old_pdf, text}  # the scanner's backlog
    for blob in (old_pdf, text):
        processing.process(blob.pk)
    assert list(processing.due(backlog=True)) == []


def test_a_forced_rescan_of_an_infected_blob_records_its_verdict_and_announces_nothing(
    owners, disk_store, scanner, infected_signals, django_capture_on_commit_callbacks
):
    attachment = services.attach(io.BytesIO(clamd_helpers.EICAR), owner_type="note", owner_id=owners.alice_note.pk)
    with django_capture_on_commit_callbacks(execute=True):
        processing.process(attachment.blob_id)
    Blob.objects.filter(pk=attachment.blob_id).update(scan_signature="Old.Name", scanned_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        processing.process(attachment.blob_id, stages=["scan"], force=True)
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert (blob.scan_state, blob.scan_signature) == (ScanState.INFECTED, clamd_helpers.EICAR_FOUND)
    assert blob.scanned_at is not None and len(infected_signals) == 1
