"""A checksum (or a blob id) is no capability: knowing a file's hash gets nobody its bytes.

The direct-upload shortcut ("these bytes are known: linked at once") and
links by ``blob_id`` take an existing blob only when the caller may already
view an attachment of it. Otherwise the shortcut asks for the bytes — and
says nothing about the known blob (its size or type) — and completion links
the blob once the bytes are verified; a link by id is "not found".
"""

from __future__ import annotations

import hashlib

import pytest

from django_attachments.models import Attachment, Blob, DirectUpload
from django_attachments.registry import OwnerSpec, attachment_registry
from tests.apitools import LIST, upload
from tests.testapp.models import Note
from tests.testapp.owners import resolve_note

pytestmark = pytest.mark.django_db

UPLOADS = "/api/attachments/uploads/"


@pytest.fixture
def hidden(staff, owners, store, pdf):
    """A PDF attached to a secret note of Alice, which a can_view hook hides from everyone."""
    secret = Note.objects.create(patient=owners.alice, text="secret")
    assert upload(staff["a"], "note", secret.pk, pdf).status_code == 201
    spec = OwnerSpec(
        "note",
        resolve_note,
        allowed_names={"", "xray"},
        can_view=lambda request, owner: owner.instance.text != "secret",
    )
    with attachment_registry.override(spec):
        yield Blob.objects.get()


def start(client, owner_id, data, *, size=None, owner_type="note"):
    return client.post(
        UPLOADS,
        {
            "owner_type": owner_type,
            "owner_id": str(owner_id),
            "filename": "guess.pdf",
            "size": len(data) if size is None else size,
            "checksum": hashlib.sha256(data).hexdigest(),
        },
        format="json",
    )


def put_and_complete(client, ticket, data):
    from urllib.parse import urlsplit

    url = urlsplit(ticket["url"])
    if ticket["url"].startswith("http://testserver"):
        response = client.generic("PUT", f"{url.path}?{url.query}", data, content_type="application/octet-stream")
        assert response.status_code == 204, response.content
    else:  # S3: a presigned PUT straight to the server
        import urllib.request

        request = urllib.request.Request(ticket["url"], data=data, method="PUT", headers=ticket["headers"])
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 200
    return client.post(urlsplit(ticket["complete_url"]).path)


def test_a_known_checksum_of_a_hidden_file_opens_a_ticket(staff, owners, hidden, pdf):
    """The caller sees alice_note but not the secret note: the shortcut would leak the secret PDF."""
    response = start(staff["a"], owners.alice_note.pk, pdf)
    assert response.status_code == 201, response.json()
    assert response.json()["attachment"] is None and response.json()["upload"] is not None
    assert Attachment.objects.filter(owner_id=str(owners.alice_note.pk)).count() == 0


def test_the_refused_shortcut_tells_nothing_of_the_known_file(staff, owners, hidden, pdf):
    """Another size than the known blob's is no 'size_mismatch' (that would confirm the hash is known)."""
    response = start(staff["a"], owners.alice_note.pk, pdf, size=len(pdf) + 1)
    assert response.status_code == 201 and response.json()["upload"] is not None


@pytest.mark.all_s3_servers  # the bytes go to the presigned URL: the server decides what is kept
def test_sending_the_bytes_then_links_the_known_blob(staff, owners, hidden, pdf):
    ticket = start(staff["a"], owners.alice_note.pk, pdf).json()["upload"]
    done = put_and_complete(staff["a"], ticket, pdf)
    assert done.status_code == 201, done.json()
    assert Blob.objects.count() == 1  # deduplicated at completion, once the bytes were verified
    assert Attachment.objects.filter(owner_id=str(owners.alice_note.pk), blob=hidden).exists()
    assert DirectUpload.objects.get().status == DirectUpload.COMPLETED


@pytest.mark.all_s3_servers  # the bytes go to the presigned URL: the server decides what is kept
def test_wrong_bytes_for_a_known_checksum_link_nothing(staff, owners, hidden, pdf):
    ticket = start(staff["a"], owners.alice_note.pk, pdf).json()["upload"]
    forged = pdf[:-1] + b"!"
    from urllib.parse import urlsplit

    if ticket["url"].startswith("http://testserver"):
        url = urlsplit(ticket["url"])
        staff["a"].generic("PUT", f"{url.path}?{url.query}", forged, content_type="application/octet-stream")
    else:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(ticket["url"], data=forged, method="PUT", headers=ticket["headers"])
        try:
            urllib.request.urlopen(request).close()
        except urllib.error.HTTPError:
            pass  # a real S3 refuses bytes that do not match the signed checksum
    done = staff["a"].post(urlsplit(ticket["complete_url"]).path)
    assert done.status_code == 400 and done.json()["code"] in ("checksum_mismatch", "upload_missing")
    assert not Attachment.objects.filter(owner_id=str(owners.alice_note.pk)).exists()


def test_the_shortcut_holds_when_the_caller_sees_an_attachment_of_the_blob(staff, owners, store, pdf):
    assert upload(staff["a"], "note", owners.alice_note.pk, pdf).status_code == 201
    response = start(staff["a"], owners.alice_note2.pk, pdf)
    assert response.status_code == 201 and response.json()["attachment"] is not None
    assert response.json()["upload"] is None


def test_the_shortcut_holds_through_a_hooked_owner_the_caller_may_view(staff, owners, store, pdf):
    assert upload(staff["a"], "note", owners.alice_note.pk, pdf).status_code == 201
    spec = OwnerSpec("note", resolve_note, allowed_names={"", "xray"}, can_view=lambda request, owner: True)
    with attachment_registry.override(spec):
        response = start(staff["a"], owners.alice_note2.pk, pdf)
    assert response.json()["attachment"] is not None


def test_an_orphan_blob_is_not_linked_by_checksum(staff, owners, store, pdf):
    from django_attachments import services

    created = upload(staff["a"], "note", owners.alice_note.pk, pdf).json()
    services.unlink(Attachment.objects.get(pk=created["id"]))
    response = start(staff["a"], owners.alice_note2.pk, pdf)
    assert response.json()["attachment"] is None and response.json()["upload"] is not None


def test_a_blob_id_of_a_hidden_file_is_not_found(staff, owners, hidden):
    response = staff["a"].post(
        LIST,
        {"blob_id": str(hidden.pk), "owner_type": "note", "owner_id": str(owners.alice_note.pk)},
        format="json",
    )
    assert response.status_code == 404 and response.json()["code"] == "blob_not_found"
    missing = staff["a"].post(
        LIST,
        {
            "blob_id": "00000000-0000-0000-0000-000000000000",
            "owner_type": "note",
            "owner_id": str(owners.alice_note.pk),
        },
        format="json",
    )
    assert missing.json() == {**response.json(), "detail": missing.json()["detail"]}
    assert Attachment.objects.count() == 1


def test_a_visible_blob_id_still_links(staff, owners, store, pdf):
    created = upload(staff["a"], "note", owners.alice_note.pk, pdf).json()
    response = staff["a"].post(
        LIST,
        {"blob_id": created["blob_id"], "owner_type": "note", "owner_id": str(owners.alice_note2.pk)},
        format="json",
    )
    assert response.status_code == 201


def test_python_callers_keep_the_shortcut(owners, hidden, pdf):
    from django_attachments import services

    started = services.start_upload(
        owner_type="patient",
        owner_id=str(owners.alice.pk),
        filename="x.pdf",
        size=len(pdf),
        checksum=hashlib.sha256(pdf).hexdigest(),
        tenant=owners.tenant_a,
    )
    assert started.attachment is not None and started.attachment.blob == hidden
