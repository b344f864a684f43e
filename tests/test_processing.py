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
from django.core.files.storage import InMemoryStorage
from django.db import connection
from django.test import override_settings

from django_attachments import services
from django_attachments.exceptions import Quarantined, ScanFailed, ScanPending
from django_attachments.models import AnalysisState, Attachment, Blob, ScanState
from django_attachments.policy import check_servable
from django_attachments.processing.analyzers import Analyzer
from django_attachments.processing.scanners import Scanner
from django_attachments.services import processing
from django_attachments.signals import blob_infected
from tests import clamd as clamd_helpers
from tests.apitools import LIST, download, upload

pytestmark = pytest.mark.django_db


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


# -- found by review: each failed before its fix ---------------------------------------------------


@pytest.mark.parametrize(
    "tasks",
    [
        {"files": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}},
        {
            "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["high"]},
            "files": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
        },
    ],
    ids=["no-default-alias", "default-without-the-default-queue"],
)
def test_a_project_whose_pipeline_has_a_backend_of_its_own_starts_and_checks_clean(tmp_path, tasks):
    """The admin is autodiscovered at start-up: importing it must not need the task module's backend."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "own_backend_settings.py").write_text(
        textwrap.dedent(
            f"""
            from tests.settings import *  # noqa
            TASKS = {tasks!r}
            DJANGO_ATTACHMENTS = {{"TASK_BACKEND": "files"}}
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}",
        "DJANGO_SETTINGS_MODULE": "own_backend_settings",
    }
    script = (
        "import django; django.setup(); from django.contrib import admin; admin.autodiscover(); "
        "from django_attachments.checks import check_tasks; assert check_tasks() == [], check_tasks(); "
        "from django_attachments import tasks; print(tasks.process_blob.backend)"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0 and done.stdout.strip() == "files", done.stderr[-2000:]


def handmade_pdf(header=b"%PDF-1.3"):
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [ 3 0 R ] >>",
        b"<< /Type /Page /Parent 2 0 R /Resources << >> /MediaBox [ 0 0 595 842 ] >>",
    ]
    out = bytearray(header + b"\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_a_pdf_whose_version_holds_a_nul_is_analyzed_not_pending_forever(owners, disk_store):
    """PostgreSQL's JSON refuses a NUL: the merge failed for good, and the blob stayed pending."""
    blob = services.attach(
        io.BytesIO(handmade_pdf(b"%PDF-1\x00\x01")), owner_type="note", owner_id=owners.alice_note.pk
    ).blob
    assert blob.content_type == "application/pdf"
    processing.process(blob.pk)
    blob.refresh_from_db()
    assert blob.analysis_state == AnalysisState.ANALYZED and blob.metadata["pdf.version"] is None
    assert blob.metadata["pdf.pages"] == 1


class UnrulyAnalyzer(Analyzer):
    name = "unruly"
    content_types = frozenset({"text/plain"})

    def analyze(self, stream):
        return {"unruly.text": "a\x00b", "unruly.nan": float("nan"), "unruly.list": [1], "other.key": 1, "unruly.n": 3}


def test_an_analyzers_values_are_stored_as_the_database_can_always_take_them(owners, disk_store, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": ["tests.test_processing.UnrulyAnalyzer"]}
    blob = services.attach(io.BytesIO(b"some text\n" * 20), owner_type="note", owner_id=owners.alice_note.pk).blob
    processing.process(blob.pk)
    blob.refresh_from_db()
    assert blob.analysis_state == AnalysisState.ANALYZED
    assert {k: v for k, v in blob.metadata.items() if "." in k} == {
        "unruly.text": "ab",
        "unruly.nan": None,
        "unruly.list": None,
        "unruly.n": 3,
    }


class RacingAnalyzer(Analyzer):
    """While it reads, another worker's scan finds the file infected."""

    name = "racing"
    content_types = frozenset({"text/plain"})
    socket = ""
    blob_id = None

    def analyze(self, stream):
        stream.read(16)
        with override_settings(
            DJANGO_ATTACHMENTS={
                "ANALYZERS": ["tests.test_processing.RacingAnalyzer"],
                "SCANNER": {
                    "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
                    "OPTIONS": {"socket": RacingAnalyzer.socket},
                },
            }
        ):
            processing.process(RacingAnalyzer.blob_id, stages=["scan"])
        return {"racing.first_line": "X5O!P%@AP"}


def test_an_analysis_finishing_after_the_infected_verdict_records_nothing(owners, disk_store, clamd, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": ["tests.test_processing.RacingAnalyzer"]}
    RacingAnalyzer.socket = clamd.socket
    blob = services.attach(io.BytesIO(clamd_helpers.EICAR), owner_type="note", owner_id=owners.alice_note.pk).blob
    RacingAnalyzer.blob_id = blob.pk
    processing.process(blob.pk)
    blob.refresh_from_db()
    assert (blob.scan_state, blob.analysis_state) == (ScanState.INFECTED, AnalysisState.NOT_ANALYZED)
    assert "racing.first_line" not in blob.metadata


def test_a_run_without_the_scanner_does_not_release_a_blob_waiting_for_it(
    owners, disk_store, staff, dead_scanner, settings, django_capture_on_commit_callbacks
):
    """A worker missing its SCANNER setting must not make pending or failed blobs servable."""
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff["a"], "note", owners.alice_note.pk, clamd_helpers.EICAR, filename="eicar.com")
    scanner_setting = settings.DJANGO_ATTACHMENTS["SCANNER"]
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": None}
    processing.process(response.json()["blob_id"])
    assert Blob.objects.get(pk=response.json()["blob_id"]).scan_state == ScanState.FAILED
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": scanner_setting}
    got = staff["a"].get(download(response.json()["id"]))
    assert (got.status_code, got.json()["code"]) == (409, "scan_pending")


def test_many_failed_attempts_wait_at_most_a_day(owners, disk_store, dead_scanner, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCAN_MAX_ATTEMPTS": 100}
    blob = services.attach(io.BytesIO(pdf_bytes()), owner_type="note", owner_id=owners.alice_note.pk).blob
    Blob.objects.filter(pk=blob.pk).update(scan_state=ScanState.FAILED, scan_attempts=41)
    outcome = processing.process(blob.pk)
    assert outcome.scan == ScanState.FAILED and outcome.retry_in == 24 * 3600


class _CutFile(io.RawIOBase):
    """A file whose reads fail with EIO half-way, as a failing disk's do."""

    def __init__(self, data, limit):
        self._data, self._limit, self._pos = data, limit, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        if self._pos >= self._limit:
            raise OSError(5, "Input/output error")
        n = min(len(buffer), self._limit - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class MidReadFailingStorage(InMemoryStorage):
    cut_reads = False

    def open(self, name, mode="rb"):
        handle = super().open(name, mode)
        if not MidReadFailingStorage.cut_reads:
            return handle
        data = handle.read()
        return io.BufferedReader(_CutFile(data, len(data) // 2))


def test_a_storage_failing_mid_scan_is_a_failed_scan_retried(owners, scanner, settings):
    settings.STORAGES = {**settings.STORAGES, "cut": {"BACKEND": "tests.test_processing.MidReadFailingStorage"}}
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORAGE": "cut"}
    blob = services.attach(io.BytesIO(pdf_bytes(pages=40)), owner_type="note", owner_id=owners.alice_note.pk).blob
    MidReadFailingStorage.cut_reads = True
    try:
        outcome = processing.process(blob.pk)
    finally:
        MidReadFailingStorage.cut_reads = False
    blob.refresh_from_db()
    assert (blob.scan_state, blob.scan_attempts, blob.scan_error_code) == (ScanState.FAILED, 1, "storage_unavailable")
    assert outcome.retry_in is not None


def test_the_backlog_leaves_out_what_no_runnable_analyzer_reads(owners, disk_store, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": []}
    blob = services.attach(io.BytesIO(pdf_bytes()), owner_type="note", owner_id=owners.alice_note.pk).blob
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "ANALYZERS": [
            "django_attachments.processing.analyzers.PdfAnalyzer",
            {
                "BACKEND": "django_attachments.processing.analyzers.MediaAnalyzer",
                "OPTIONS": {"ffprobe": "/nonexistent/ffprobe"},
            },
        ],
    }
    Blob.objects.filter(pk=blob.pk).update(content_type="video/mp4")
    assert list(processing.due(backlog=True)) == []
    assert processing.process(blob.pk).ran == []


def test_completing_the_bytes_of_a_hidden_infected_file_names_no_file(owners, staff, disk_store, scanner):
    """The caller may not see the owner of the infected blob its bytes meet: its name must not leak."""
    from django_attachments.registry import OwnerSpec, attachment_registry
    from tests.test_known_bytes import put_and_complete, start
    from tests.testapp.models import Note
    from tests.testapp.owners import resolve_note

    secret = Note.objects.create(patient=owners.alice, text="secret")
    hidden = services.attach(
        io.BytesIO(clamd_helpers.EICAR), owner_type="note", owner_id=secret.pk, filename="hiv-result-alice.com"
    )
    processing.process(hidden.blob_id)
    spec = OwnerSpec(
        "note",
        resolve_note,
        allowed_names={"", "xray"},
        can_view=lambda request, owner: owner.instance.text != "secret",
    )
    with attachment_registry.override(spec):
        ticket = start(staff["a"], owners.alice_note.pk, clamd_helpers.EICAR).json()["upload"]
        done = put_and_complete(staff["a"], ticket, clamd_helpers.EICAR)
        assert (done.status_code, done.json()["code"]) == (409, "quarantined")
        assert "hiv-result-alice" not in done.content.decode()
        assert "hiv-result-alice" not in str(staff["a"].get(f"/api/attachments/uploads/{ticket['id']}/").json())


def test_the_panel_refusing_quarantined_bytes_logs_no_server_error(owners, disk_store, scanner, admin_client, caplog):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    first = services.attach(io.BytesIO(clamd_helpers.EICAR), owner_type="note", owner_id=owners.alice_note.pk)
    processing.process(first.blob_id)
    caplog.clear()
    response = admin_client.post(
        reverse("admin:testapp_note_attachments_upload", args=[owners.alice_note2.pk]),
        {"file": SimpleUploadedFile("again.com", clamd_helpers.EICAR), "name": "", "description": ""},
        follow=True,
    )
    assert any("quarantined" in str(message) for message in response.context["messages"])
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
