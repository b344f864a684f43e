"""Behaviour a mutation run found unpinned: each test here kills mutants that survived the rest of the suite.

The run and its survivors are summarised in docs/reliability.md; these are
the survivors that mattered (an invariant, a policy check, a validation).
"""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from django_attachments import services
from django_attachments.exceptions import ContentTypeNotAllowed, InvalidValue
from django_attachments.models import Attachment, Blob, DirectUpload

pytestmark = pytest.mark.django_db


def _start(owners, data, **overrides):
    values = dict(
        owner_type="patient",
        owner_id=owners.alice.pk,
        filename="scan.pdf",
        size=len(data),
        checksum=hashlib.sha256(data).hexdigest(),
    )
    return services.start_upload(**{**values, **overrides})


def test_the_expiry_purge_never_deletes_an_object_a_blob_holds(owners, disk_store, pdf):
    """_delete_upload_objects: an expired ticket whose object a blob references keeps it (the invariant)."""
    upload = _start(owners, pdf).upload
    services.receive_upload(upload, io.BytesIO(pdf), length=len(pdf))
    Blob.objects.create(
        checksum=hashlib.sha256(pdf).hexdigest(),
        size=len(pdf),
        content_type="application/pdf",
        filename="held.pdf",
        storage=disk_store.alias,
        storage_identifiers=upload.storage_identifiers,
        tenant=upload.tenant,
        subject=upload.subject,
    )
    DirectUpload.objects.filter(pk=upload.pk).update(expires_at=timezone.now())
    services.purge_uploads()
    assert not DirectUpload.objects.filter(pk=upload.pk).exists()
    assert disk_store.exists(upload.storage_identifiers)
    assert services.verify_blobs().ok


def test_link_applies_the_global_type_allow_list(owners, disk_store, pdf, settings):
    attachment = services.attach(
        ContentFile(pdf, name="a.pdf"), owner_type="note", owner_id=owners.alice_note.pk, tenant=owners.tenant_a
    )
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOWED_CONTENT_TYPES": ["image/*"]}
    with pytest.raises(ContentTypeNotAllowed):
        services.link(attachment.blob, owner_type="note", owner_id=owners.alice_note2.pk, tenant=owners.tenant_a)
    assert Attachment.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", True), ("size", 1.5), ("size", "12"), ("size", -1), ("size", 2**63), ("checksum", "abc"),
     ("checksum", "g" * 64), ("checksum", 5)],
)  # fmt: skip
def test_start_upload_names_the_bad_field(owners, disk_store, pdf, field, value):
    with pytest.raises(InvalidValue) as refused:
        _start(owners, pdf, **{field: value})
    assert refused.value.field == field
    assert not DirectUpload.objects.exists()


def test_start_upload_checks_a_declared_type_against_the_global_allow_list(owners, disk_store, pdf, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOWED_CONTENT_TYPES": ["application/pdf"]}
    with pytest.raises(ContentTypeNotAllowed):
        _start(owners, pdf, content_type="text/html")
    assert not DirectUpload.objects.exists()


def test_a_ticket_remembers_who_started_it(owners, disk_store, pdf, django_user_model):
    user = django_user_model.objects.create_user("starter")
    upload = _start(owners, pdf, user=user).upload
    assert upload.created_by == user
    services.receive_upload(upload, io.BytesIO(pdf), length=len(pdf))
    attachment = services.complete_upload(upload.pk)
    assert attachment.created_by == user


def test_receive_reads_exactly_the_declared_length(owners, disk_store, pdf):
    upload = _start(owners, pdf).upload
    services.receive_upload(upload, io.BytesIO(pdf + b"trailing bytes"), length=len(pdf))
    attachment = services.complete_upload(upload.pk)
    with services.open_blob(attachment.blob) as stream:
        assert b"".join(stream.chunks()) == pdf
