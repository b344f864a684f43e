"""The attachment's JSON as the API builds it (a page's plain rows, or one instance), against DRF's own path."""

from __future__ import annotations

import contextlib
import zoneinfo
from dataclasses import replace
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from django_attachments import services
from django_attachments.api.representation import datetime_writer
from django_attachments.api.serializers import AttachmentSerializer
from django_attachments.models import AnalysisState, Attachment, Blob, RenderState, ScanState, Variant, VariantRender
from django_attachments.registry import attachment_registry
from django_attachments.services import variants
from tests.apitools import LIST, detail

pytestmark = pytest.mark.django_db

#: Blob states that change what the representation shows: each scan and analysis state, with what goes with it.
STATES = [
    {"scan_state": ScanState.PENDING},
    {"scan_state": ScanState.CLEAN, "scanned_at": timezone.now() - timedelta(hours=3)},
    {"scan_state": ScanState.INFECTED, "scan_signature": "Eicar-Test-Signature", "scanned_at": timezone.now()},
    {"scan_state": ScanState.INFECTED, "scan_signature": ""},
    {"scan_state": ScanState.FAILED, "scan_error_code": "scan_unavailable", "scan_error": "daemon at 127.0.0.1 down"},
    {"scan_state": ScanState.FAILED, "scan_error_code": ""},
    {"scan_state": ScanState.NOT_SCANNED},
    {
        "analysis_state": AnalysisState.ANALYZED,
        "analyzed_at": timezone.now(),
        "metadata": {"image.width": 40, "image.height": 20, "declared_content_type": "image/png", "private": 1},
    },
    {
        "analysis_state": AnalysisState.FAILED,
        "analyzed_at": timezone.now(),
        "analysis_errors": {"pdf": {"code": "analysis_failed", "detail": "broken xref"}, "odd": "not a dict"},
        "metadata": {"pdf.pages": 3},
    },
    {"analysis_state": AnalysisState.PENDING, "metadata": {"pdf.pages": 3}},
    {"analysis_state": AnalysisState.NOT_ANALYZED},
]


@pytest.fixture
def listed(owners, store):
    rows = []
    for i, state in enumerate(STATES):
        attachment = services.attach(
            f"file {i} ".encode() * 20,
            owner_type="patient",
            owner_id=owners.alice.pk,
            name=f"slot-{i}" if i % 2 else "",
            description="x" * i,
            filename=f"scan {i}.bin",
        )
        Blob.objects.filter(pk=attachment.blob_id).update(**state)
        rows.append(attachment.pk)
    return list(Attachment.objects.select_related("blob").filter(pk__in=rows).order_by("created_at"))


@pytest.mark.parametrize("is_staff", [False, True])
def test_each_row_is_what_drf_makes_of_it_field_by_field(listed, is_staff):
    request = APIRequestFactory().get("/api/attachments/")
    request.user = get_user_model()(username="reader", is_staff=is_staff)
    context = {"request": request}
    fast = AttachmentSerializer(listed, many=True, context=context).data
    generic = AttachmentSerializer(context=context)
    by_drf = [serializers.ModelSerializer.to_representation(generic, attachment) for attachment in listed]
    assert [dict(row) for row in fast] == [dict(row) for row in by_drf]
    assert [list(row) for row in fast] == [AttachmentSerializer.Meta.fields] * len(listed)  # and in the same order
    # What the states show (so that both paths could not agree on something wrong).
    infected = next(row for row in fast if row["scan_signature"] or row["scan"] == "infected")
    assert infected["scan_signature"] == ("Eicar-Test-Signature" if is_staff else None)
    failed = [row["scan_error_code"] for row in fast if row["scan"] == "failed"]
    assert failed == ["scan_unavailable", None]
    analyzed = next(row for row in fast if row["analysis"] == "analyzed")
    assert analyzed["metadata"] == {"image.width": 40, "image.height": 20} and analyzed["analyzed_at"].endswith("Z")


def test_a_subclass_or_changed_fields_take_drfs_path(listed):
    class WithExtra(AttachmentSerializer):
        extra = serializers.SerializerMethodField()

        class Meta(AttachmentSerializer.Meta):
            fields = [*AttachmentSerializer.Meta.fields, "extra"]

        def get_extra(self, attachment):
            return attachment.blob.filename

    request = APIRequestFactory().get("/api/attachments/")
    request.user = get_user_model()(username="reader")
    rows = WithExtra(listed, many=True, context={"request": request}).data
    assert [row["extra"] for row in rows] == [attachment.blob.filename for attachment in listed]


