"""An owner that moves between a direct upload's start and its completion.

The ticket records the owner's tenant and subject when the upload starts;
completion resolves the owner again and refuses bytes for an owner that now
belongs to another subject (a note moved to another patient) or another
tenant (a patient moved to another clinic): ``owner_mismatch``, or, for a
caller of the old tenant who can no longer see the owner, ``owner_not_found``.
Either way the ticket fails, its object is deleted, and no blob or attachment
exists. Through the services and through the API, on disk and on S3.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from rest_framework.test import APIClient

from django_attachments import services
from django_attachments.exceptions import UploadFailed, UploadNotFound
from django_attachments.models import Attachment, Blob, DirectUpload
from tests.apitools import LIST
from tests.test_direct_uploads import assert_error, complete, names, row, send_ok, ticket
from tests.testapp.models import Chart, Note, Patient

pytestmark = pytest.mark.django_db


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sent_ticket(owner_type, owner_id, data, *, tenant) -> DirectUpload:
    """A direct upload started as ``tenant``, its bytes received, not yet completed."""
    started = services.start_upload(
        owner_type=owner_type,
        owner_id=owner_id,
        filename="scan.pdf",
        size=len(data),
        checksum=sha256(data),
        tenant=tenant,
    )
    upload = started.upload
    assert upload is not None and started.attachment is None
    services.receive_upload(upload, io.BytesIO(data), length=len(data))
    upload.refresh_from_db()
    assert upload.received_checksum == sha256(data)
    return upload


def complete_fails(upload, tenant, code, capture) -> None:
    with capture(execute=True), pytest.raises(UploadFailed) as failed:
        services.complete_upload(upload.pk, tenant=tenant)
    assert failed.value.code == code, failed.value


def assert_refused(upload, store, code) -> None:
    """The ticket failed with ``code``; no blob, no attachment, and its object is gone."""
    upload.refresh_from_db()
    assert (upload.status, upload.error_code) == (DirectUpload.FAILED, code)
    assert upload.attachment is None
    assert not Blob.objects.exists() and not Attachment.objects.exists()
    assert not store.exists(upload.storage_identifiers)
    assert list(store.list()) == []


# -- through the services ------------------------------------------------------------


@pytest.mark.parametrize("as_tenant", [True, False], ids=["tenant", "trusted"])
def test_note_moved_to_another_patient(owners, store, pdf, as_tenant, django_capture_on_commit_callbacks):
    tenant = owners.tenant_a if as_tenant else None
    upload = sent_ticket("note", owners.alice_note.pk, pdf, tenant=tenant)
    assert (upload.tenant, upload.subject) == (owners.tenant_a, str(owners.alice.pk))
    Note.objects.filter(pk=owners.alice_note.pk).update(patient=owners.adam)  # same clinic, another subject
    complete_fails(upload, tenant, "owner_mismatch", django_capture_on_commit_callbacks)
    assert_refused(upload, store, "owner_mismatch")
    complete_fails(upload, tenant, "owner_mismatch", django_capture_on_commit_callbacks)  # answered again
    # Moving the note back does not revive a failed ticket.
    Note.objects.filter(pk=owners.alice_note.pk).update(patient=owners.alice)
    complete_fails(upload, tenant, "owner_mismatch", django_capture_on_commit_callbacks)
    assert_refused(upload, store, "owner_mismatch")


def move_to_clinic_b(owners, owner_type):
    """Move the owner to clinic B, keeping its subject string: (owner_type, owner_id)."""
    if owner_type == "chart":  # the subject is the clinic's own number, "1" in either clinic
        chart = Chart.objects.create(clinic=owners.clinic_a, number="1")
        return owner_type, chart.pk, lambda: Chart.objects.filter(pk=chart.pk).update(clinic=owners.clinic_b)
    owner_id = owners.alice.pk if owner_type == "patient" else owners.alice_note.pk
    return owner_type, owner_id, lambda: Patient.objects.filter(pk=owners.alice.pk).update(clinic=owners.clinic_b)


@pytest.mark.parametrize("owner_type", ["patient", "note", "chart"])
@pytest.mark.parametrize(
    "caller, code",
    [("trusted", "owner_mismatch"), ("old tenant", "owner_not_found")],
)
def test_owner_moved_to_another_tenant(
    owners, store, pdf, owner_type, caller, code, django_capture_on_commit_callbacks
):
    owner_type, owner_id, move = move_to_clinic_b(owners, owner_type)
    upload = sent_ticket(owner_type, owner_id, pdf, tenant=owners.tenant_a)
    subject = upload.subject
    move()
    _, owner = services.resolve_owner(owner_type, owner_id)
    assert (owner.tenant, owner.subject) == (owners.tenant_b, subject)  # only the tenant changed
    # The new tenant cannot see the ticket at all, and cannot close it.
    with pytest.raises(UploadNotFound):
        services.complete_upload(upload.pk, tenant=owners.tenant_b)
    upload.refresh_from_db()
    assert upload.status == DirectUpload.PENDING and store.exists(upload.storage_identifiers)
    tenant = None if caller == "trusted" else owners.tenant_a
    complete_fails(upload, tenant, code, django_capture_on_commit_callbacks)
    assert_refused(upload, store, code)


# -- through the API ------------------------------------------------------------------


@pytest.mark.usefixtures("tenant_resolver")
def test_api_note_moved_to_another_patient(staff, owners, store, pdf, django_capture_on_commit_callbacks):
    upload = ticket(staff["a"], "note", owners.alice_note.pk, pdf)
    send_ok(staff["a"], upload, pdf)
    Note.objects.filter(pk=owners.alice_note.pk).update(patient=owners.adam)
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(staff["a"], upload)
    assert_error(response, 400, "owner_mismatch")
    assert (row(upload).status, row(upload).error_code) == ("failed", "owner_mismatch")
    assert_error(complete(staff["a"], upload), 400, "owner_mismatch")
    assert names(store) == [] and not Blob.objects.exists() and not Attachment.objects.exists()
    assert staff["a"].get(LIST).json()["count"] == 0


@pytest.mark.usefixtures("tenant_resolver")
def test_api_patient_moved_to_another_clinic(staff, owners, store, pdf, django_capture_on_commit_callbacks):
    upload = ticket(staff["a"], "note", owners.alice_note.pk, pdf)
    send_ok(staff["a"], upload, pdf)
    Patient.objects.filter(pk=owners.alice.pk).update(clinic=owners.clinic_b)
    assert_error(complete(staff["b"], upload), 404, "not_found")  # B never saw the ticket
    assert row(upload).status == "pending" and len(names(store)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(staff["a"], upload)
    assert_error(response, 400, "owner_not_found")  # A no longer sees the owner
    assert (row(upload).status, row(upload).error_code) == ("failed", "owner_not_found")
    assert names(store) == [] and not Blob.objects.exists() and not Attachment.objects.exists()
    assert staff["a"].get(LIST).json()["count"] == staff["b"].get(LIST).json()["count"] == 0


def test_api_without_tenants_refuses_an_owner_moved_to_another_clinic(
    owners, store, pdf, django_user_model, django_capture_on_commit_callbacks
):
    """With no TENANT_RESOLVER every caller is trusted: only the ticket's own tenant check is left."""
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("solo"))
    upload = ticket(client, "patient", owners.alice.pk, pdf)
    send_ok(client, upload, pdf)
    Patient.objects.filter(pk=owners.alice.pk).update(clinic=owners.clinic_b)
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(client, upload)
    assert_error(response, 400, "owner_mismatch")
    assert (row(upload).status, row(upload).error_code) == ("failed", "owner_mismatch")
    assert names(store) == [] and not Blob.objects.exists() and not Attachment.objects.exists()
