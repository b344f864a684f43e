"""No request body past what an endpoint takes is ever read, parsed or spooled.

Whatever the verb, the spelling of the ``Content-Type``, the authentication
(token-like forced authentication, or a browser session whose CSRF check
reads ``request.POST`` first), a body declared larger than the upload limit
(plus room for form fields) is answered 413 before a byte of it is read, and
endpoints that take no file refuse multipart bodies before parsing them. The
body here is generated as it is read and counts what the server took.

Also: browser sessions upload and link with CSRF enforced, as a browser does
it (log in, take the CSRF token, post multipart).
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from django_attachments.models import Attachment, Blob, DirectUpload
from django_attachments.uploadhandlers import FORM_ALLOWANCE
from tests.apitools import LIST, detail, upload

pytestmark = pytest.mark.django_db

LIMIT = 1024 * 1024
HUGE = 1024**3
BOUNDARY = "x-boundary-x"


class CountingBody:
    """A request body of ``size`` bytes made as it is read: a multipart form with one file, then filler."""

    def __init__(self, size: int, *, owner_id: str, head: bytes = b"") -> None:
        self.size = size
        self.taken = 0
        self.prefix = (
            head
            or (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="owner_type"\r\n\r\nnote\r\n'
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="owner_id"\r\n\r\n{owner_id}\r\n'
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
        )

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.taken
        n = left if n is None or n < 0 else min(n, left)
        start = self.taken
        self.taken += n
        out = self.prefix[start : start + n]
        return out + b"\0" * (n - len(out))

    def readline(self, limit: int = -1) -> bytes:  # Django's LimitedStream may ask for lines
        return self.read(limit if limit and limit > 0 else 64 * 1024)


@pytest.fixture
def store(disk_store):
    """Local disk: nothing here depends on the store, and most requests never reach it."""
    return disk_store


@pytest.fixture(autouse=True)
def limited(settings, store):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": LIMIT}


@pytest.fixture
def session(owners, tenant_resolver):
    """A browser-like client of clinic A: logged in through the admin's login form, CSRF checks enforced."""
    from tests.testapp.models import Staff

    user = get_user_model().objects.create_user("nina", password="pw-nina-123", is_staff=True)
    Staff.objects.create(user=user, clinic=owners.clinic_a)
    client = Client(enforce_csrf_checks=True)
    page = client.get("/admin/login/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    response = client.post(
        "/admin/login/", {"username": "nina", "password": "pw-nina-123", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302, response.content[:500]
    client.csrf = client.cookies["csrftoken"].value
    return client


def _client(request, staff, auth):
    """The client for ``auth``, and the headers it sends (a session's CSRF token, unless left out)."""
    if auth == "forced":
        return staff["a"], {}
    if auth == "anonymous":
        return Client(), {}
    session = request.getfixturevalue("session")
    return session, ({"HTTP_X_CSRFTOKEN": session.csrf} if auth == "session" else {})


def send(client, method, path, body: CountingBody, content_type: str, **extra):
    return client.generic(
        method,
        path,
        data=b"x",
        content_type=content_type,
        CONTENT_LENGTH=str(body.size),
        **{"wsgi.input": body},
        **extra,
    )


CONTENT_TYPES = [
    f"multipart/form-data; boundary={BOUNDARY}",
    f"Multipart/Form-Data; boundary={BOUNDARY}",
    f"MULTIPART/FORM-DATA; boundary={BOUNDARY}",
    f"multipart/mixed; boundary={BOUNDARY}",
    f"multipart/*; boundary={BOUNDARY}",
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "*/*",
    "",
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("auth", ["forced", "session", "session-without-csrf", "anonymous"])
def test_an_oversized_upload_is_refused_before_reading(request, staff, owners, store, content_type, auth):
    body = CountingBody(HUGE, owner_id=str(owners.alice_note.pk))
    client, extra = _client(request, staff, auth)
    response = send(client, "POST", LIST, body, content_type, **extra)
    assert response.status_code == 413, response.content[:300]
    assert response.json()["code"] == "file_too_large"
    assert body.taken == 0
    assert not Blob.objects.exists() and not Attachment.objects.exists()


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_a_body_within_content_length_is_stopped_at_the_limit_while_parsed(staff, owners, store, content_type):
    """Declared within the allowance, but the file alone is over the limit: the parser stops at the limit."""
    body = CountingBody(LIMIT + FORM_ALLOWANCE, owner_id=str(owners.alice_note.pk))
    response = send(staff["a"], "POST", LIST, body, content_type)
    assert 400 <= response.status_code < 500, response.content[:300]
    if content_type.startswith("multipart/form-data"):  # other spellings: a parse error, nothing read
        assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    assert body.taken <= LIMIT + FORM_ALLOWANCE
    assert not Blob.objects.exists() and not Attachment.objects.exists()


@pytest.fixture
def attachment(owners, store, png):
    from django.core.files.base import ContentFile

    from django_attachments import services

    return services.attach(
        ContentFile(png, name="a.png"), owner_type="note", owner_id=str(owners.alice_note.pk), tenant=owners.tenant_a
    )


NO_FILE = [
    ("PATCH", "detail"),
    ("DELETE", "detail"),
    ("POST", "uploads"),
    ("POST", "complete"),
    ("GET", "list"),
]


def _path(kind, attachment):
    return {
        "detail": detail(attachment.pk),
        "list": LIST,
        "uploads": "/api/attachments/uploads/",
        "complete": "/api/attachments/uploads/00000000-0000-0000-0000-000000000000/complete/",
    }[kind]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize(("method", "kind"), NO_FILE)
@pytest.mark.parametrize("auth", ["forced", "session"])
def test_endpoints_that_take_no_file_read_no_large_body(request, staff, attachment, content_type, method, kind, auth):
    body = CountingBody(HUGE, owner_id="1")
    client, extra = _client(request, staff, auth)
    response = send(client, method, _path(kind, attachment), body, content_type, **extra)
    assert response.status_code in (413, 415), (response.status_code, response.content[:300])
    assert response.json()["code"] in ("request_too_large", "unsupported_media_type")
    assert body.taken == 0
    assert Attachment.objects.get().pk == attachment.pk and not DirectUpload.objects.exists()


@pytest.mark.parametrize("content_type", [c for c in CONTENT_TYPES if c.lower().startswith("multipart")])
@pytest.mark.parametrize(("method", "kind"), [("PATCH", "detail"), ("POST", "uploads"), ("POST", "complete")])
def test_endpoints_that_take_no_file_refuse_small_multipart_bodies_unparsed(
    staff, attachment, content_type, method, kind
):
    body = CountingBody(4096, owner_id="1")
    response = send(staff["a"], method, _path(kind, attachment), body, content_type)
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"
    assert body.taken == 0
    attachment.refresh_from_db()
    assert attachment.description == ""


# -- browser sessions ------------------------------------------------------------


def test_a_session_uploads_multipart_with_the_csrf_token_as_a_form_field(session, owners, store, pdf):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = session.post(
        LIST,
        {
            "file": SimpleUploadedFile("plan.pdf", pdf),
            "owner_type": "note",
            "owner_id": str(owners.alice_note.pk),
            "csrfmiddlewaretoken": session.csrf,
        },
    )
    assert response.status_code == 201, response.content[:500]
    assert Attachment.objects.get().blob.content_type == "application/pdf"


def test_a_session_uploads_multipart_with_the_csrf_header(session, owners, store, pdf):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = session.post(
        LIST,
        {"file": SimpleUploadedFile("plan.pdf", pdf), "owner_type": "note", "owner_id": str(owners.alice_note.pk)},
        HTTP_X_CSRFTOKEN=session.csrf,
    )
    assert response.status_code == 201, response.content[:500]


def test_a_session_without_the_csrf_token_is_refused_and_nothing_is_stored(session, owners, store, pdf):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = session.post(
        LIST,
        {"file": SimpleUploadedFile("plan.pdf", pdf), "owner_type": "note", "owner_id": str(owners.alice_note.pk)},
    )
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert not Blob.objects.exists() and not Attachment.objects.exists()


@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
def test_a_session_links_a_blob_with_json_or_a_form(session, attachment, owners, form):
    data = {"blob_id": str(attachment.blob_id), "owner_type": "note", "owner_id": str(owners.alice_note2.pk)}
    if form:
        response = session.post(LIST, {**data, "csrfmiddlewaretoken": session.csrf})
    else:
        response = session.post(LIST, json.dumps(data), content_type="application/json", HTTP_X_CSRFTOKEN=session.csrf)
    assert response.status_code == 201, response.content[:500]
    assert Attachment.objects.filter(owner_id=str(owners.alice_note2.pk)).count() == 1


def test_a_session_over_the_limit_gets_413_not_500(session, owners, store):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = session.post(
        LIST,
        {
            "file": SimpleUploadedFile("big.bin", b"\0" * (LIMIT + 1)),
            "owner_type": "note",
            "owner_id": str(owners.alice_note.pk),
            "csrfmiddlewaretoken": session.csrf,
        },
    )
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    assert not Blob.objects.exists()


def test_a_session_starts_and_patches_with_json(session, attachment, owners, pdf):
    import hashlib

    start = session.post(
        "/api/attachments/uploads/",
        json.dumps(
            {
                "owner_type": "note",
                "owner_id": str(owners.alice_note.pk),
                "filename": "p.pdf",
                "size": len(pdf),
                "checksum": hashlib.sha256(pdf).hexdigest(),
            }
        ),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=session.csrf,
    )
    assert start.status_code == 201, start.content[:500]
    patch = session.patch(
        detail(attachment.pk),
        json.dumps({"description": "x"}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=session.csrf,
    )
    assert patch.status_code == 200, patch.content[:500]


def test_forced_authentication_still_uploads(staff, owners, store, pdf):
    assert upload(staff["a"], "note", owners.alice_note.pk, pdf).status_code == 201


LACKED = [("PUT", "detail"), ("POST", "detail"), ("TRACE", "list"), ("PUT", "list")]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize(("method", "kind"), LACKED)
@pytest.mark.parametrize("auth", ["forced", "session"])
def test_methods_an_endpoint_lacks_are_405_before_any_body_is_read(
    request, staff, attachment, content_type, method, kind, auth
):
    body = CountingBody(HUGE, owner_id="1")
    client, extra = _client(request, staff, auth)
    response = send(client, method, _path(kind, attachment), body, content_type, **extra)
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]
    assert body.taken == 0
