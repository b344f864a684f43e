"""One availability rule for every read path: a blob held back is never served, linked or deduplicated against.

Every blob is available until the processing pipeline holds some back (not yet
scanned, infected). These tests hold one back through ``Blob.is_available``,
the one place the rule lives, and check that each path asks it: a path that
went around it would serve, link or reuse the held blob and fail here.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from django.urls import reverse

from django_attachments import services
from django_attachments.exceptions import BlobUnavailable, UploadFailed
from django_attachments.models import Attachment, Blob
from tests.apitools import LIST, download, upload

pytestmark = pytest.mark.django_db  # the API tests get a tenant resolver through ``staff``


@pytest.fixture
def held(owners, disk_store, pdf, monkeypatch):
    """A blob of clinic A's patient Alice that the availability rule holds back."""
    attachment = services.attach(pdf, owner_type="note", owner_id=owners.alice_note.pk)
    held_id = attachment.blob_id
    monkeypatch.setattr(Blob, "is_available", property(lambda blob: blob.pk != held_id))
    return attachment


def test_a_held_blob_is_not_downloaded(staff, held):
    response = staff["a"].get(download(held.pk))
    assert response.status_code == 409 and response.json()["code"] == "blob_unavailable"


def test_a_held_blob_is_not_redirected_to(staff, held, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "DOWNLOAD_MODE": "redirect"}
    response = staff["a"].get(download(held.pk))
    assert response.status_code == 409 and response.json()["code"] == "blob_unavailable"


def test_a_held_blob_is_not_downloaded_in_the_admin(admin_client, owners, held):
    url = reverse("admin:testapp_note_attachments_download", args=[owners.alice_note.pk, held.pk])
    response = admin_client.get(url)
    assert response.status_code == 409 and b"not available" in response.content
    blob_page = admin_client.get(reverse("admin:django_attachments_blob_download", args=[held.blob_id]))
    assert blob_page.status_code == 409


def test_a_held_blob_is_not_linked(staff, owners, held):
    payload = {"blob_id": str(held.blob_id), "owner_type": "patient", "owner_id": str(owners.alice.pk)}
    response = staff["a"].post(LIST, payload, format="json")
    assert response.status_code == 409 and response.json()["code"] == "blob_unavailable"
    with pytest.raises(BlobUnavailable):
        services.link(held.blob, owner_type="patient", owner_id=owners.alice.pk)
    assert Attachment.objects.count() == 1


def test_the_same_bytes_are_not_deduplicated_against_a_held_blob(staff, owners, held, pdf):
    response = upload(staff["a"], "note", owners.alice_note2.pk, pdf)
    assert response.status_code == 409 and response.json()["code"] == "blob_unavailable"
    with pytest.raises(BlobUnavailable):
        services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    assert (Blob.objects.count(), Attachment.objects.count()) == (1, 1)
    with services.open_blob(held.blob) as stream:  # the held bytes stay
        assert b"".join(stream.chunks()) == pdf


def test_known_bytes_of_a_held_blob_are_not_linked_by_checksum(owners, held, pdf):
    with pytest.raises(BlobUnavailable):
        services.start_upload(
            owner_type="patient",
            owner_id=owners.alice.pk,
            filename="again.pdf",
            size=len(pdf),
            checksum=hashlib.sha256(pdf).hexdigest(),
        )


def test_a_direct_upload_of_the_same_bytes_fails_on_completion(owners, held, pdf):
    # A caller who may not use the known blob sends the bytes; completion then meets the held blob.
    started = services.start_upload(
        owner_type="patient",
        owner_id=owners.alice.pk,
        filename="again.pdf",
        size=len(pdf),
        checksum=hashlib.sha256(pdf).hexdigest(),
        may_use_known=lambda blob: False,
    )
    services.receive_upload(started.upload, io.BytesIO(pdf), length=len(pdf))
    with pytest.raises(UploadFailed) as failed:
        services.complete_upload(started.upload.pk)
    assert (failed.value.code, failed.value.status_code) == ("blob_unavailable", 409)
    assert (Blob.objects.count(), Attachment.objects.count()) == (1, 1)


def test_an_available_blob_is_served_and_reused(staff, owners, disk_store, pdf):
    first = upload(staff["a"], "note", owners.alice_note.pk, pdf)
    second = upload(staff["a"], "note", owners.alice_note2.pk, pdf)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["blob_id"] == second.json()["blob_id"]
    assert staff["a"].get(download(first.json()["id"])).status_code == 200
