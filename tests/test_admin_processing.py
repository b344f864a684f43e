"""The admin's side of the processing pipeline: scan and analysis columns, filters, the blob's page,
the "Process again" action, and the panel's download links -- under tenancy.

Files are scanned by a real clamd (tests/clamd.py) and analyzed by the real analyzers, on the Tasks
framework's immediate backend: uploads run the pipeline when their transaction commits
(``django_capture_on_commit_callbacks(execute=True)``), and the action runs it before it answers.
"""

from __future__ import annotations

import io
import uuid

import django
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from django_attachments import services
from django_attachments.exceptions import Quarantined, ScanFailed, ScanPending
from django_attachments.models import AnalysisState, Attachment, Blob, ScanState
from tests import clamd as clamd_helpers
from tests.test_processing import pdf_bytes

pytestmark = pytest.mark.django_db

BLOBS = reverse("admin:django_attachments_blob_changelist")
ATTACHMENTS = reverse("admin:django_attachments_attachment_changelist")
BROKEN_PDF = b"%PDF-1.7\n" + b"\x00garbage that is no PDF body" * 200


def blob_page(blob) -> str:
    return reverse("admin:django_attachments_blob_change", args=[getattr(blob, "pk", blob)])


def blob_download(blob) -> str:
    return reverse("admin:django_attachments_blob_download", args=[blob.pk])


def note_page(note) -> str:
    return reverse("admin:testapp_note_change", args=[note.pk])


def filenames(response) -> set[str]:
    assert response.status_code == 200, response
    return {getattr(row, "filename", None) or row.blob.filename for row in response.context["cl"].result_list}


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def scanner_settings(socket: str, **options) -> dict:
    return {"BACKEND": "django_attachments.processing.scanners.ClamdScanner", "OPTIONS": {"socket": socket, **options}}


@pytest.fixture(scope="session")
def clamd(tmp_path_factory):
    yield from clamd_helpers.running_clamd(tmp_path_factory, "clamd-admin")


@pytest.fixture
def scanner(settings, clamd):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": scanner_settings(clamd.socket)}
    return clamd


@pytest.fixture
def files(owners, disk_store, scanner, settings, tmp_path, django_capture_on_commit_callbacks):
    """Clinic A: infected, clean (analyzed), clean (analysis failed), scan failed, scan pending; clinic B:
    infected and clean. Each through the services, its state from the real pipeline."""

    def attach(data, owner, filename, *, run=True):
        stream = io.BytesIO(data)
        if not run:  # the test's transaction never commits: the pipeline never runs, the blob stays pending
            return services.attach(stream, owner_type="note", owner_id=owner.pk, filename=filename)
        with django_capture_on_commit_callbacks(execute=True):
            return services.attach(stream, owner_type="note", owner_id=owner.pk, filename=filename)

    class Files:
        eicar = attach(clamd_helpers.EICAR, owners.alice_note, "eicar.com")
        clean = attach(pdf_bytes(pages=2), owners.alice_note, "clean.pdf")
        broken = attach(BROKEN_PDF, owners.alice_note2, "broken.pdf")
        pending = attach(pdf_bytes(pages=5), owners.alice_note2, "pending.pdf", run=False)
        bob_marker = attach(b"\x00" * 4096 + clamd_helpers.MARKER, owners.bob_note, "bob-marker.bin")
        bob_clean = attach(pdf_bytes(pages=1), owners.bob_note, "bob.pdf")

    # A scan that could not run: the daemon is not there.
    with_clamd = settings.DJANGO_ATTACHMENTS
    settings.DJANGO_ATTACHMENTS = {
        **with_clamd,
        "SCANNER": scanner_settings(str(tmp_path / "no-clamd.sock"), timeout=1),
    }
    Files.unscanned = attach(pdf_bytes(pages=3), owners.alice_note2, "unscanned.pdf")
    settings.DJANGO_ATTACHMENTS = with_clamd

    blob = {name: Blob.objects.get(pk=getattr(Files, name).blob_id) for name in vars(Files) if not name.startswith("_")}
    # The states the pipeline left, which the admin shows.
    assert blob["eicar"].scan_state == ScanState.INFECTED and blob["bob_marker"].scan_state == ScanState.INFECTED
    assert (blob["clean"].scan_state, blob["clean"].analysis_state) == (ScanState.CLEAN, AnalysisState.ANALYZED)
    assert blob["broken"].analysis_state == AnalysisState.FAILED
    assert (blob["pending"].scan_state, blob["pending"].analysis_state) == (ScanState.PENDING, AnalysisState.PENDING)
    assert (blob["unscanned"].scan_state, blob["unscanned"].scan_attempts) == (ScanState.FAILED, 1)
    Files.blob = blob
    return Files


