"""The processing pipeline seen through the REST API: states and metadata in the JSON, filters, 409s.

Uploads go through the API with the Tasks framework's immediate backend; the
pipeline runs when the upload's transaction commits, which
``django_capture_on_commit_callbacks(execute=True)`` stands for (and a
transactional test does for real). The scanner is a real clamd (tests/clamd.py).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from django_attachments import exceptions, services
from django_attachments.models import AnalysisState, Blob, ScanState
from django_attachments.processing.analyzers import AnalysisError
from django_attachments.processing.scanners import ScanError, ScanTooLarge
from tests import clamd as clamd_helpers
from tests.apitools import LIST, detail, download, upload
from tests.conftest import PDF_BYTES, PNG_BYTES
from tests.testapp.models import Staff

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]

API_DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"
PROCESSING_KEYS = {
    "scan", "scan_signature", "scan_error_code", "scanned_at", "analysis", "analysis_errors", "analyzed_at", "metadata",
}  # fmt: skip


@pytest.fixture
def admin_a(owners):
    """An API client of clinic A whose user is staff (``is_staff``): the one who may see what a scan found."""
    user = get_user_model().objects.create_user("amira", is_staff=True)
    Staff.objects.create(user=user, clinic=owners.clinic_a)
    client = APIClient()
    client.force_authenticate(user)
    return client


def image_bytes(width=64, height=48) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


def pdf_bytes(pages=3) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- the representation ------------------------------------------------------------------------


def test_an_image_and_a_pdf_show_their_analysis_and_metadata(staff, owners, store, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        image = upload(staff["a"], "note", owners.alice_note.pk, image_bytes(64, 48), filename="photo.png")
        pdf = upload(staff["a"], "note", owners.alice_note.pk, pdf_bytes(pages=3), filename="letter.pdf")
    assert image.status_code == pdf.status_code == 201, (image.content, pdf.content)
    # Answered inside the upload's transaction: nothing has run yet, and the JSON says so.
    created = image.json()
    assert PROCESSING_KEYS <= set(created)
    assert (created["scan"], created["analysis"], created["metadata"]) == ("not_scanned", "pending", {})

    shown = staff["a"].get(detail(created["id"])).json()
    assert (shown["scan"], shown["analysis"]) == ("not_scanned", "analyzed")
    assert shown["metadata"] == {
        "image.width": 64,
        "image.height": 48,
        "image.format": "PNG",
        "image.mode": "RGB",
        "image.orientation": None,
        "image.animated": False,
        "image.frames": 1,
    }
    assert "declared_content_type" in Blob.objects.get(pk=created["blob_id"]).metadata  # the upload's own: not shown
    assert shown["analysis_errors"] == {} and shown["analyzed_at"] is not None
    assert (shown["scan_signature"], shown["scan_error_code"], shown["scanned_at"]) == (None, None, None)

    letter = staff["a"].get(detail(pdf.json()["id"])).json()
    assert letter["analysis"] == "analyzed"
    assert letter["metadata"]["pdf.pages"] == 3
    assert (letter["metadata"]["pdf.page_width"], letter["metadata"]["pdf.page_height"]) == (595, 842)
    assert letter["metadata"]["pdf.encrypted"] is False
    assert all(key.startswith("pdf.") for key in letter["metadata"])
    # The list shows the same as the detail.
    listed = {row["id"]: row for row in staff["a"].get(LIST).json()["results"]}
    assert listed[created["id"]] == shown and listed[letter["id"]] == letter


@pytest.mark.django_db(transaction=True)
def test_the_upload_answers_with_what_the_pipeline_did_when_its_transaction_committed(staff, owners, disk_store):
    """No test transaction here: the upload commits, the immediate backend runs the task, then the view answers."""
    response = upload(staff["a"], "note", owners.alice_note.pk, image_bytes(20, 10), filename="small.png")
    assert response.status_code == 201
    data = response.json()
    assert (data["scan"], data["analysis"]) == ("not_scanned", "analyzed")
    assert (data["metadata"]["image.width"], data["metadata"]["image.height"]) == (20, 10)
    # A direct upload of the same bytes for another owner of the subject: attached at once, states included.
    started = staff["a"].post(
        "/api/attachments/uploads/",
        {
            "owner_type": "patient",
            "owner_id": str(owners.alice.pk),
            "filename": "again.png",
            "size": int(data["size"]),
            "checksum": data["checksum"],
        },
        format="json",
    )
    assert started.status_code == 201 and started.json()["upload"] is None
    assert started.json()["attachment"]["analysis"] == "analyzed"
    assert started.json()["attachment"]["metadata"] == data["metadata"]


def test_an_analyzer_that_refuses_the_file_is_shown_with_its_code_and_message(
    staff, owners, disk_store, django_capture_on_commit_callbacks
):
    broken = b"%PDF-1.7\n" + b"\x00garbage that is no PDF body" * 200
    with django_capture_on_commit_callbacks(execute=True):
        created = upload(staff["a"], "note", owners.alice_note.pk, broken, filename="broken.pdf").json()
    shown = staff["a"].get(detail(created["id"])).json()
    assert shown["analysis"] == "failed" and shown["metadata"] == {}
    assert set(shown["analysis_errors"]) == {"pdf"}
    error = shown["analysis_errors"]["pdf"]
    assert error["code"] == "analysis_failed"
    assert error["detail"] == Blob.objects.get(pk=created["blob_id"]).analysis_errors["pdf"]["detail"]
    assert error["detail"].startswith("The file is not a readable PDF")
    # The file itself is served: only the analyzer could not read it.
    assert staff["a"].get(download(created["id"])).status_code == 200


def test_a_clean_file_shows_when_it_was_scanned(staff, owners, disk_store, scanner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload(staff["a"], "note", owners.alice_note.pk, pdf_bytes(pages=2), filename="clean.pdf").json()
    assert created["scan"] == "pending"  # answered before the commit that starts the scan
    assert staff["a"].get(download(created["id"])).status_code == 200
    shown = staff["a"].get(detail(created["id"])).json()
    assert (shown["scan"], shown["analysis"], shown["metadata"]["pdf.pages"]) == ("clean", "analyzed", 2)
    assert shown["scanned_at"] is not None and shown["scan_signature"] is None and shown["scan_error_code"] is None


def test_eicar_is_infected_in_the_json_and_its_download_is_409_quarantined(
    staff, admin_a, owners, disk_store, scanner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload(staff["a"], "note", owners.alice_note.pk, clamd_helpers.EICAR, filename="eicar.com").json()
    shown = staff["a"].get(detail(created["id"])).json()
    assert (shown["scan"], shown["analysis"], shown["metadata"]) == ("infected", "not_analyzed", {})
    assert shown["scanned_at"] is not None and shown["scan_error_code"] is None
    # What was found: for staff (is_staff) of the tenant; a null for everyone else.
    assert shown["scan_signature"] is None
    assert admin_a.get(detail(created["id"])).json()["scan_signature"] == clamd_helpers.EICAR_FOUND
    got = staff["a"].get(download(created["id"]))
    assert got.status_code == 409
    assert got.json() == {
        "detail": "The malware scanner found a threat in this file; it is quarantined and cannot be used.",
        "code": "quarantined",
    }
    assert admin_a.get(download(created["id"])).json()["code"] == "quarantined"  # staff cannot download it either
    assert [row["id"] for row in staff["a"].get(LIST, {"scan": "infected"}).json()["results"]] == [created["id"]]
    # The other clinic does not see it, by id or by filter.
    assert staff["b"].get(detail(created["id"])).status_code == 404
    assert staff["b"].get(LIST, {"scan": "infected"}).json()["count"] == 0


def test_a_failed_scan_shows_its_code_never_the_scanners_message(
    staff, owners, disk_store, dead_scanner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload(staff["a"], "note", owners.alice_note.pk, pdf_bytes(), filename="waiting.pdf").json()
    blob = Blob.objects.get(pk=created["blob_id"])
    assert dead_scanner in blob.scan_error  # the daemon's address, recorded for staff and logs ...
    response = staff["a"].get(detail(created["id"]))
    assert dead_scanner not in response.content.decode()  # ... and never sent to a client
    shown = response.json()
    assert (shown["scan"], shown["scan_error_code"], shown["analysis"]) == ("failed", "scan_unavailable", "pending")
    assert shown["scanned_at"] is None and shown["metadata"] == {}
    got = staff["a"].get(download(created["id"]))
    assert (got.status_code, got.json()["code"]) == (409, "scan_pending")


def test_a_409_for_a_file_held_back_is_the_clients_answer_not_a_logged_error(
    staff, owners, disk_store, dead_scanner, django_capture_on_commit_callbacks, caplog
):
    """A client polling a file not yet scanned must not fill the error log (5xx are logged; 409s are answers)."""
    with django_capture_on_commit_callbacks(execute=True):
        created = upload(staff["a"], "note", owners.alice_note.pk, pdf_bytes(), filename="waiting.pdf").json()
    caplog.clear()
    for _ in range(3):
        assert staff["a"].get(download(created["id"])).status_code == 409
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []


def test_only_the_analyzers_keys_are_shown_not_a_projects_own(
    staff, owners, disk_store, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload(staff["a"], "note", owners.alice_note.pk, pdf_bytes(pages=2), filename="letter.pdf").json()
    blob = Blob.objects.get(pk=created["blob_id"])
    Blob.objects.filter(pk=blob.pk).update(metadata={**blob.metadata, "billing.code": "X-42", "internal": 1})
    shown = staff["a"].get(detail(created["id"])).json()["metadata"]
    assert shown["pdf.pages"] == 2 and set(shown) == {key for key in blob.metadata if key.startswith("pdf.")}


# -- filters ------------------------------------------------------------------------------------

#: (key, clinic, owner, kind, scan state, analysis state) of each attachment the filter tests make.
ROWS = [
    ("a1", "a", "alice_note", "png", ScanState.CLEAN, AnalysisState.ANALYZED),
    ("a2", "a", "alice_note", "pdf", ScanState.INFECTED, AnalysisState.NOT_ANALYZED),
    ("a3", "a", "alice", "pdf", ScanState.PENDING, AnalysisState.PENDING),
    ("a4", "a", "adam_note", "text", ScanState.FAILED, AnalysisState.PENDING),
    ("a5", "a", "alice", "png", ScanState.NOT_SCANNED, AnalysisState.FAILED),
    ("a6", "a", "alice", "text", ScanState.CLEAN, AnalysisState.NOT_ANALYZED),
    ("b1", "b", "bob_note", "png", ScanState.CLEAN, AnalysisState.ANALYZED),
    ("b2", "b", "bob", "pdf", ScanState.INFECTED, AnalysisState.NOT_ANALYZED),
    ("b3", "b", "bob_note", "text", ScanState.PENDING, AnalysisState.PENDING),
    ("b4", "b", "bob", "png", ScanState.FAILED, AnalysisState.FAILED),
]
CONTENT_TYPES = {"png": "image/png", "pdf": "application/pdf", "text": "text/plain"}


def file_of(kind: str, n: int) -> bytes:
    """Distinct bytes of each kind (libmagic still reads the type), so that no two rows share a blob."""
    if kind == "png":
        return PNG_BYTES + b"\x00" * n
    if kind == "pdf":
        return PDF_BYTES.replace(b"%%EOF", b"%" + str(n).encode() + b"\n%%EOF")
    return f"plain text {n}\n".encode() * 3


def make_rows(owners, rows=ROWS, start=0):
    """Attach each row's file to its owner and give its blob the row's states; key -> attachment id."""
    made = {}
    for n, (key, _, owner_name, kind, scan, analysis) in enumerate(rows, start=start):
        owner = getattr(owners, owner_name)
        owner_type = "note" if owner_name.endswith("note") else "patient"
        attachment = services.attach(file_of(kind, n), owner_type=owner_type, owner_id=owner.pk, filename=f"{key}")
        assert attachment.blob.content_type == CONTENT_TYPES[kind]
        Blob.objects.filter(pk=attachment.blob_id).update(scan_state=scan, analysis_state=analysis)
        made[key] = str(attachment.pk)
    return made


@pytest.fixture
def rows(owners, disk_store):
    return make_rows(owners)


def expected(made, clinic, *, scan=None, analysis=None, types=None, owner_type=None):
    """The keys of ``clinic``'s rows that pass the filters, worked out from ROWS, not by a query."""

    def type_matches(kind):
        content_type = CONTENT_TYPES[kind]
        return any(
            content_type.startswith(pattern[:-1]) if pattern.endswith("/*") else content_type == pattern
            for pattern in types
        )

    return {
        made[key]
        for key, row_clinic, owner_name, kind, row_scan, row_analysis in ROWS
        if row_clinic == clinic
        and (scan is None or row_scan in scan)
        and (analysis is None or row_analysis in analysis)
        and (types is None or type_matches(kind))
        and (owner_type is None or owner_name.endswith("note") == (owner_type == "note"))
    }