# -- the list endpoint: rows read as plain values, against DRF's path over model instances ------------

THUMB = {"operation": "fit", "width": 64, "height": 64, "format": "webp"}
PREVIEW = {"operation": "fit", "width": 160, "height": 160, "format": "jpeg"}
TEXT = b"just some words\n" * 20


class GenericAttachmentSerializer(AttachmentSerializer):
    """The same fields, taken through DRF's own path (a subclass does not take the rows' path)."""


@pytest.fixture
def declared(settings):
    """Global variants ("thumb", "preview"); notes drop "preview" and add "xray"."""
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": THUMB, "preview": PREVIEW}}
    note = attachment_registry.get("note")
    with attachment_registry.override(replace(note, variants={"preview": None, "xray": {**THUMB, "width": 32}})):
        yield


def _digest(owner_type, content_type, name):
    return variants.declared_specs(owner_type)[name].digest(variants.renderer_for(content_type))


def _made(attachment, name, width, height):
    blob = attachment.blob
    Variant.objects.create(
        blob=blob,
        digest=_digest(attachment.owner_type, blob.content_type, name),
        name=name,
        checksum="0" * 64,
        size=10,
        content_type="image/webp",
        width=width,
        height=height,
        storage="attachments",
    )


def _render(attachment, name, state):
    blob = attachment.blob
    VariantRender.objects.create(
        blob=blob, digest=_digest(attachment.owner_type, blob.content_type, name), name=name, state=state
    )


@pytest.fixture
def page(owners, disk_store, tenant_resolver, declared, png, pdf):
    """Clinic A's attachments, differing in every optional part of their JSON; and one of clinic B."""

    def attach(data, owner_type, owner, filename, state=None, **link):
        attachment = services.attach(data, owner_type=owner_type, owner_id=owner.pk, filename=filename, **link)
        if state:
            Blob.objects.filter(pk=attachment.blob_id).update(**state)
        return Attachment.objects.select_related("blob").get(pk=attachment.pk)

    clean = {"scan_state": ScanState.CLEAN, "scanned_at": timezone.now() - timedelta(minutes=5)}
    photo = attach(png, "note", owners.alice_note, "röntgen 🦴 снимок.png", clean, name="xray")
    _made(photo, "thumb", 1, 1)  # ready; "xray" not made yet
    # The same bytes (the same blob) for another owner type: its own names, the blob's variants.
    attach(png, "patient", owners.alice, "same bytes.png", description="the note's picture, again")
    refused = attach(png + b"\3", "patient", owners.alice, "refused.png", clean)
    _render(refused, "thumb", RenderState.FAILED)  # refused: not listed
    _made(refused, "preview", 2, 3)
    queued = attach(png + b"\0", "patient", owners.adam, "queued.png", {"scan_state": ScanState.NOT_SCANNED})
    _render(queued, "thumb", RenderState.QUEUED)  # asked for: listed, not ready
    attach(png + b"\1", "patient", owners.adam, "pending.png", {"scan_state": ScanState.PENDING})
    attach(
        png + b"\2",
        "patient",
        owners.alice,
        "infected.png",
        {"scan_state": ScanState.INFECTED, "scan_signature": "Eicar-Test-Signature", "scanned_at": timezone.now()},
    )
    attach(
        pdf,
        "patient",
        owners.alice,
        "unavailable.pdf",
        {"scan_state": ScanState.FAILED, "scan_error_code": "scan_unavailable"},
    )
    attach(TEXT, "note", owners.alice_note2, "notes.txt", {"scan_state": ScanState.FAILED}, description="\u2028 x")
    attach(
        TEXT + b"!",
        "note",
        owners.alice_note2,
        "analyzed.txt",
        {
            "analysis_state": AnalysisState.ANALYZED,
            "analyzed_at": timezone.now(),
            "metadata": {"image.width": 4, "pdf.pages": None, "text": "private", "declared_content_type": "x/y"},
        },
    )
    attach(
        pdf + b"%",
        "patient",
        owners.adam,
        "broken.pdf",
        {
            "analysis_state": AnalysisState.FAILED,
            "analyzed_at": timezone.now(),
            "analysis_errors": {"pdf": {"code": "analysis_failed", "detail": "xref «broken»"}, "odd": "not a dict"},
            "metadata": {"pdf.pages": 3},
        },
    )
    attach(pdf + b"%%", "patient", owners.adam, "pending.pdf", {"analysis_state": AnalysisState.PENDING})
    attach(png, "patient", owners.bob, "clinic b.png", clean)  # clinic B's: never in clinic A's list
    return Attachment.objects.filter(blob__tenant=owners.tenant_a).order_by("-created_at", "-id")