def staff_client(username, clinic, *perms):
    from tests.testapp.models import Staff

    user = get_user_model().objects.create_user(username, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    Staff.objects.create(user=user, clinic=clinic)
    client = Client()
    client.force_login(user)
    return client


VIEW = ("view_blob", "view_attachment", "view_note")
PROCESS = (*VIEW, "change_blob")

# -- the lists: columns and filters -----------------------------------------------------------------

SCAN_FILTER = {
    "infected": {"eicar.com", "bob-marker.bin"},
    "clean": {"clean.pdf", "broken.pdf", "bob.pdf"},
    "pending": {"pending.pdf"},
    "failed": {"unscanned.pdf"},
    "not_scanned": set(),
    "no-such-state": set(),
}
ANALYSIS_FILTER = {
    "analyzed": {"clean.pdf", "bob.pdf"},
    "failed": {"broken.pdf"},
    "pending": {"pending.pdf", "unscanned.pdf"},  # never parsed before the scanner passed it
    "not_analyzed": {"eicar.com", "bob-marker.bin"},  # an infected file is never parsed
}
EVERY_FILE = set().union(*SCAN_FILTER.values())


def test_the_blob_list_filters_on_the_scan_and_the_analysis(admin_client, files):
    assert filenames(admin_client.get(BLOBS)) == EVERY_FILE
    for state, expected in SCAN_FILTER.items():
        assert filenames(admin_client.get(BLOBS, {"scan": state})) == expected, state
    for state, expected in ANALYSIS_FILTER.items():
        assert filenames(admin_client.get(BLOBS, {"analysis": state})) == expected, state
    both = admin_client.get(BLOBS, {"scan": "clean", "analysis": "failed"})
    assert filenames(both) == {"broken.pdf"}
    # The filters are in the sidebar, every state offered.
    html = admin_client.get(BLOBS).content.decode()
    for state in ("infected", "clean", "pending", "failed", "not_scanned", "analyzed", "not_analyzed"):
        assert f"?scan={state}" in html or f"?analysis={state}" in html, state


def test_the_blob_list_shows_each_state_and_offers_only_servable_downloads(admin_client, files):
    html = admin_client.get(BLOBS).content.decode()
    # Infected stands out, with what was found.
    assert html.count("attachments-scan-infected") == 2
    assert clamd_helpers.EICAR_FOUND in html and clamd_helpers.MARKER_FOUND in html
    assert "attachments-scan-pending" in html and "attachments-scan-failed" in html
    assert "attachments-analysis-failed" in html
    # A download link for the clean files only: infected ones are quarantined, unscanned ones await their scan.
    for name in ("clean", "broken", "bob_clean"):
        assert blob_download(files.blob[name]) in html, name
    for name in ("eicar", "bob_marker", "pending", "unscanned"):
        assert blob_download(files.blob[name]) not in html, name
    # A dash instead, saying why in its tooltip.
    assert html.count(f'title="{Quarantined.public_detail}"') == 2
    assert html.count(f'title="{ScanPending.public_detail}"') == 2
    # ... which is what the download view answers.
    for name, status in (("eicar", 409), ("pending", 409), ("unscanned", 409), ("clean", 200)):
        assert admin_client.get(blob_download(files.blob[name])).status_code == status, name


def test_pending_scans_are_offered_where_they_are_served(admin_client, files, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SERVE_PENDING_SCANS": True}
    html = admin_client.get(BLOBS).content.decode()
    assert blob_download(files.blob["pending"]) in html and blob_download(files.blob["unscanned"]) in html
    assert blob_download(files.blob["eicar"]) not in html  # infected: never
    assert admin_client.get(blob_download(files.blob["pending"])).status_code == 200


def test_a_scan_failed_for_good_says_so_and_process_again_retries_it(admin_client, owners, files, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCAN_MAX_ATTEMPTS": 1}  # out of retries
    blob = files.blob["unscanned"]
    assert ScanFailed.public_detail in admin_client.get(blob_page(blob)).content.decode()
    assert f'title="{ScanFailed.public_detail}"' in admin_client.get(BLOBS).content.decode()
    panel = admin_client.get(note_page(owners.alice_note2)).content.decode()
    assert '<span class="attachment-unavailable">unscanned.pdf</span>' in panel
    assert (
        f'title="{ScanFailed.public_detail}" style="color: var(--body-quiet-color, #666);">scan failed</span>' in panel
    )
    assert admin_client.get(blob_download(blob)).status_code == 409
    # The scanner is back (it always was, for the session's clamd): staff process it again.
    response = act(admin_client, BLOBS, "process_again", [blob.pk])
    assert messages_of(response) == ["Processed 1 blob(s) again."]
    blob.refresh_from_db()
    assert (blob.scan_state, blob.analysis_state, blob.metadata["pdf.pages"]) == ("clean", "analyzed", 3)
    assert admin_client.get(blob_download(blob)).status_code == 200


def test_the_attachment_list_filters_and_shows_through_the_blob(admin_client, files):
    for state, expected in SCAN_FILTER.items():
        assert filenames(admin_client.get(ATTACHMENTS, {"scan": state})) == expected, state
    for state, expected in ANALYSIS_FILTER.items():
        assert filenames(admin_client.get(ATTACHMENTS, {"analysis": state})) == expected, state
    html = admin_client.get(ATTACHMENTS).content.decode()
    assert html.count("attachments-scan-infected") == 2 and clamd_helpers.EICAR_FOUND in html
    assert blob_download(files.blob["clean"]) in html and blob_download(files.blob["eicar"]) not in html
    assert "eicar.com" in html  # named, not linked
    # The attachment's own page says where its blob stands.
    page = admin_client.get(reverse("admin:django_attachments_attachment_change", args=[files.eicar.pk]))
    assert page.status_code == 200 and "attachments-scan-infected" in page.content.decode()


# -- the blob's page ------------------------------------------------------------------------------


def test_an_infected_blobs_page_shows_the_verdict_and_no_download(admin_client, files):
    blob = files.blob["eicar"]
    response = admin_client.get(blob_page(blob))
    assert response.status_code == 200
    html = response.content.decode()
    assert "attachments-scan-infected" in html and clamd_helpers.EICAR_FOUND in html
    assert "clamd" in html  # scanned by
    assert blob_download(blob) not in html and "quarantined" in html
    assert "Malware scan" in html and "Analysis" in html


def test_a_failed_scans_page_shows_the_error_for_staff(admin_client, files):
    blob = files.blob["unscanned"]
    html = admin_client.get(blob_page(blob)).content.decode()
    assert "attachments-scan-failed" in html and "scan_unavailable" in html
    assert blob.scan_error and blob.scan_error in html  # the scanner's own words: for staff
    assert 'class="readonly">1</div>' in html  # one attempt
    assert ScanPending.public_detail in html and blob_download(blob) not in html  # where the link would be


def test_the_analyzed_metadata_is_a_table(admin_client, files):
    blob = files.blob["clean"]
    html = admin_client.get(blob_page(blob)).content.decode()
    assert 'class="attachments-metadata"' in html
    assert '<tr><th scope="row">pdf.pages</th><td style="overflow-wrap: anywhere;">2</td></tr>' in html
    # The upload's own keys first, then the analyzers', each under its name.
    keys = [key for key, _ in sorted(blob.metadata.items(), key=lambda kv: ("." in kv[0], kv[0]))]
    positions = [html.index(f'<th scope="row">{key}</th>') for key in keys]
    assert positions == sorted(positions) and len(keys) > 1
    broken = admin_client.get(blob_page(files.blob["broken"])).content.decode()
    assert 'class="attachments-analysis-errors"' in broken
    assert '<th scope="row">pdf</th>' in broken and "analysis_failed" in broken


# -- "Process again" ------------------------------------------------------------------------------


def act(client, url, action, ids, **extra):
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in ids], **extra}, follow=True)