@pytest.mark.parametrize(
    "params, filters",
    [
        ({"scan": "clean"}, {"scan": ["clean"]}),
        ({"scan": "pending,failed"}, {"scan": ["pending", "failed"]}),
        ({"scan": ["clean", "infected"]}, {"scan": ["clean", "infected"]}),  # the parameter repeated
        ({"scan": "not_scanned"}, {"scan": ["not_scanned"]}),
        ({"analysis": "failed"}, {"analysis": ["failed"]}),
        ({"analysis": "pending,not_analyzed"}, {"analysis": ["pending", "not_analyzed"]}),
        ({"content_type": "image/*"}, {"types": ["image/*"]}),
        ({"content_type": "application/pdf"}, {"types": ["application/pdf"]}),
        ({"content_type": "IMAGE/PNG"}, {"types": ["image/png"]}),
        ({"content_type": "text/*,application/pdf"}, {"types": ["text/*", "application/pdf"]}),
        ({"content_type": "video/*"}, {"types": ["video/*"]}),
        ({"scan": "clean", "content_type": "image/*"}, {"scan": ["clean"], "types": ["image/*"]}),
        ({"scan": "clean,infected", "owner_type": "note"}, {"scan": ["clean", "infected"], "owner_type": "note"}),
        (
            {"analysis": "pending", "scan": "failed", "content_type": "text/*"},
            {"analysis": ["pending"], "scan": ["failed"], "types": ["text/*"]},
        ),
    ],
)
def test_filters_return_exactly_the_tenants_rows_that_match(staff, rows, params, filters):
    for clinic in ("a", "b"):
        response = staff[clinic].get(LIST, params)
        assert response.status_code == 200, response.json()
        got = [row["id"] for row in response.json()["results"]]
        assert len(got) == len(set(got))
        assert set(got) == expected(rows, clinic, **filters), clinic


