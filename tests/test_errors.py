"""Every error carries its own code, status and field; the API and the admin translate them without a ladder."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from django_attachments import exceptions
from django_attachments.api.errors import to_api_error
from django_attachments.exceptions import AttachmentError, AttachmentsImproperlyConfigured
from tests.apitools import upload

API_DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"
#: Codes that never reach an HTTP client: a programming error, a purge refusal, the root's.
#: ``copy_mismatch``: a copy made by migrate_attachments or for a mirror, never by a request.
NOT_HTTP = {"attachment_error", "already_registered", "unsafe_purge", "copy_mismatch"}
#: The builtin and Django types that say the caller is at fault.
CLIENT_FAULTS = (ValueError, LookupError, ObjectDoesNotExist, PermissionDenied)


def error_classes():
    return [
        cls
        for _, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, AttachmentError) and cls is not AttachmentError
    ]


def test_a_misconfiguration_is_not_an_attachment_error():
    # Handlers of user errors (the API's, the admin's, a project's) catch AttachmentError:
    # a misconfiguration must get past them as the server error it is.
    assert issubclass(AttachmentsImproperlyConfigured, ImproperlyConfigured)
    assert not issubclass(AttachmentsImproperlyConfigured, AttachmentError)


@pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_has_a_stable_code_and_a_client_error_status(cls):
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", cls.code)
    assert 400 <= cls.status_code < 600
    assert exceptions.status_for(cls.code) == cls.status_code
    for code in cls.other_codes:
        assert exceptions.status_for(code) == cls.status_code


@pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__name__)
def test_an_error_is_the_client_s_fault_exactly_when_its_type_says_so(cls):
    conflict = issubclass(cls, exceptions.BlobUnavailable)  # the request is fine; the blob's state is not
    assert (cls.status_code < 500) == (issubclass(cls, CLIENT_FAULTS) or conflict)


def test_an_unclassified_error_is_a_server_error():
    assert (AttachmentError.status_code, AttachmentError("x").code) == (500, "attachment_error")


@pytest.mark.django_db
def test_an_upload_that_lost_every_race_is_a_503_to_retry_not_the_client_s_fault(
    staff, owners, disk_store, pdf, monkeypatch
):
    from django_attachments.services import attaching

    monkeypatch.setattr(attaching, "_record_blob", lambda *args, **kwargs: None)  # a concurrent upload always wins
    response = upload(staff["a"], "note", owners.alice_note.pk, pdf)
    assert response.status_code == 503 and response.json()["code"] == "try_again"


def test_one_code_has_one_status():
    with pytest.raises(TypeError, match="already"):

        class Clash(AttachmentError):  # file_too_large is a 413
            code = "file_too_large"
            status_code = 400


def test_every_code_a_client_can_get_is_documented():
    documented = set(re.findall(r"`([a-z_]+)`", API_DOCS.read_text()))
    codes = {code for cls in error_classes() for code in (cls.code, *cls.other_codes)} - NOT_HTTP
    assert codes - documented == set()


@pytest.mark.parametrize(
    "error, status, body",
    [
        (exceptions.OwnerMismatch("other subject"), 400, {"owner_id": ["other subject"], "code": "owner_mismatch"}),
        (exceptions.EmptyFile("empty", field="size"), 400, {"size": ["empty"], "code": "invalid_file"}),
        (exceptions.InvalidValue("bad", field="checksum"), 400, {"checksum": ["bad"], "code": "invalid"}),
        (exceptions.FileTooLarge("big", limit=1), 413, {"detail": "big", "code": "file_too_large"}),
        (exceptions.NoTenant("none"), 403, {"detail": "none", "code": "no_tenant"}),
        (
            exceptions.UploadClosed("has bytes", code="upload_exists"),
            409,
            {"detail": "has bytes", "code": "upload_exists"},
        ),
        (
            exceptions.UploadFailed("too big", code="file_too_large"),
            413,
            {"detail": "too big", "code": "file_too_large"},
        ),
        (exceptions.UploadFailed("gone", code="upload_expired"), 410, {"detail": "gone", "code": "upload_expired"}),
    ],
)
def test_the_api_answers_each_error_by_its_own_code_status_and_field(error, status, body):
    from rest_framework.views import exception_handler

    from django_attachments.api.errors import handle_exception

    response = handle_exception(error, {})
    assert response.status_code == status
    assert response.data == body
    assert exception_handler(to_api_error(error), {}).status_code == status


def test_a_storage_failure_is_logged_and_the_client_told_nothing_of_the_storage(caplog):
    from django_attachments.api.errors import handle_exception

    error = exceptions.StorageError("Could not write object 'attachments/ab/cd' to bucket 'secret-bucket': timeout")
    response = handle_exception(error, {})
    assert response.status_code == 503
    assert response.data == {
        "detail": "The file storage is unavailable; try again later.",
        "code": "storage_unavailable",
    }
    assert "secret-bucket" in caplog.text


def test_a_storage_failure_is_known_by_its_class_not_by_being_an_oserror():
    class Flaky(exceptions.StorageError):
        pass

    assert Flaky("x").code == "storage_unavailable" and Flaky("x").status_code == 503


# -- a misconfiguration is a server error everywhere, never a 400 or a message ---------------


@pytest.mark.django_db
def test_a_misconfigured_storage_is_a_server_error_in_the_api(staff, owners, settings, png):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORAGE": "no-such-alias"}
    with pytest.raises(AttachmentsImproperlyConfigured, match="no-such-alias"):
        upload(staff["a"], "note", owners.alice_note.pk, png)


@pytest.mark.django_db
def test_a_misconfigured_storage_is_a_server_error_in_the_admin_not_a_message(admin_client, owners, settings, png):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORAGE": "no-such-alias"}
    url = reverse("admin:testapp_note_attachments_upload", args=[owners.alice_note.pk])
    with pytest.raises(AttachmentsImproperlyConfigured, match="no-such-alias"):
        admin_client.post(url, {"file": SimpleUploadedFile("x.png", png), "name": ""})


@pytest.mark.django_db
def test_a_misconfigured_resolver_is_a_server_error_not_owner_not_found(staff, owners, settings, png):
    from django_attachments.registry import Owner, OwnerSpec, attachment_registry

    attachment_registry.register(
        OwnerSpec("overlong", resolver=lambda owner_id: Owner(tenant="t" * 65, subject="s", instance=None))
    )
    try:
        with pytest.raises(AttachmentsImproperlyConfigured, match="the limit is 64"):
            upload(staff["a"], "overlong", "1", png)
    finally:
        attachment_registry.unregister("overlong")