def forget_analysis(*blobs):
    Blob.objects.filter(pk__in=[blob.pk for blob in blobs]).update(
        analysis_state=AnalysisState.PENDING, metadata={}, analyzed_at=None
    )


def test_process_again_reanalyzes_and_rescans_the_selected_blobs(admin_client, owners, store, scanner):
    """On every store: the action reads the bytes again, through the immediate task backend."""
    attachment = services.attach(io.BytesIO(pdf_bytes(pages=4)), owner_type="note", owner_id=owners.alice_note.pk)
    other = services.attach(io.BytesIO(pdf_bytes(pages=6)), owner_type="note", owner_id=owners.adam_note.pk)
    # Never processed (the test's transaction does not commit): both pending.
    assert Blob.objects.get(pk=attachment.blob_id).scan_state == ScanState.PENDING
    response = act(admin_client, BLOBS, "process_again", [attachment.blob_id])
    assert messages_of(response) == ["Processed 1 blob(s) again."]
    blob = Blob.objects.get(pk=attachment.blob_id)
    assert (blob.scan_state, blob.analysis_state, blob.metadata["pdf.pages"]) == ("clean", "analyzed", 4)
    assert Blob.objects.get(pk=other.blob_id).scan_state == ScanState.PENDING  # not selected

    scanned_at = blob.scanned_at
    forget_analysis(blob)
    response = act(admin_client, BLOBS, "process_again", [blob.pk])
    blob.refresh_from_db()
    assert messages_of(response) == ["Processed 1 blob(s) again."]
    assert blob.analysis_state == AnalysisState.ANALYZED and blob.metadata["pdf.pages"] == 4
    assert blob.scanned_at > scanned_at  # forced: scanned again too