def _client(owners, clinic, *, is_staff=False):
    from rest_framework.test import APIClient

    from tests.testapp.models import Staff

    user = get_user_model().objects.create_user(f"user-{clinic.pk}-{is_staff}", is_staff=is_staff)
    Staff.objects.create(user=user, clinic=clinic)
    client = APIClient()
    client.force_authenticate(user)
    return client


def _both_paths(monkeypatch, client, params):
    """The list's response by the rows' path, then by DRF's (over model instances), and their queries."""
    from django_attachments.api.views import AttachmentViewSet

    answers = []
    for serializer_class in (AttachmentSerializer, GenericAttachmentSerializer):
        monkeypatch.setattr(AttachmentViewSet, "serializer_class", serializer_class)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(LIST, params)
        answers.append((response, len(queries)))
    monkeypatch.undo()
    return answers


@pytest.mark.parametrize("variants_declared", [True, False], ids=["variants", "no-variants"])
@pytest.mark.parametrize("is_staff", [False, True], ids=["member", "staff"])
def test_the_list_is_byte_for_byte_what_drf_makes_of_the_instances(
    page, owners, settings, monkeypatch, is_staff, variants_declared
):
    with contextlib.ExitStack() as stack:
        if not variants_declared:  # the variants' rows stay; none is declared any more
            settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {}}
            stack.enter_context(attachment_registry.override(replace(attachment_registry.get("note"), variants=None)))
        _check_the_list(page, owners, monkeypatch, is_staff, variants_declared)


def _check_the_list(page, owners, monkeypatch, is_staff, variants_declared):
    client = _client(owners, owners.clinic_a, is_staff=is_staff)
    expected = [str(pk) for pk in page.values_list("pk", flat=True)]
    queries_of = {}
    for params in [
        {"page_size": 500},
        {"page_size": 4},
        {"page_size": 4, "page": 2},
        {"page_size": 4, "page": 3},
        {"owner_type": "patient", "owner_id": str(owners.adam.pk)},
        {"scan": "clean,not_scanned", "content_type": "image/*"},
        {"analysis": "failed,analyzed"},
        {"owner_type": "patient", "owner_id": str(owners.bob.pk)},  # clinic B's owner: an empty page
    ]:
        (fast, fast_queries), (drf, drf_queries) = _both_paths(monkeypatch, client, params)
        assert fast.status_code == drf.status_code == 200
        assert fast.content == drf.content, params  # every field, URL, ordering and pagination link
        assert fast_queries == drf_queries, params
        queries_of[str(params)] = fast_queries
    whole = client.get(LIST, {"page_size": 500}).json()
    assert [row["id"] for row in whole["results"]] == expected  # clinic A's only, newest first
    assert all(list(row) == AttachmentSerializer.Meta.fields for row in whole["results"])
    for row in whole["results"]:  # and each row is the detail's JSON of the attachment
        assert client.get(detail(row["id"])).json() == row
    paged = [client.get(LIST, {"page_size": 4, "page": n}).json() for n in (1, 2, 3)]
    assert [row for one in paged for row in one["results"]] == whole["results"]
    assert paged[0]["next"].endswith("page=2&page_size=4") and paged[0]["previous"] is None
    # The query count depends on neither the page's size nor what its rows hold.
    assert queries_of[str({"page_size": 500})] == queries_of[str({"page_size": 4})]

    # What the rows show, so that both paths could not agree on something wrong.
    by_name = {row["filename"]: row for row in whole["results"]}
    assert by_name["infected.png"]["scan_signature"] == ("Eicar-Test-Signature" if is_staff else None)
    assert (
        by_name["unavailable.pdf"]["scan_error_code"] == "scan_unavailable"
        and by_name["notes.txt"]["scan_error_code"] is None
    )
    assert by_name["notes.txt"]["description"] == "\u2028 x"
    assert by_name["analyzed.txt"]["metadata"] == {"image.width": 4, "pdf.pages": None}
    assert by_name["broken.pdf"]["analysis_errors"] == {"pdf": {"code": "analysis_failed", "detail": "xref «broken»"}}
    assert by_name["pending.pdf"]["metadata"] == {} and by_name["analyzed.txt"]["analyzed_at"].endswith("Z")
    photo = by_name["röntgen 🦴 снимок.png"]
    assert photo["download_url"] == f"http://testserver/api/attachments/{photo['id']}/download/"
    if not variants_declared:
        assert all(row["variants"] == {} for row in whole["results"])
        return
    # (PDFs list theirs where a PDF renderer is installed; the pictures' are the subject here.)
    shown = {name: row["variants"] for name, row in by_name.items() if row["variants"] and name.endswith(".png")}
    photo, shared, refused, queued = (
        by_name[name]["id"] for name in ("röntgen 🦴 снимок.png", "same bytes.png", "refused.png", "queued.png")
    )

    def listed(pk, name, size=None):
        width, height = size or (None, None)
        url = f"http://testserver/api/attachments/{pk}/variants/{name}/"
        return {"url": url, "width": width, "height": height, "ready": size is not None}

    assert shown == {
        "röntgen 🦴 снимок.png": {"thumb": listed(photo, "thumb", (1, 1)), "xray": listed(photo, "xray")},
        "same bytes.png": {"preview": listed(shared, "preview"), "thumb": listed(shared, "thumb", (1, 1))},
        "refused.png": {"preview": listed(refused, "preview", (2, 3))},
        "queued.png": {"preview": listed(queued, "preview"), "thumb": listed(queued, "thumb")},
    }


