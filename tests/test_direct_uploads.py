"""Direct uploads through the REST API: start, send the bytes, complete; on disk and on S3 (moto server).

The bytes go where the ticket says, with exactly its headers: to the presigned
S3 URL over real HTTP, or, where the storage cannot sign (local disk), to the
API's own token-signed URL through the test client. Both stores pass the same
tests; the few places where they legitimately differ say so.

A failed completion deletes its object once the transaction commits; tests
that check an object is gone run the completion inside
``django_capture_on_commit_callbacks(execute=True)``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import threading
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient
from storages.backends.s3 import S3Storage

from django_attachments import services
from django_attachments.api.direct import UploadContentView
from django_attachments.conf import app_settings
from django_attachments.models import Attachment, Blob, DirectUpload
from django_attachments.registry import OwnerSpec, attachment_registry
from django_attachments.stores import get_store, register_adapter, unregister_adapter
from django_attachments.stores.s3 import S3Store
from tests.apitools import body, detail, download
from tests.apitools import upload as api_upload
from tests.testapp.owners import resolve_note

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]

UPLOADS = "/api/attachments/uploads/"
TESTSERVER = "http://testserver"
HTML = b"<!DOCTYPE html><html><head><title>x</title></head><body><script>alert(1)</script></body></html>"
NOT_FOUND = {"detail": "Not found.", "code": "not_found"}

disk_only = pytest.mark.parametrize("store_alias", ["disk"], indirect=True)
s3_only = pytest.mark.parametrize("store_alias", ["s3-moto", "s3-seaweedfs"], indirect=True)


# -- helpers -------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ticket_url(pk) -> str:
    return f"{UPLOADS}{pk}/"


def complete_url(pk) -> str:
    return f"{UPLOADS}{pk}/complete/"


def declaration(owner_type, owner_id, data, *, filename="scan.pdf", **fields) -> dict:
    """What a client declares before sending ``data``; ``fields`` add or override (None leaves one out)."""
    payload = {
        "owner_type": owner_type,
        "owner_id": str(owner_id),
        "filename": filename,
        "size": len(data),
        "checksum": sha256(data),
        **fields,
    }
    return {k: v for k, v in payload.items() if v is not None}


def start(client, owner_type, owner_id, data, **fields):
    return client.post(UPLOADS, declaration(owner_type, owner_id, data, **fields), format="json")


def ticket(client, owner_type, owner_id, data, **fields) -> dict:
    """Start an upload whose bytes are unknown: the ticket."""
    response = start(client, owner_type, owner_id, data, **fields)
    assert response.status_code == 201, response.json()
    assert response.json()["attachment"] is None
    return response.json()["upload"]


def send(client, upload, data, *, headers=None, url=None) -> tuple[int, str | None]:
    """PUT ``data`` where the ticket says, with exactly its headers; (status, error code).

    ``headers`` replace some of the ticket's (whatever their case) and ``url``
    its URL. The API's own URL goes through the test client, any other over HTTP.
    """
    overrides = {k.lower() for k in headers or {}}
    sent = {**{k: v for k, v in upload["headers"].items() if k.lower() not in overrides}, **(headers or {})}
    url = url or upload["url"]
    if url.startswith(TESTSERVER + "/"):
        response = client.generic(upload["method"], url[len(TESTSERVER) :], data, headers=sent)
        code = response.json().get("code") if response.status_code >= 400 else None
        return response.status_code, code
    request = urllib.request.Request(url, data=data, method=upload["method"], headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        with error:
            found = re.search(rb"<Code>([^<]*)</Code>", error.read())
        return error.code, found and found.group(1).decode()


def send_ok(client, upload, data, **options) -> None:
    status, code = send(client, upload, data, **options)
    assert status in (200, 204), (status, code)


def complete(client, upload):
    return client.post(upload["complete_url"].removeprefix(TESTSERVER))


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.json()
    assert response.json()["code"] == code, response.json()


def row(upload) -> DirectUpload:
    return DirectUpload.objects.get(pk=upload["id"])


def assert_refused_then_retried(client, store, upload, data) -> None:
    """The storage refused a bad PUT: nothing kept, the ticket open and waiting, and the right bytes complete it."""
    assert names(store) == [] and row(upload).status == "pending"
    assert_error(complete(client, upload), 400, "upload_missing")
    assert not Blob.objects.exists() and not Attachment.objects.exists()
    send_ok(client, upload, data)
    assert complete(client, upload).status_code == 201


def names(store) -> list[str]:
    return sorted(obj.name for obj in store.list())


def reserved(upload) -> str:
    return row(upload).storage_identifiers["name"]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def expire(upload) -> None:
    DirectUpload.objects.filter(pk=upload["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))


def tampered(data: bytes) -> bytes:
    """The same length, one byte changed (past the head, so the type still sniffs the same)."""
    return data[:-2] + bytes([data[-2] ^ 0xFF]) + data[-1:]


# -- 1. the whole flow -----------------------------------------------------------


def test_start_send_complete(staff, owners, store, settings, pdf):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "UPLOAD_EXPIRY": timedelta(minutes=10)}
    response = start(
        staff["a"], "note", owners.alice_note.pk, pdf, filename="Röntgen.pdf", name="xray", description="d",
        content_type="application/pdf",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    assert response.json()["attachment"] is None
    upload = response.json()["upload"]
    assert set(upload) == {
        "id", "status", "owner_type", "owner_id", "name", "description", "filename", "size", "checksum",
        "created_at", "expires_at", "error_code", "error", "method", "url", "headers", "multipart",
        "attachment", "complete_url",
    }  # fmt: skip
    assert upload["status"] == "pending"
    assert (upload["owner_type"], upload["owner_id"]) == ("note", str(owners.alice_note.pk))
    assert (upload["name"], upload["description"], upload["filename"]) == ("xray", "d", "Röntgen.pdf")
    assert (upload["size"], upload["checksum"], upload["error_code"]) == (len(pdf), sha256(pdf), "")
    assert upload["method"] == "PUT"
    assert upload["complete_url"] == f"{TESTSERVER}{UPLOADS}{upload['id']}/complete/"
    expected_expiry = timezone.now() + timedelta(minutes=10)
    assert abs(parse_time(upload["expires_at"]) - expected_expiry) < timedelta(seconds=30)
    headers = {k.lower(): v for k, v in upload["headers"].items()}
    assert headers["content-length"] == str(len(pdf))
    assert headers["content-type"] == "application/octet-stream"
    if store.can_sign_uploads:
        assert not upload["url"].startswith(TESTSERVER)
        query = parse_qs(urlsplit(upload["url"]).query)
        assert abs(int(query["X-Amz-Expires"][0]) - 600) <= 30  # valid as long as the ticket
        assert urlsplit(upload["url"]).path.endswith(reserved(upload))
    else:
        assert upload["url"].startswith(f"{TESTSERVER}{UPLOADS}{upload['id']}/content?token=")
        assert upload["headers"] == {"Content-Length": str(len(pdf)), "Content-Type": "application/octet-stream"}
    again = staff["a"].get(ticket_url(upload["id"])).json()
    if store.can_sign_uploads:  # signed anew on each read: a second later, the signature differs
        signed = ("X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature")
        assert {k: v for k, v in parse_qs(urlsplit(again["url"]).query).items() if k not in signed} == {
            k: v for k, v in parse_qs(urlsplit(upload["url"]).query).items() if k not in signed
        }
        assert urlsplit(again["url"]).path == urlsplit(upload["url"]).path
        again["url"] = upload["url"]
    else:  # the token is signed anew on each read too, with the time: across a second's tick it differs
        token, again_token = (parse_qs(urlsplit(url).query)["token"][0] for url in (upload["url"], again["url"]))
        assert again_token.split(":")[0] == token.split(":")[0]  # the same upload named
        assert again["url"].split("?")[0] == upload["url"].split("?")[0]
        again["url"] = upload["url"]
    assert again == upload
    assert names(store) == []  # nothing written until the client sends

    send_ok(staff["a"], upload, pdf)
    assert names(store) == [reserved(upload)]
    completed = complete(staff["a"], upload)
    assert completed.status_code == 201, completed.json()
    attachment = completed.json()["attachment"]
    assert (attachment["content_type"], attachment["size"], attachment["checksum"]) == (
        "application/pdf", len(pdf), sha256(pdf),
    )  # fmt: skip
    assert (attachment["owner_type"], attachment["owner_id"]) == ("note", str(owners.alice_note.pk))
    assert (attachment["name"], attachment["description"], attachment["filename"]) == ("xray", "d", "Röntgen.pdf")
    closed = completed.json()["upload"]
    assert closed["status"] == "completed" and closed["id"] == upload["id"]
    assert closed["method"] is closed["url"] is closed["headers"] is None
    blob = Blob.objects.get()
    assert blob.storage_identifiers["name"] == reserved(upload)
    assert blob.metadata == {"declared_content_type": "application/pdf", "direct_upload": upload["id"]}
    assert Attachment.objects.get().created_by.username == "anna"
    assert row(upload).attachment_id == uuid.UUID(attachment["id"])
    assert names(store) == [reserved(upload)]
    assert body(staff["a"].get(download(attachment["id"]))) == pdf


def test_an_empty_file(staff, owners, store):
    upload = ticket(staff["a"], "patient", owners.alice.pk, b"", filename="empty.txt")
    assert upload["headers"]["Content-Length"] == "0"
    send_ok(staff["a"], upload, b"")
    completed = complete(staff["a"], upload)
    assert completed.status_code == 201, completed.json()
    assert completed.json()["attachment"]["size"] == 0
    assert body(staff["a"].get(download(completed.json()["attachment"]["id"]))) == b""


# -- 2. known bytes: no upload needed ------------------------------------------------


def test_known_bytes_are_attached_at_once(staff, owners, store, pdf):
    first = api_upload(staff["a"], "note", owners.alice_note.pk, pdf).json()
    objects = names(store)
    response = start(staff["a"], "note", owners.alice_note2.pk, pdf, description="again", filename="second.pdf")
    assert response.status_code == 201, response.json()
    assert response.json()["upload"] is None
    attachment = response.json()["attachment"]
    assert attachment["blob_id"] == first["blob_id"] and attachment["id"] != first["id"]
    assert (attachment["owner_id"], attachment["description"]) == (str(owners.alice_note2.pk), "again")
    assert (first["filename"], attachment["filename"]) == ("scan.pdf", "second.pdf")
    again = start(staff["a"], "note", owners.alice_note2.pk, pdf, description="again")
    assert again.status_code == 200 and again.json()["attachment"]["id"] == attachment["id"]
    assert not DirectUpload.objects.exists()
    assert names(store) == objects and Blob.objects.count() == 1


def test_known_bytes_are_never_shared_across_tenants_or_subjects(staff, owners, store, pdf):
    api_upload(staff["a"], "patient", owners.alice.pk, pdf)
    other_tenant = ticket(staff["b"], "patient", owners.bob.pk, pdf)
    other_subject = ticket(staff["a"], "patient", owners.adam.pk, pdf)
    assert other_tenant["status"] == other_subject["status"] == "pending"
    assert DirectUpload.objects.count() == 2 and Attachment.objects.count() == 1


def test_known_checksum_with_another_size_is_size_mismatch(staff, owners, store, pdf):
    api_upload(staff["a"], "patient", owners.alice.pk, pdf)
    response = start(staff["a"], "patient", owners.alice.pk, pdf, size=len(pdf) + 1)
    assert_error(response, 400, "size_mismatch")
    assert not DirectUpload.objects.exists() and Attachment.objects.count() == 1


def complete_identical_bytes_twice(client, owners, data):
    """Two tickets for the same bytes to two owners of one subject, both sent, completed in turn."""
    first = ticket(client, "note", owners.alice_note.pk, data)
    second = ticket(client, "note", owners.alice_note2.pk, data)
    send_ok(client, first, data)
    send_ok(client, second, data)
    assert complete(client, first).status_code == 201
    return first, second, complete(client, second)


def test_identical_bytes_completed_in_turn_share_one_blob(staff, owners, store, pdf):
    first, second, response = complete_identical_bytes_twice(staff["a"], owners, pdf)
    assert response.status_code == 201, response.json()
    assert Blob.objects.count() == 1 and Attachment.objects.count() == 2
    blob = Blob.objects.get()
    assert response.json()["attachment"]["blob_id"] == str(blob.pk)
    assert blob.storage_identifiers["name"] == reserved(first)
    assert row(second).status == "completed"


def test_surplus_object_of_a_completion_that_found_the_bytes_known_is_deleted(
    staff, owners, store, pdf, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first, _, response = complete_identical_bytes_twice(staff["a"], owners, pdf)
    assert response.status_code == 201
    assert names(store) == [reserved(first)]


# -- 3, 4. bytes that are not what was declared ---------------------------------------


@pytest.mark.parametrize("wrong", ["shorter", "longer"])
def test_another_length_than_declared(staff, owners, store, pdf, wrong, django_capture_on_commit_callbacks):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    body = pdf[:-10] if wrong == "shorter" else pdf + b"trailing"
    # An honest Content-Length for the body sent, which is not the declared size.
    status, code = send(staff["a"], upload, body, headers={"Content-Length": str(len(body))})
    if not store.can_sign_uploads:
        # The API's own URL refuses it before reading a byte, as real S3 refuses a presigned PUT whose
        # signed Content-Length differs: nothing is stored and the ticket stays usable.
        assert (status, code) == (400, "size_mismatch")
        assert names(store) == [] and row(upload).status == "pending"
        send_ok(staff["a"], upload, pdf)
        assert complete(staff["a"], upload).status_code == 201
        return
    if status != 200:
        # S3 refuses a presigned PUT whose Content-Length is not the signed one (test_s3_refusals.py):
        # nothing is stored, completing finds no bytes, and the ticket takes the right ones.
        assert (status, code) == (403, "SignatureDoesNotMatch")
        assert_refused_then_retried(staff["a"], store, upload, pdf)
        return
    # moto checks no signature and takes it: completion must catch it, delete it and fail the ticket.
    assert names(store) == [reserved(upload)]
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(staff["a"], upload)
    assert_error(response, 400, "size_mismatch")
    assert names(store) == [] and not Blob.objects.exists()
    assert (row(upload).status, row(upload).error_code) == ("failed", "size_mismatch")
    again = complete(staff["a"], upload)
    assert_error(again, 400, "size_mismatch")
    assert again.json()["detail"] == response.json()["detail"]
    ticket_now = staff["a"].get(ticket_url(upload["id"])).json()
    assert (ticket_now["status"], ticket_now["error_code"], ticket_now["url"]) == ("failed", "size_mismatch", None)


@disk_only
def test_a_body_that_ends_early_is_not_kept(staff, owners, store, pdf):
    """A client that drops the connection mid-body: nothing is stored, and the ticket takes a retry."""
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    request = RequestFactory().generic(
        "PUT", upload["url"].removeprefix(TESTSERVER), pdf[:20], content_type="application/octet-stream"
    )
    request.META["CONTENT_LENGTH"] = str(len(pdf))  # promised, never delivered
    response = UploadContentView.as_view()(request, pk=upload["id"])
    assert response.status_code == 400 and response.data["code"] == "invalid_file"
    assert names(store) == [] and row(upload).status == "pending"
    send_ok(staff["a"], upload, pdf)
    assert complete(staff["a"], upload).status_code == 201


def test_other_bytes_than_declared(staff, owners, store, pdf, django_capture_on_commit_callbacks):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    # Same length, so every header still holds. S3 checks the signed x-amz-checksum-sha256 and
    # refuses the body (test_s3_refusals.py); moto does not, so the server's own hash must catch it.
    status, code = send(staff["a"], upload, tampered(pdf))
    if status == 400 and code == "BadDigest":
        assert_refused_then_retried(staff["a"], store, upload, pdf)
        return
    assert status in (200, 204), (status, code)
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(staff["a"], upload)
    assert_error(response, 400, "checksum_mismatch")
    assert names(store) == [] and not Blob.objects.exists() and not Attachment.objects.exists()
    assert (row(upload).status, row(upload).error_code) == ("failed", "checksum_mismatch")
    assert_error(complete(staff["a"], upload), 400, "checksum_mismatch")


# -- 5. types ----------------------------------------------------------------------

PDF_OR_IMAGES = OwnerSpec(
    "note",
    resolve_note,
    allowed_names={"", "before", "after", "xray"},
    allowed_content_types={"application/pdf", "image/*"},
)


def test_spoofed_type_is_refused_on_completion(staff, owners, store, django_capture_on_commit_callbacks):
    with attachment_registry.override(PDF_OR_IMAGES):
        upload = ticket(
            staff["a"], "note", owners.alice_note.pk, HTML, filename="x.pdf", content_type="application/pdf"
        )
        send_ok(staff["a"], upload, HTML)
        with django_capture_on_commit_callbacks(execute=True):
            response = complete(staff["a"], upload)
    assert_error(response, 415, "unsupported_file_type")
    assert names(store) == [] and not Blob.objects.exists()
    assert (row(upload).status, row(upload).error_code) == ("failed", "unsupported_file_type")


def test_refused_declared_type_is_415_at_start(staff, owners, store, pdf):
    with attachment_registry.override(PDF_OR_IMAGES):
        response = start(staff["a"], "note", owners.alice_note.pk, HTML, filename="x.html", content_type="text/html")
        assert_error(response, 415, "unsupported_file_type")
        # Parameters do not hide the type.
        response = start(staff["a"], "note", owners.alice_note.pk, HTML, content_type="Text/HTML; charset=utf-8")
        assert_error(response, 415, "unsupported_file_type")
    assert not DirectUpload.objects.exists()


def test_declared_type_is_only_a_hint(staff, owners, store, pdf):
    with attachment_registry.override(PDF_OR_IMAGES):
        upload = ticket(staff["a"], "note", owners.alice_note.pk, pdf, filename="photo.png", content_type="image/png")
        send_ok(staff["a"], upload, pdf)
        response = complete(staff["a"], upload)
    assert response.status_code == 201, response.json()
    assert response.json()["attachment"]["content_type"] == "application/pdf"
    assert Blob.objects.get().metadata["declared_content_type"] == "image/png"


# -- 6. completing again --------------------------------------------------------------


def test_completing_twice_answers_the_same_attachment(staff, owners, store, png):
    upload = ticket(staff["a"], "patient", owners.alice.pk, png, filename="x.png")
    send_ok(staff["a"], upload, png)
    first = complete(staff["a"], upload)
    second = complete(staff["a"], upload)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()
    assert Attachment.objects.count() == 1 and Blob.objects.count() == 1

    assert staff["a"].delete(detail(first.json()["attachment"]["id"])).status_code == 204
    assert_error(complete(staff["a"], upload), 409, "upload_closed")
    assert Attachment.objects.count() == 0


def test_owner_gone_before_completion(staff, owners, store, pdf, django_capture_on_commit_callbacks):
    upload = ticket(staff["a"], "note", owners.alice_note.pk, pdf)
    send_ok(staff["a"], upload, pdf)
    owners.alice_note.delete()
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(staff["a"], upload)
    assert_error(response, 400, "owner_not_found")
    assert names(store) == [] and not Blob.objects.exists() and row(upload).status == "failed"


def test_a_ticket_fails_with_the_code_of_what_failed_it_and_keeps_it(owners, disk_store, pdf):
    # The owner type is retired between start and completion: the ticket records that reason
    # (not a catch-all), and every later completion answers with the same code and status.
    from django_attachments.exceptions import UploadFailed
    from django_attachments.registry import Owner

    attachment_registry.register(OwnerSpec("retired", resolver=lambda owner_id: Owner(tenant="t", subject="s")))
    try:
        started = services.start_upload(
            owner_type="retired", owner_id="1", filename="a.pdf", size=len(pdf), checksum=sha256(pdf)
        )
        services.receive_upload(started.upload, io.BytesIO(pdf), length=len(pdf))
    finally:
        attachment_registry.unregister("retired")
    for _ in range(2):
        with pytest.raises(UploadFailed) as failed:
            services.complete_upload(started.upload.pk)
        assert (failed.value.code, failed.value.status_code) == ("unknown_owner_type", 400)
    assert DirectUpload.objects.get(pk=started.upload.pk).error_code == "unknown_owner_type"


# -- 7. another tenant's ticket -------------------------------------------------------


def test_another_tenants_ticket_does_not_exist_for_them(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    send_ok(staff["a"], upload, pdf)
    b = staff["b"]
    for pk in (upload["id"], uuid.uuid4(), "not-a-uuid"):
        got, completed = b.get(ticket_url(pk)), b.post(complete_url(pk))
        assert (got.status_code, completed.status_code) == (404, 404)
        assert got.json() == completed.json() == NOT_FOUND
    assert (row(upload).status, row(upload).error_code) == ("pending", "")
    assert names(store) == [reserved(upload)]
    assert complete(staff["a"], upload).status_code == 201


@disk_only
def test_owner_hooks_apply_to_tickets(staff, owners, store, pdf):
    hidden = ticket(staff["a"], "note", owners.alice_note.pk, pdf)
    read_only = ticket(staff["a"], "note", owners.alice_note2.pk, pdf)
    spec = OwnerSpec(
        "note",
        resolve_note,
        allowed_names={""},
        can_view=lambda request, owner: owner.instance.pk != owners.alice_note.pk,
        can_attach=lambda request, owner: False,
    )
    with attachment_registry.override(spec):
        assert_error(start(staff["a"], "note", owners.alice_note.pk, pdf), 400, "owner_not_found")
        assert start(staff["a"], "note", owners.alice_note2.pk, pdf).status_code == 403
        assert staff["a"].get(ticket_url(hidden["id"])).json() == NOT_FOUND
        assert staff["a"].post(complete_url(hidden["id"])).json() == NOT_FOUND
        assert staff["a"].get(ticket_url(read_only["id"])).status_code == 200
        assert staff["a"].post(complete_url(read_only["id"])).status_code == 403
    assert set(DirectUpload.objects.values_list("status", flat=True)) == {"pending"}
    assert DirectUpload.objects.count() == 2


def test_anonymous_callers_cannot_start_or_complete(owners, store, pdf):
    anonymous = APIClient()
    response = start(anonymous, "patient", owners.alice.pk, pdf)
    assert response.status_code in (401, 403)
    assert anonymous.post(complete_url(uuid.uuid4())).status_code in (401, 403)
    assert not DirectUpload.objects.exists()


# -- 8, 9. expired, not sent yet ------------------------------------------------------


def test_expired_ticket(staff, owners, store, pdf, django_capture_on_commit_callbacks):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    send_ok(staff["a"], upload, pdf)
    expire(upload)
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(staff["a"], upload)
    assert_error(response, 410, "upload_expired")
    assert names(store) == [] and not Blob.objects.exists()
    assert (row(upload).status, row(upload).error_code) == ("failed", "upload_expired")
    assert_error(complete(staff["a"], upload), 410, "upload_expired")


@disk_only
def test_expired_ticket_takes_no_bytes(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    expire(upload)
    assert send(staff["a"], upload, pdf) == (410, "upload_expired")
    assert names(store) == []


def test_complete_before_sending_keeps_the_ticket_open(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    assert_error(complete(staff["a"], upload), 400, "upload_missing")
    assert (row(upload).status, row(upload).error_code) == ("pending", "")
    send_ok(staff["a"], upload, pdf)
    assert complete(staff["a"], upload).status_code == 201


# -- 10. the API's own upload URL (stores that cannot sign) ------------------------------


@disk_only
def test_upload_url_needs_its_own_valid_token(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    other = ticket(staff["a"], "patient", owners.alice.pk, pdf, description="other")
    path, token = upload["url"].split("?token=")
    tampered_token = token[:-1] + ("A" if token[-1] != "A" else "B")
    other_token = other["url"].split("?token=")[1]
    for url in (path, f"{path}?token=", f"{path}?token=nonsense", f"{path}?token={tampered_token}",
                f"{path}?token={other_token}"):  # fmt: skip
        assert send(APIClient(), upload, pdf, url=url) == (403, "invalid_signature"), url
    assert names(store) == []
    # No credentials needed: the token is the authorisation, as with a presigned URL.
    send_ok(APIClient(), upload, pdf)
    assert send(APIClient(), upload, pdf) == (409, "upload_exists")
    assert names(store) == [reserved(upload)]
    assert complete(staff["a"], upload).status_code == 201
    assert send(APIClient(), upload, pdf) == (409, "upload_closed")


@disk_only
def test_upload_url_of_a_failed_ticket_takes_no_bytes(staff, owners, store, pdf, django_capture_on_commit_callbacks):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    send_ok(staff["a"], upload, tampered(pdf))
    with django_capture_on_commit_callbacks(execute=True):
        assert_error(complete(staff["a"], upload), 400, "checksum_mismatch")
    assert send(APIClient(), upload, pdf) == (409, "upload_closed")
    assert names(store) == []


@disk_only
def test_upload_url_needs_a_content_length(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    # The test client always sends CONTENT_LENGTH with a body: build the request by hand.
    request = RequestFactory().generic(
        "PUT", upload["url"].removeprefix(TESTSERVER), pdf, content_type="application/octet-stream"
    )
    del request.META["CONTENT_LENGTH"]
    response = UploadContentView.as_view()(request, pk=upload["id"])
    assert response.status_code == 411 and response.data["code"] == "length_required"
    for malformed in ("-5", "12x", "1e3"):
        request.META["CONTENT_LENGTH"] = malformed
        response = UploadContentView.as_view()(request, pk=upload["id"])
        assert response.status_code == 400 and response.data["code"] == "parse_error", malformed
    assert names(store) == []


def test_a_second_put_cannot_replace_the_bytes(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    send_ok(staff["a"], upload, pdf)
    status, code = send(staff["a"], upload, tampered(pdf))
    if store.can_sign_uploads:
        assert (status, code) == (412, "PreconditionFailed")  # S3 itself, by the signed If-None-Match: *
    else:
        assert (status, code) == (409, "upload_exists")
    response = complete(staff["a"], upload)
    assert response.status_code == 201, response.json()
    assert body(staff["a"].get(download(response.json()["attachment"]["id"]))) == pdf


# -- 11. S3 specifics ----------------------------------------------------------------------


@s3_only
def test_presigned_put_binds_length_checksum_and_no_overwrite(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    query = parse_qs(urlsplit(upload["url"]).query)
    signed = set(query["X-Amz-SignedHeaders"][0].split(";"))
    assert {"content-length", "if-none-match", "x-amz-checksum-sha256", "host"} <= signed
    assert "content-type" not in signed  # handed out, but any type will do: the stored one is sniffed
    headers = {k.lower(): v for k, v in upload["headers"].items()}
    assert headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(pdf).digest()).decode()
    assert headers["if-none-match"] == "*"
    assert headers["content-length"] == str(len(pdf))
    assert set(headers) - {"content-type"} <= signed  # every other header handed out is signed


def test_object_parameters_are_signed_and_kept(staff, owners, settings, s3_server, pdf):
    bucket = s3_server.make_bucket()
    options = {"object_parameters": {"CacheControl": "max-age=60", "Metadata": {"a": "b"}}}
    settings.STORAGES = {**settings.STORAGES, "attachments": s3_server.backend(bucket, **options)}
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORAGE": "attachments"}
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    headers = {k.lower(): v for k, v in upload["headers"].items()}
    assert (headers["cache-control"], headers["x-amz-meta-a"]) == ("max-age=60", "b")
    signed = set(parse_qs(urlsplit(upload["url"]).query)["X-Amz-SignedHeaders"][0].split(";"))
    assert {"cache-control", "x-amz-meta-a"} <= signed
    send_ok(staff["a"], upload, pdf)
    assert complete(staff["a"], upload).status_code == 201
    identifiers = Blob.objects.get().storage_identifiers
    assert identifiers["bucket"] == bucket
    head = get_store("attachments").client.head_object(Bucket=bucket, Key=identifiers["key"])
    assert (head["CacheControl"], head["Metadata"]) == ("max-age=60", {"a": "b"})


def test_declared_size_beyond_one_presigned_put_goes_in_parts_up_to_5_tib(staff, owners, store, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": None}
    huge = 5 * 1024**3 + 1  # more than one presigned PUT takes
    response = start(staff["a"], "patient", owners.alice.pk, b"", size=huge, checksum="ab" * 32)
    assert response.status_code == 201, response.json()
    upload = response.json()["upload"]
    assert upload["url"] is None and upload["multipart"]["part_size"] == 16 * 1024**2
    assert upload["multipart"]["part_count"] == -(-huge // (16 * 1024**2))

    response = start(staff["a"], "patient", owners.alice.pk, b"", size=5 * 1024**4 + 1, checksum="ab" * 32)
    assert_error(response, 413, "file_too_large")  # S3's largest object
    assert DirectUpload.objects.count() == 1


# -- 12. purge --------------------------------------------------------------------------


def test_purge_removes_expired_tickets_with_their_objects(staff, owners, store, pdf, png):
    expired = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    live = ticket(staff["a"], "patient", owners.alice.pk, png, filename="x.png")
    send_ok(staff["a"], expired, pdf)
    send_ok(staff["a"], live, png)
    expire(expired)
    before = names(store)

    dry = services.purge_uploads(dry_run=True)
    assert (dry.found, dry.removed, dry.dry_run) == (1, 0, True)
    assert names(store) == before and DirectUpload.objects.count() == 2

    result = services.purge_uploads()
    assert (result.found, result.removed, result.failures) == (1, 1, [])
    assert list(DirectUpload.objects.values_list("pk", flat=True)) == [uuid.UUID(live["id"])]
    assert names(store) == [reserved(live)]
    assert complete(staff["a"], live).status_code == 201


def test_purge_removes_expired_tickets_never_sent(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    expire(upload)
    result = services.purge_uploads()
    assert (result.found, result.removed, result.failures) == (1, 1, [])
    assert not DirectUpload.objects.exists()


def test_pending_tickets_objects_are_not_stray(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    send_ok(staff["a"], upload, pdf)
    stray = store.save(File(io.BytesIO(b"stray")), size=5, checksum=sha256(b"stray"), content_type="text/plain")
    assert names(store) == sorted([reserved(upload), stray["name"]])
    result = services.purge_strays(older_than=timedelta(0), allow_young=True)
    assert (result.found, result.removed, result.failures) == (1, 1, [])
    assert names(store) == [reserved(upload)]
    assert complete(staff["a"], upload).status_code == 201


def test_purge_keeps_closed_tickets_for_the_grace_period(
    staff, owners, store, pdf, png, django_capture_on_commit_callbacks
):
    done_old = ticket(staff["a"], "note", owners.alice_note.pk, pdf)
    failed_old = ticket(staff["a"], "note", owners.alice_note2.pk, png, filename="x.png")
    young = b"young " * 20
    done_young = ticket(staff["a"], "patient", owners.alice.pk, young, filename="young.txt")
    for upload, data in ((done_old, pdf), (failed_old, png), (done_young, young)):
        send_ok(staff["a"], upload, data)
    owners.alice_note2.delete()  # the owner is gone before completion: that ticket fails
    for upload in (done_old, failed_old, done_young):
        with django_capture_on_commit_callbacks(execute=True):
            complete(staff["a"], upload)
    assert [row(u).status for u in (done_old, failed_old, done_young)] == ["completed", "failed", "completed"]
    DirectUpload.objects.filter(pk__in=[done_old["id"], failed_old["id"]]).update(
        completed_at=timezone.now() - timedelta(days=2)
    )
    assert services.purge_uploads(dry_run=True).found == 2 and DirectUpload.objects.count() == 3
    kept = sorted(reserved(u) for u in (done_old, done_young))
    result = services.purge_uploads()
    assert (result.found, result.removed) == (2, 2)
    assert list(DirectUpload.objects.values_list("pk", flat=True)) == [uuid.UUID(done_young["id"])]
    assert Attachment.objects.count() == 2 and names(store) == kept
    assert services.purge_uploads(older_than=timedelta(0)).removed == 1
    assert not DirectUpload.objects.exists() and Attachment.objects.count() == 2


def test_purge_command_reports_uploads(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    send_ok(staff["a"], upload, pdf)
    expire(upload)

    def run(*args):
        out = io.StringIO()
        call_command("purge_orphan_attachments", "--json", *args, stdout=out, stderr=io.StringIO())
        return json.loads(out.getvalue())

    dry = run("--dry-run")
    assert dry["uploads"]["kind"] == "uploads" and (dry["uploads"]["found"], dry["uploads"]["removed"]) == (1, 0)
    assert DirectUpload.objects.exists() and names(store) == [reserved(upload)]
    done = run()
    assert done["ok"] and (done["uploads"]["found"], done["uploads"]["removed"]) == (1, 1)
    assert not DirectUpload.objects.exists() and names(store) == []


# -- 13. validation at start ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"size": -1}, "size"),
        ({"size": "12"}, "size"),
        ({"size": True}, "size"),
        ({"size": 1.5}, "size"),
        ({"size": None}, "size"),
        ({"checksum": "zz" * 32}, "checksum"),
        ({"checksum": "ab" * 31}, "checksum"),
        ({"checksum": "ab" * 33}, "checksum"),
        ({"checksum": None}, "checksum"),
        ({"filename": None}, "filename"),
        ({"filename": 12}, "filename"),
        ({"owner_type": "invoice"}, "owner_type"),
        ({"owner_type": None}, "owner_type"),
        ({"owner_id": None}, "owner_id"),
        ({"owner_id": 12}, "owner_id"),
        ({"content_type": 12}, "content_type"),
        ({"name": "selfie"}, "name"),
    ],
    ids=lambda value: ",".join(f"{k}={v!r}" for k, v in value.items()) if isinstance(value, dict) else value,
)
def test_bad_declarations_are_400_naming_the_field(staff, owners, pdf, fields, field):
    payload = {**declaration("note", owners.alice_note.pk, pdf), **fields}
    response = staff["a"].post(UPLOADS, {k: v for k, v in payload.items() if v is not None}, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert "code" in response.json()
    assert not DirectUpload.objects.exists()


def test_start_body_must_be_a_json_object(staff, owners):
    assert staff["a"].post(UPLOADS, [1, 2], format="json").status_code == 400
    assert staff["a"].post(UPLOADS, "not json", content_type="application/json").status_code == 400
    assert not DirectUpload.objects.exists()


def test_missing_owner_and_other_tenants_owner_look_the_same(staff, owners, pdf):
    missing = start(staff["a"], "patient", 999999, pdf)
    foreign = start(staff["a"], "patient", owners.bob.pk, pdf)
    assert missing.status_code == foreign.status_code == 400
    assert missing.json()["code"] == foreign.json()["code"] == "owner_not_found"
    assert missing.json()["owner_id"][0].replace("999999", "N") == foreign.json()["owner_id"][0].replace(
        str(owners.bob.pk), "N"
    )
    assert not DirectUpload.objects.exists()


def test_declared_size_over_a_limit_is_413(staff, owners, settings, pdf):
    with attachment_registry.override(OwnerSpec("note", resolve_note, max_size=len(pdf) - 1)):
        assert_error(start(staff["a"], "note", owners.alice_note.pk, pdf), 413, "file_too_large")
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": len(pdf) - 1}
    assert_error(start(staff["a"], "patient", owners.alice.pk, pdf), 413, "file_too_large")
    assert not DirectUpload.objects.exists()
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": len(pdf)}
    assert start(staff["a"], "patient", owners.alice.pk, pdf).status_code == 201  # the limit is inclusive


def test_empty_file_when_empty_files_are_refused(staff, owners, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOW_EMPTY_FILES": False}
    response = start(staff["a"], "patient", owners.alice.pk, b"")
    assert_error(response, 400, "invalid_file")
    assert "size" in response.json()  # the declared size is what is wrong: there is no "file" field here
    assert not DirectUpload.objects.exists()


# -- 14. concurrent completions (PostgreSQL) ---------------------------------------------------

needs_postgres = pytest.mark.skipif(
    not os.environ.get("DJANGO_ATTACHMENTS_TEST_PG"), reason="needs PostgreSQL (run under tests.pgcluster)"
)


def at_once(*calls):
    """Run ``calls`` in threads released together, each with its own connection; their results."""
    barrier = threading.Barrier(len(calls), timeout=30)
    results: list = [None] * len(calls)
    errors: list = []

    def worker(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    if errors:
        raise errors[0]
    return results


def completer(username, upload):
    """A call that completes ``upload`` as ``username`` through its own API client."""
    user = get_user_model().objects.get(username=username)

    def call():
        client = APIClient()
        client.force_authenticate(user)
        response = complete(client, upload)
        return response.status_code, response.json()

    return call


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", range(5))
def test_identical_bytes_completed_at_once_make_one_blob(staff, owners, store, run):
    data = os.urandom(50_000)
    first = ticket(staff["a"], "note", owners.alice_note.pk, data, filename="a.bin")
    second = ticket(staff["a"], "note", owners.alice_note2.pk, data, filename="b.bin")
    send_ok(staff["a"], first, data)
    send_ok(staff["a"], second, data)
    answers = at_once(completer("anna", first), completer("anna", second))
    assert [status for status, _ in answers] == [201, 201], answers
    assert Blob.objects.count() == 1 and Attachment.objects.count() == 2
    assert {answer["attachment"]["blob_id"] for _, answer in answers} == {str(Blob.objects.get().pk)}
    assert set(DirectUpload.objects.values_list("status", flat=True)) == {"completed"}
    assert names(store) == [Blob.objects.get().storage_identifiers["name"]]  # the loser's object is deleted


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", range(5))
def test_one_ticket_completed_twice_at_once(staff, owners, store, run):
    data = os.urandom(50_000)
    upload = ticket(staff["a"], "patient", owners.alice.pk, data, filename="a.bin")
    send_ok(staff["a"], upload, data)
    answers = at_once(completer("anna", upload), completer("anna", upload))
    assert sorted(status for status, _ in answers) == [200, 201], answers
    assert answers[0][1]["attachment"]["id"] == answers[1][1]["attachment"]["id"]
    assert Blob.objects.count() == 1 and Attachment.objects.count() == 1
    assert names(store) == [reserved(upload)]


# -- S3's own checksum ----------------------------------------------------------------------------


class ReportingClient:
    """The store's boto3 client, with HeadObject answering as S3 does for an object sent with its SHA-256.

    moto keeps no checksum; S3 verifies the one sent with the bytes and then
    reports it (``ChecksumMode=ENABLED``). Here it is computed once from the
    object moto holds.
    """

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def head_object(self, **params):
        response = self._client.head_object(**params)
        held = self._client.get_object(Bucket=params["Bucket"], Key=params["Key"])["Body"].read()
        response["ChecksumSHA256"] = base64.b64encode(hashlib.sha256(held).digest()).decode()
        response["ChecksumType"] = "FULL_OBJECT"
        return response


class ReportingS3Store(S3Store):
    """S3Store over :class:`ReportingClient`, counting the reads completion makes."""

    reads: list[tuple[int, int | None]] = []

    @property
    def client(self):
        return ReportingClient(super().client)

    def open(self, identifiers, *, start=0, end=None):
        self.reads.append((start, end))
        return super().open(identifiers, start=start, end=end)


@pytest.fixture
def reporting_s3(store):
    ReportingS3Store.reads = []
    unregister_adapter(S3Storage)
    register_adapter(S3Storage, ReportingS3Store)
    try:
        yield get_store(store.alias)
    finally:
        unregister_adapter(S3Storage)
        register_adapter(S3Storage, S3Store)


@s3_only
def test_a_checksum_the_store_reports_spares_reading_the_object(staff, owners, store, reporting_s3, pdf):
    data = pdf + os.urandom(3 * app_settings.SNIFF_BYTES)
    upload = ticket(staff["a"], "patient", owners.alice.pk, data)
    send_ok(staff["a"], upload, data)
    response = complete(staff["a"], upload)
    assert response.status_code == 201, response.json()
    # Only the head, for the type: the SHA-256 came from the store.
    assert ReportingS3Store.reads == [(0, app_settings.SNIFF_BYTES - 1)]
    assert response.json()["attachment"]["content_type"] == "application/pdf"


@s3_only
def test_a_store_whose_checksums_are_not_trusted_is_read_in_full(staff, owners, store, reporting_s3, pdf):
    ReportingS3Store.trust_reported_checksums = False
    try:
        upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
        send_ok(staff["a"], upload, pdf)
        assert complete(staff["a"], upload).status_code == 201
    finally:
        del ReportingS3Store.trust_reported_checksums
    assert ReportingS3Store.reads == [(0, None)]  # the whole object, through SHA-256