def test_process_again_from_attachments_runs_each_blob_once(admin_client, owners, files):
    # The clean PDF linked twice more: three attachments, one blob.
    twice = services.link(files.clean.blob, owner_type="patient", owner_id=owners.alice.pk)
    forget_analysis(files.blob["clean"], files.blob["broken"])
    response = act(admin_client, ATTACHMENTS, "process_again", [files.clean.pk, twice.pk, files.broken.pk])
    assert messages_of(response) == ["Processed 2 blob(s) again."]
    clean, broken = (Blob.objects.get(pk=files.blob[name].pk) for name in ("clean", "broken"))
    assert clean.analysis_state == AnalysisState.ANALYZED and clean.metadata["pdf.pages"] == 2
    assert broken.analysis_state == AnalysisState.FAILED and broken.analysis_errors["pdf"]["code"] == "analysis_failed"


def test_process_again_keeps_an_infected_file_quarantined(admin_client, files):
    response = act(admin_client, BLOBS, "process_again", [files.blob["eicar"].pk])
    assert messages_of(response) == ["Processed 1 blob(s) again."]
    blob = Blob.objects.get(pk=files.blob["eicar"].pk)
    assert (blob.scan_state, blob.scan_signature) == (ScanState.INFECTED, clamd_helpers.EICAR_FOUND)
    assert blob.analysis_state == AnalysisState.NOT_ANALYZED  # still never parsed
    assert blob_download(blob) not in admin_client.get(BLOBS).content.decode()


def test_process_again_with_a_scanner_down_says_so(admin_client, files, settings, tmp_path):
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": scanner_settings(str(tmp_path / "gone.sock"), timeout=1),
    }
    response = act(admin_client, BLOBS, "process_again", [files.blob["unscanned"].pk])
    assert messages_of(response) == ["Processed 1 blob(s) again."]  # the task ran; the scan failed, again
    blob = Blob.objects.get(pk=files.blob["unscanned"].pk)
    assert (blob.scan_state, blob.scan_attempts) == (ScanState.FAILED, 2)
    # A clean file keeps its verdict when a forced re-scan cannot run.
    act(admin_client, BLOBS, "process_again", [files.blob["clean"].pk])
    assert Blob.objects.get(pk=files.blob["clean"].pk).scan_state == ScanState.CLEAN


