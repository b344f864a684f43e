"""Read-only admin pages for blobs and attachments."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_attachments import services
from django_attachments.models import Attachment, Blob

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(owners, store, png, pdf):
    services.attach(png, owner_type="note", owner_id=owners.alice_note.pk, name="xray")
    services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    return owners


def test_blob_changelist_search_and_detail(admin_client, data, pdf):
    import hashlib

    checksum = hashlib.sha256(pdf).hexdigest()
    url = reverse("admin:django_attachments_blob_changelist")
    response = admin_client.get(url, {"q": checksum})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    blob = Blob.objects.get(checksum=checksum)
    detail = admin_client.get(reverse("admin:django_attachments_blob_change", args=[blob.pk]))
    assert detail.status_code == 200 and checksum.encode() in detail.content


def test_attachment_changelist_filters(admin_client, data):
    url = reverse("admin:django_attachments_attachment_changelist")
    assert admin_client.get(url, {"owner_type": "note"}).context["cl"].result_count == 1
    assert admin_client.get(url).context["cl"].result_count == 2


def test_admin_cannot_add_change_or_delete(admin_client, data):
    assert admin_client.get(reverse("admin:django_attachments_blob_add")).status_code == 403
    attachment = Attachment.objects.first()
    response = admin_client.post(
        reverse("admin:django_attachments_attachment_delete", args=[attachment.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Attachment.objects.filter(pk=attachment.pk).exists()


def test_direct_upload_changelist_and_detail(admin_client, owners, store, pdf):
    import hashlib

    started = services.start_upload(
        owner_type="note", owner_id=owners.alice_note.pk, filename="scan.pdf", size=len(pdf),
        checksum=hashlib.sha256(pdf).hexdigest(),
    )  # fmt: skip
    url = reverse("admin:django_attachments_directupload_changelist")
    response = admin_client.get(url, {"status__exact": "pending"})
    assert response.status_code == 200 and response.context["cl"].result_count == 1
    assert admin_client.get(url, {"status__exact": "failed"}).context["cl"].result_count == 0
    detail = admin_client.get(reverse("admin:django_attachments_directupload_change", args=[started.upload.pk]))
    assert detail.status_code == 200 and b"scan.pdf" in detail.content
    assert admin_client.get(reverse("admin:django_attachments_directupload_add")).status_code == 403