def test_another_tenants_list_holds_its_own_rows_only(page, owners, monkeypatch):
    client = _client(owners, owners.clinic_b)
    (fast, _), (drf, _) = _both_paths(monkeypatch, client, {"page_size": 500})
    assert fast.content == drf.content
    assert [row["filename"] for row in fast.json()["results"]] == ["clinic b.png"]
    assert not {row["id"] for row in fast.json()["results"]} & {str(pk) for pk in page.values_list("pk", flat=True)}


@pytest.mark.usefixtures("declared")
def test_the_lists_queries_do_not_grow_with_its_rows(owners, disk_store, tenant_resolver, png):
    client = _client(owners, owners.clinic_a)

    def queries(page_size):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(LIST, {"page_size": page_size})
        assert response.status_code == 200
        return len(captured), len(response.json()["results"])

    for i in range(30):
        attachment = services.attach(png + bytes([i]), owner_type="patient", owner_id=owners.alice.pk)
        if i % 3 == 0:
            _made(Attachment.objects.select_related("blob").get(pk=attachment.pk), "thumb", 1, 1)
    Blob.objects.update(scan_state=ScanState.CLEAN)
    one, fifty = queries(1), queries(50)
    assert (one[1], fifty[1]) == (1, 30)
    assert one[0] == fifty[0]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
@pytest.mark.parametrize(
    "field",
    [
        serializers.DateTimeField(),
        serializers.DateTimeField(default_timezone=zoneinfo.ZoneInfo("Europe/Paris")),
        serializers.DateTimeField(format="%Y-%m-%d %H:%M"),
    ],
    ids=["default", "field-zone", "format"],
)
def test_a_datetime_is_written_as_drfs_field_writes_it(field, zone):
    from datetime import datetime as dt
    from datetime import timezone as tz

    values = [
        dt(2026, 12, 1, 7, 11, 40, 123456, tzinfo=tz.utc),
        dt(2026, 12, 1, 7, 11, 40, tzinfo=tz.utc),  # no microseconds
        dt(2026, 6, 1, 23, 59, 59, 1, tzinfo=tz(timedelta(hours=5, minutes=30))),
        dt(2026, 3, 29, 1, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        dt(2026, 12, 1, 7, 11, 40),  # naive: DRF makes it aware in its zone
        None,
    ]
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        write = datetime_writer(field)
        assert [write(value) for value in values] == [
            None if value is None else field.to_representation(value) for value in values
        ]