def test_process_again_on_workers_queues_the_blobs(admin_client, files, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    try:
        from django.tasks import task_backends  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from django_tasks import task_backends  # type: ignore[no-redef,unused-ignore]
    forget_analysis(files.blob["clean"])
    response = act(admin_client, ATTACHMENTS, "process_again", [files.clean.pk, files.eicar.pk])
    assert messages_of(response) == ["Queued 2 blob(s) to be processed again."]
    queued = sorted(result.args for result in task_backends["default"].results)
    assert queued == sorted([[str(files.clean.blob_id), None, True], [str(files.eicar.blob_id), None, True]])
    assert Blob.objects.get(pk=files.clean.blob_id).analysis_state == AnalysisState.PENDING  # the workers' job


def test_process_again_says_when_a_task_failed(admin_client, owners, disk_store, caplog):
    """No scanner; the bytes are gone: the analyzer's read fails, the task with it, and the user is told."""
    attachment = services.attach(io.BytesIO(pdf_bytes()), owner_type="note", owner_id=owners.alice_note.pk)
    ok = services.attach(io.BytesIO(pdf_bytes(pages=3)), owner_type="note", owner_id=owners.adam_note.pk)
    disk_store.delete(attachment.blob.storage_identifiers)
    response = act(admin_client, BLOBS, "process_again", [attachment.blob_id, ok.blob_id])
    assert messages_of(response) == [
        "Processed 1 blob(s) again.",
        "1 blob(s) could not be processed; the log says why.",
    ]
    assert Blob.objects.get(pk=attachment.blob_id).analysis_state == AnalysisState.PENDING
    assert Blob.objects.get(pk=ok.blob_id).metadata["pdf.pages"] == 3
    failures = [r for r in caplog.records if r.levelname == "ERROR" and "state=FAILED" in r.getMessage()]
    assert len(failures) == 1 and "process_blob" in failures[0].getMessage()  # the task framework's log


def test_malformed_ids_select_nothing(admin_client, files):
    forget_analysis(files.blob["clean"])
    response = act(admin_client, BLOBS, "process_again", ["not-a-uuid", "'; --"])
    assert response.status_code == 200
    assert messages_of(response) == [
        "Items must be selected in order to perform actions on them. No items have been changed."
    ]
    response = act(admin_client, BLOBS, "process_again", ["not-a-uuid", files.blob["clean"].pk])
    assert messages_of(response) == ["Processed 1 blob(s) again."]
    assert Blob.objects.get(pk=files.blob["clean"].pk).analysis_state == AnalysisState.ANALYZED
    purge = act(admin_client, BLOBS, "purge_selected", ["not-a-uuid"])
    assert purge.status_code == 200 and Blob.objects.count() == len(files.blob)


def test_process_again_needs_the_change_permission(owners, files, tenant_resolver):
    viewer = staff_client("vera", owners.clinic_a, *VIEW)
    forget_analysis(files.blob["clean"])
    assert "process_again" not in viewer.get(BLOBS).content.decode()
    response = act(viewer, BLOBS, "process_again", [files.blob["clean"].pk])
    assert response.status_code == 200 and messages_of(response) == []  # no action offered, none taken
    assert Blob.objects.get(pk=files.blob["clean"].pk).analysis_state == AnalysisState.PENDING
    purger = staff_client("pia", owners.clinic_a, *VIEW, "delete_blob")  # another action, not this one
    assert messages_of(act(purger, BLOBS, "process_again", [files.blob["clean"].pk])) == ["No action selected."]
    assert Blob.objects.get(pk=files.blob["clean"].pk).analysis_state == AnalysisState.PENDING
    processor = staff_client("paul", owners.clinic_a, *PROCESS)
    assert "process_again" in processor.get(BLOBS).content.decode()


# -- tenancy ------------------------------------------------------------------------------------

B_FILES = {"bob-marker.bin", "bob.pdf"}


def test_another_clinics_blobs_are_in_no_filter(owners, files, tenant_resolver):
    ben = staff_client("ben", owners.clinic_b, *VIEW)
    assert filenames(ben.get(BLOBS)) == B_FILES
    for url in (BLOBS, ATTACHMENTS):
        for state, expected in SCAN_FILTER.items():
            assert filenames(ben.get(url, {"scan": state})) == expected & B_FILES, (url, state)
        for state, expected in ANALYSIS_FILTER.items():
            assert filenames(ben.get(url, {"analysis": state})) == expected & B_FILES, (url, state)
    html = ben.get(BLOBS, {"scan": "infected"}).content.decode()
    assert clamd_helpers.MARKER_FOUND in html and clamd_helpers.EICAR_FOUND not in html
    assert "eicar.com" not in html
    if django.VERSION >= (5, 0):  # the filters' counts, too, are of one's own clinic
        faceted = ben.get(BLOBS, {"_facets": "1"}).content.decode()
        assert "infected (1)" in faceted and "clean (1)" in faceted and "pending (0)" in faceted
    # Alice's infected blob is not found, exactly like one that does not exist.
    theirs, nobodys = ben.get(blob_page(files.blob["eicar"])), ben.get(blob_page(uuid.uuid4()))
    assert theirs.status_code == nobodys.status_code == 302
    assert theirs.url == nobodys.url


def test_process_again_acts_only_on_ones_own_clinics_blobs(owners, files, tenant_resolver):
    ben = staff_client("ben", owners.clinic_b, *PROCESS)
    alices = [files.blob["clean"], files.blob["broken"]]
    forget_analysis(*alices, files.blob["bob_clean"])
    before = {blob.pk: Blob.objects.get(pk=blob.pk).updated_at for blob in alices}

    theirs = act(ben, BLOBS, "process_again", [blob.pk for blob in alices])
    nobodys = act(ben, BLOBS, "process_again", [uuid.uuid4(), uuid.uuid4()])
    assert messages_of(theirs) == messages_of(nobodys) == ["No blob was processed."]
    assert theirs.content.decode().replace(str(theirs.context["csrf_token"]), "") == (
        nobodys.content.decode().replace(str(nobodys.context["csrf_token"]), "")
    )
    by_link = act(ben, ATTACHMENTS, "process_again", [files.clean.pk, files.broken.pk])
    assert messages_of(by_link) == ["No blob was processed."]
    for blob in alices:
        after = Blob.objects.get(pk=blob.pk)
        assert (after.analysis_state, after.metadata, after.updated_at) == ("pending", {}, before[blob.pk])

    # Every row of the list (select across): Bob's two blobs, none of Alice's.
    every = act(ben, BLOBS, "process_again", [files.blob["bob_clean"].pk], select_across="1")
    assert messages_of(every) == ["Processed 2 blob(s) again."]
    assert Blob.objects.get(pk=files.blob["bob_clean"].pk).metadata["pdf.pages"] == 1
    assert all(Blob.objects.get(pk=blob.pk).analysis_state == AnalysisState.PENDING for blob in alices)


# -- the panel on consumers' pages ----------------------------------------------------------------


def panel_rows(response) -> dict[str, dict]:
    return {row["attachment"].filename: row for row in response.context["attachments_panel"]["rows"]}


def test_the_panel_shows_the_scan_and_links_only_servable_files(admin_client, owners, files, settings):
    page = admin_client.get(note_page(owners.alice_note))
    rows = panel_rows(page)
    assert set(rows) == {"eicar.com", "clean.pdf"}
    assert rows["eicar.com"]["download_url"] is None and rows["clean.pdf"]["download_url"] is not None
    html = page.content.decode()
    assert ">Scan</th>" in html and "attachments-scan-infected" in html and clamd_helpers.EICAR_FOUND in html
    assert html.count('class="attachment-download"') == 1 and '<span class="attachment-unavailable">eicar.com' in html
    # The download URL the panel withholds is refused anyway.
    url = reverse("admin:testapp_note_attachments_download", args=[owners.alice_note.pk, files.eicar.pk])
    assert admin_client.get(url).status_code == 409

    second = panel_rows(admin_client.get(note_page(owners.alice_note2)))
    assert second["pending.pdf"]["download_url"] is None and second["unscanned.pdf"]["download_url"] is None
    assert second["broken.pdf"]["download_url"] is not None
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SERVE_PENDING_SCANS": True}
    second = panel_rows(admin_client.get(note_page(owners.alice_note2)))
    assert second["pending.pdf"]["download_url"] is not None


def test_the_panel_has_no_scan_column_without_a_scanner(admin_client, owners, disk_store, pdf):
    services.attach(io.BytesIO(pdf), owner_type="note", owner_id=owners.alice_note.pk, filename="plain.pdf")
    page = admin_client.get(note_page(owners.alice_note))
    assert ">Scan</th>" not in page.content.decode()
    assert panel_rows(page)["plain.pdf"]["download_url"] is not None


def test_the_panel_of_another_clinics_owner_says_nothing_of_its_scans(owners, files, tenant_resolver):
    ben = staff_client("ben", owners.clinic_b, *VIEW)
    html = ben.get(note_page(owners.alice_note)).content.decode()
    assert "eicar.com" not in html and clamd_helpers.EICAR_FOUND not in html and "attachments-scan" not in html
    assert Attachment.objects.filter(blob__scan_state=ScanState.INFECTED).count() == 2