def test_the_filters_leave_the_other_tenant_out_whatever_they_ask(staff, rows):
    everything = {"scan": ",".join(ScanState.values), "analysis": ",".join(AnalysisState.values)}
    for content_type in ("image/*", "application/*", "text/*"):
        got = {
            row["id"] for row in staff["b"].get(LIST, {**everything, "content_type": content_type}).json()["results"]
        }
        assert got <= expected(rows, "b") and got.isdisjoint(expected(rows, "a"))
    assert {row["id"] for row in staff["b"].get(LIST, everything).json()["results"]} == expected(rows, "b")


def test_the_scan_field_and_filter_agree(staff, rows):
    for state in ScanState.values:
        results = staff["a"].get(LIST, {"scan": state}).json()["results"]
        assert {row["scan"] for row in results} <= {state}
        assert {row["id"] for row in results} == expected(rows, "a", scan=[state])
    for state in AnalysisState.values:
        results = staff["a"].get(LIST, {"analysis": state}).json()["results"]
        assert {row["analysis"] for row in results} <= {state}


@pytest.mark.parametrize(
    "params, field, code",
    [
        ({"scan": "dirty"}, "scan", "invalid_choice"),
        ({"scan": "CLEAN"}, "scan", "invalid_choice"),
        ({"scan": "clean, failed"}, "scan", "invalid_choice"),
        ({"scan": "clean,"}, "scan", "invalid_choice"),
        ({"scan": ["clean", ""]}, "scan", "invalid_choice"),
        ({"scan": ""}, "scan", "blank"),
        ({"scan": "analyzed"}, "scan", "invalid_choice"),
        ({"scan": "clean\x00"}, "scan", "null_characters_not_allowed"),
        ({"scan": "clean," * 400 + "clean"}, "scan", "max_length"),
        ({"analysis": "clean"}, "analysis", "invalid_choice"),
        ({"analysis": "analysed"}, "analysis", "invalid_choice"),
        ({"content_type": "image"}, "content_type", "invalid"),
        ({"content_type": "image/"}, "content_type", "invalid"),
        ({"content_type": "*/*"}, "content_type", "invalid"),
        ({"content_type": "image/*;q=0.5"}, "content_type", "invalid"),
        ({"content_type": "image/png; charset=binary"}, "content_type", "invalid"),
        ({"content_type": "image/png,"}, "content_type", "invalid"),
        ({"content_type": "image/p*"}, "content_type", "invalid"),
        ({"content_type": "../../etc/passwd"}, "content_type", "invalid"),
        ({"content_type": "image/%"}, "content_type", "invalid"),
        ({"content_type": ""}, "content_type", "blank"),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_the_parameter(staff, owners, params, field, code):
    response = staff["a"].get(LIST, params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and set(body) == {field, "code"}, body


def test_a_bad_state_is_named_with_the_states_there_are(staff, owners):
    message = staff["a"].get(LIST, {"scan": "clean,dirty"}).json()["scan"][0]
    assert message == '"dirty" is not a valid state; the states are: pending, clean, infected, failed, not_scanned.'


def test_a_page_of_50_takes_as_many_queries_as_a_page_of_1(staff, owners, disk_store):
    spread = [
        (f"r{n}", "a", ("alice_note", "alice", "adam_note")[n % 3], ("png", "pdf", "text")[n % 3],
         ScanState.values[n % 5], AnalysisState.values[n % 4])
        for n in range(60)
    ]  # fmt: skip
    make_rows(owners, spread)
    Blob.objects.update(metadata={"declared_content_type": None, "image.width": 1, "pdf.pages": 2})
    Blob.objects.filter(analysis_state=AnalysisState.FAILED).update(
        analysis_errors={"pdf": {"code": "analysis_failed", "detail": "broken"}}
    )

    def queries(**params):
        with CaptureQueriesContext(connection) as captured:
            response = staff["a"].get(LIST, params)
        assert response.status_code == 200
        return len(captured), len(response.json()["results"])

    unfiltered = queries(page_size=50)
    assert unfiltered[1] == 50
    assert unfiltered[0] == queries(page_size=1)[0]
    filtered = queries(page_size=50, scan="clean,failed,pending,not_scanned,infected", content_type="image/*,text/*")
    assert filtered[1] == 40 and filtered[0] == unfiltered[0]
    # The caller's tenant, the count and the page (the user is authenticated without a query in these tests).
    assert unfiltered[0] <= 3, unfiltered


# -- the schema and the docs --------------------------------------------------------------------


def test_the_schema_documents_the_fields_filters_and_409s():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    attachment = components["Attachment"]
    assert PROCESSING_KEYS <= set(attachment["properties"]) and PROCESSING_KEYS <= set(attachment["required"])
    assert components["ScanEnum"]["enum"] == ScanState.values
    assert components["AnalysisEnum"]["enum"] == AnalysisState.values
    parameters = {p["name"]: p for p in schema["paths"]["/api/attachments/"]["get"]["parameters"]}
    assert parameters["scan"]["schema"]["items"]["enum"] == ScanState.values
    assert parameters["analysis"]["schema"]["items"]["enum"] == AnalysisState.values
    assert (parameters["scan"]["style"], parameters["scan"]["explode"]) == ("form", False)
    pattern = re.compile(parameters["content_type"]["schema"]["items"]["pattern"])
    assert pattern.match("image/*") and pattern.match("application/vnd.ms-excel") and not pattern.match("*/*")
    conflict = schema["paths"]["/api/attachments/{id}/download/"]["get"]["responses"]["409"]["description"]
    assert "quarantined" in conflict and "scan_pending" in conflict and "scan_failed" in conflict


def test_every_processing_code_a_client_can_see_is_documented():
    documented = set(re.findall(r"`([a-z_]+)`", API_DOCS.read_text()))
    codes = {
        exceptions.Quarantined.code,
        exceptions.ScanPending.code,
        ScanError.code,
        ScanTooLarge.code,  # scan_error_code
        exceptions.StorageError.code,  # scan_error_code: the storage failed while the scanner read the file
        AnalysisError.code,  # analysis_errors
        "invalid_choice",  # the filters
        *ScanState.values,
        *AnalysisState.values,
    }
    assert codes - documented == set()
