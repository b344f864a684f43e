"""The admin panel's upload view reads no body past the upload limit, CSRF check or not.

``admin_site.admin_view`` checks CSRF, which reads ``request.POST`` and so the
whole multipart body, before the view runs; so does ``CsrfViewMiddleware``. The
panel's upload URL is guarded outside both: a body declared larger than the
limit (plus room for the form fields) is answered 413 before a byte of it is
read, and a file found too large while the form is parsed stops the parser
at the limit. The body here is generated as it is read and counts what the
server took (see tests/test_body_limits.py).
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from django_attachments.models import Attachment, Blob
from django_attachments.uploadhandlers import FORM_ALLOWANCE
from tests.test_body_limits import BOUNDARY, CountingBody, send

pytestmark = pytest.mark.django_db

LIMIT = 1024 * 1024
HUGE = 1024**3
CSRF_MIDDLEWARE = "django.middleware.csrf.CsrfViewMiddleware"
FILE_PART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\n\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
    "Content-Type: application/octet-stream\r\n\r\n"
).encode()


@pytest.fixture(autouse=True)
def limited(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "store")},
        },
    }
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORAGE": "attachments", "MAX_UPLOAD_SIZE": LIMIT}


def upload_url(owners):
    return reverse("admin:testapp_note_attachments_upload", args=[owners.alice_note.pk])


@pytest.fixture(params=["no-csrf-check", "csrf-in-admin-view", "csrf-middleware"])
def client(request, settings, owners):
    """A logged-in superuser, with the CSRF check of the admin view alone, or of the middleware too.

    Returns the client and the headers a browser would send (the CSRF token).
    """
    if request.param == "csrf-middleware":
        settings.MIDDLEWARE = [*settings.MIDDLEWARE, CSRF_MIDDLEWARE]
    user = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    client = Client(enforce_csrf_checks=request.param != "no-csrf-check")
    client.force_login(user)
    if request.param == "no-csrf-check":
        return client, {}
    page = client.get(reverse("admin:testapp_note_change", args=[owners.alice_note.pk]))
    assert page.status_code == 200
    return client, {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}


def assert_413_page(response):
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "too large" in html and "1.0" in html and "MB" in html  # the limit, as people read it
    assert not Blob.objects.exists() and not Attachment.objects.exists()


def test_a_body_declared_too_large_is_refused_before_reading(client, owners):
    client, headers = client
    body = CountingBody(HUGE, owner_id="", head=FILE_PART)
    response = send(client, "POST", upload_url(owners), body, f"multipart/form-data; boundary={BOUNDARY}", **headers)
    assert body.taken == 0
    assert_413_page(response)


def test_a_file_found_too_large_while_parsing_stops_at_the_limit(client, owners):
    client, headers = client
    body = CountingBody(LIMIT + FORM_ALLOWANCE, owner_id="", head=FILE_PART)
    response = send(client, "POST", upload_url(owners), body, f"multipart/form-data; boundary={BOUNDARY}", **headers)
    assert body.taken <= LIMIT + FORM_ALLOWANCE
    assert_413_page(response)


def test_a_browser_form_over_the_limit_gets_the_413_page(client, owners):
    client, headers = client
    big = SimpleUploadedFile("big.bin", b"\0" * (LIMIT + 1))
    assert_413_page(client.post(upload_url(owners), {"file": big, "name": ""}, **headers))


def test_csrf_is_still_checked_with_the_middleware(settings, owners, png):
    """The upload URL is exempt from the middleware's check only to run the admin view's own, after the guard."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, CSRF_MIDDLEWARE]
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))
    response = client.post(upload_url(owners), {"file": SimpleUploadedFile("a.png", png), "name": ""})
    assert response.status_code == 403 and b"CSRF" in response.content
    assert not Attachment.objects.exists()
    client.get(reverse("admin:testapp_note_change", args=[owners.alice_note.pk]))
    token = client.cookies["csrftoken"].value
    response = client.post(
        upload_url(owners), {"file": SimpleUploadedFile("a.png", png), "name": ""}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 302 and Attachment.objects.get().blob.filename == "a.png"
