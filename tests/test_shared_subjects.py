"""Two tenants whose subjects share strings: every clinic numbers its charts from "1".

The other fixtures key subjects by a patient's primary key, unique across
tenants, so a look-up that forgot the tenant would still find nothing of
another tenant's. Here clinic A's chart "1" and clinic B's chart "1" have the
same subject, and only the tenant keeps their files apart: deduplication,
links, direct uploads and lists must all keep to it. On disk and on S3.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from types import SimpleNamespace

import pytest

from django_attachments import services
from django_attachments.exceptions import BlobNotFound, OwnerMismatch
from django_attachments.models import Attachment, Blob, DirectUpload
from tests.apitools import LIST, detail, download
from tests.apitools import upload as api_upload
from tests.faults import read_all
from tests.test_direct_uploads import complete, send_ok, ticket
from tests.testapp.models import Chart

pytestmark = pytest.mark.django_db


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def names(store) -> set[str]:
    return {obj.name for obj in store.list()}


@pytest.fixture
def charts(owners):
    """Chart "1" in clinic A and in clinic B (one subject string, two tenants), and chart "2" in clinic A."""
    a1 = Chart.objects.create(clinic=owners.clinic_a, number="1")
    a2 = Chart.objects.create(clinic=owners.clinic_a, number="2")
    b1 = Chart.objects.create(clinic=owners.clinic_b, number="1")
    seen = {chart: services.resolve_owner("chart", chart.pk)[1] for chart in (a1, a2, b1)}
    assert (seen[a1].tenant, seen[a1].subject) == (owners.tenant_a, "1")
    assert (seen[b1].tenant, seen[b1].subject) == (owners.tenant_b, "1")  # the same subject, another tenant
    return SimpleNamespace(a1=a1, a2=a2, b1=b1)


def attach(data, chart, **options):
    return services.attach(data, owner_type="chart", owner_id=chart.pk, tenant=str(chart.clinic_id), **options)


# -- attach: deduplicated per (tenant, subject), never across tenants ------------------------------


@pytest.mark.parametrize("as_tenant", [True, False], ids=["tenant", "trusted"])
def test_same_bytes_and_subject_in_two_tenants_make_two_blobs(owners, charts, store, pdf, as_tenant):
    def attach_to(chart, **options):
        tenant = str(chart.clinic_id) if as_tenant else None
        return services.attach(pdf, owner_type="chart", owner_id=chart.pk, tenant=tenant, **options)

    a = attach_to(charts.a1)
    b = attach_to(charts.b1)
    assert b.blob.pk != a.blob.pk
    assert (a.blob.tenant, a.blob.subject) == (owners.tenant_a, "1")
    assert (b.blob.tenant, b.blob.subject) == (owners.tenant_b, "1")
    assert Blob.objects.count() == 2 and len(names(store)) == 2
    # Within each tenant and subject the bytes are still stored once.
    assert attach_to(charts.a1, name="again").blob.pk == a.blob.pk
    assert attach_to(charts.b1, name="again").blob.pk == b.blob.pk
    assert attach_to(charts.a2).blob.pk not in {a.blob.pk, b.blob.pk}  # another subject of tenant A
    assert Blob.objects.count() == 3 and len(names(store)) == 3
    for blob in Blob.objects.all():
        assert sha256(read_all(services.open_blob(blob))) == blob.checksum
    for attachment in Attachment.objects.select_related("blob"):
        chart = Chart.objects.get(pk=attachment.owner_id)
        assert (attachment.blob.tenant, attachment.blob.subject) == (str(chart.clinic_id), chart.number)


# -- link: another tenant's blob does not exist ------------------------------------------------------


def test_linking_another_tenants_blob_of_the_same_subject(owners, charts, store, pdf):
    theirs = attach(pdf, charts.a1).blob
    with pytest.raises(BlobNotFound) as foreign:
        services.link(theirs.pk, owner_type="chart", owner_id=charts.b1.pk, tenant=owners.tenant_b)
    nothing = uuid.uuid4()
    with pytest.raises(BlobNotFound) as missing:
        services.link(nothing, owner_type="chart", owner_id=charts.b1.pk, tenant=owners.tenant_b)
    assert str(foreign.value).replace(str(theirs.pk), "X") == str(missing.value).replace(str(nothing), "X")
    # A trusted caller (no tenant) finds the blob, but the subject string alone does not make it B's.
    with pytest.raises(OwnerMismatch):
        services.link(theirs, owner_type="chart", owner_id=charts.b1.pk)
    assert list(Attachment.objects.values_list("owner_id", flat=True)) == [str(charts.a1.pk)]
    # Within its tenant the blob links as usual.
    assert services.link(theirs, owner_type="chart", owner_id=charts.a1.pk, name="copy", tenant=owners.tenant_a)


# -- the API: ?checksum= lists, links, downloads ---------------------------------------------------------


def test_api_keeps_each_tenant_to_its_own_files_of_a_shared_subject(staff, owners, charts, store, pdf):
    a = api_upload(staff["a"], "chart", charts.a1.pk, pdf).json()
    b = api_upload(staff["b"], "chart", charts.b1.pk, pdf).json()
    assert a["blob_id"] != b["blob_id"] and a["checksum"] == b["checksum"] == sha256(pdf)
    for client, mine, other in (("a", a, b), ("b", b, a)):
        for params in ({"checksum": sha256(pdf)}, {"owner_type": "chart"}, {}):
            listed = staff[client].get(LIST, params).json()["results"]
            assert [(r["id"], r["blob_id"]) for r in listed] == [(mine["id"], mine["blob_id"])], (client, params)
        assert staff[client].get(detail(other["id"])).status_code == 404
        assert staff[client].get(download(other["id"])).status_code == 404

    def link(blob_id):
        payload = {"blob_id": blob_id, "owner_type": "chart", "owner_id": str(charts.b1.pk), "name": "x"}
        response = staff["b"].post(LIST, payload, format="json")
        assert response.status_code == 404, response.json()
        return response.json()

    nothing = str(uuid.uuid4())
    assert link(a["blob_id"]) == {k: v.replace(nothing, a["blob_id"]) for k, v in link(nothing).items()}
    assert Attachment.objects.count() == 2 and Blob.objects.count() == 2


# -- direct uploads -----------------------------------------------------------------------------------


def start(chart, data, **options):
    return services.start_upload(
        owner_type="chart",
        owner_id=chart.pk,
        filename="scan.pdf",
        size=len(data),
        checksum=sha256(data),
        tenant=str(chart.clinic_id),
        **options,
    )


def send_and_complete(upload, data, tenant):
    upload.refresh_from_db()
    services.receive_upload(upload, io.BytesIO(data), length=len(data))
    return services.complete_upload(upload.pk, tenant=tenant)


def test_starting_with_another_tenants_checksum_never_links_their_blob(owners, charts, store, pdf):
    theirs = attach(pdf, charts.a1).blob
    started = start(charts.b1, pdf)
    assert started.attachment is None and started.upload is not None  # a ticket: B must send the bytes
    assert (started.upload.tenant, started.upload.subject) == (owners.tenant_b, "1")
    assert Attachment.objects.count() == 1
    # In tenant A the same declaration is known bytes: linked at once.
    known = start(charts.a1, pdf, name="again")
    assert known.upload is None and known.attachment.blob.pk == theirs.pk
    attachment = send_and_complete(started.upload, pdf, owners.tenant_b)
    assert attachment.blob.pk != theirs.pk
    assert (attachment.blob.tenant, attachment.blob.subject) == (owners.tenant_b, "1")
    assert attachment.blob.storage_identifiers["name"] == started.upload.storage_identifiers["name"]
    assert read_all(services.open_blob(attachment.blob)) == read_all(services.open_blob(theirs)) == pdf


def test_completion_deduplicates_within_the_tenant_and_subject_only(
    owners, charts, store, pdf, django_capture_on_commit_callbacks
):
    # Both tickets open before any blob exists; then tenant A attaches the same bytes.
    b_ticket = start(charts.b1, pdf).upload
    a_ticket = start(charts.a1, pdf, name="again").upload
    theirs = attach(pdf, charts.a1).blob
    with django_capture_on_commit_callbacks(execute=True):
        b_attachment = send_and_complete(b_ticket, pdf, owners.tenant_b)
        a_attachment = send_and_complete(a_ticket, pdf, owners.tenant_a)
    assert b_attachment.was_created and a_attachment.was_created
    assert b_attachment.blob.pk != theirs.pk and b_attachment.blob.tenant == owners.tenant_b
    assert a_attachment.blob.pk == theirs.pk  # known in its own tenant and subject: linked
    assert Blob.objects.count() == 2
    # Each blob's object is its own; tenant A's surplus object went, tenant B's became its blob.
    assert names(store) == {blob.storage_identifiers["name"] for blob in Blob.objects.all()}
    assert set(DirectUpload.objects.values_list("status", flat=True)) == {DirectUpload.COMPLETED}


def test_listing_attachments_for_a_tenant(owners, charts, store, pdf, png):
    a = attach(pdf, charts.a1)
    b = attach(pdf, charts.b1)
    b_png = attach(png, charts.b1, name="png")
    assert set(services.attachments_for(owners.tenant_a)) == {a}
    assert set(services.attachments_for(owners.tenant_b)) == {b, b_png}
    assert set(services.attachments_for(None)) == {a, b, b_png}
    same = services.attachments_for(owners.tenant_b).filter(blob__checksum=sha256(pdf), owner_type="chart")
    assert [(x.pk, x.blob.tenant) for x in same] == [(b.pk, owners.tenant_b)]


def test_api_direct_upload_with_another_tenants_checksum(staff, owners, charts, store, pdf):
    theirs = api_upload(staff["a"], "chart", charts.a1.pk, pdf).json()
    upload = ticket(staff["b"], "chart", charts.b1.pk, pdf)  # a ticket, not their attachment
    send_ok(staff["b"], upload, pdf)
    completed = complete(staff["b"], upload)
    assert completed.status_code == 201, completed.json()
    mine = completed.json()["attachment"]
    assert mine["blob_id"] != theirs["blob_id"]
    assert Blob.objects.get(pk=mine["blob_id"]).tenant == owners.tenant_b
    assert [r["id"] for r in staff["b"].get(LIST, {"checksum": sha256(pdf)}).json()["results"]] == [mine["id"]]
