"""The REST API through DRF's APIClient, on disk and on S3 (moto server)."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from django_attachments import services
from django_attachments.models import Attachment, Blob
from django_attachments.registry import OwnerSpec, attachment_registry
from tests.apitools import LIST, body, detail, download, upload
from tests.testapp.models import Note
from tests.testapp.owners import resolve_note

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]


# -- upload, dedup, link -----------------------------------------------------


def test_upload_returns_the_representation(staff, owners, store, png):
    response = upload(staff["a"], "note", owners.alice_note.pk, png, filename="x-ray.png", name="xray", description="d")
    assert response.status_code == 201, response.data
    data = response.json()
    assert set(data) == {
        "id", "owner_type", "owner_id", "name", "description", "blob_id", "filename",
        "content_type", "size", "checksum", "created_at", "download_url",
        "scan", "scan_signature", "scan_error_code", "scanned_at",
        "analysis", "analysis_errors", "analyzed_at", "metadata", "variants",
    }  # fmt: skip
    assert data["owner_type"] == "note" and data["owner_id"] == str(owners.alice_note.pk)
    assert (data["name"], data["description"], data["filename"]) == ("xray", "d", "x-ray.png")
    assert data["content_type"] == "image/png" and data["size"] == len(png)
    assert data["checksum"] == hashlib.sha256(png).hexdigest()
    assert data["download_url"] == f"http://testserver/api/attachments/{data['id']}/download/"


def test_same_bytes_twice_share_a_blob(staff, owners, store, pdf):
    first = upload(staff["a"], "note", owners.alice_note.pk, pdf).json()
    second = upload(staff["a"], "note", owners.alice_note2.pk, pdf).json()
    assert first["blob_id"] == second["blob_id"] and first["id"] != second["id"]
    again = upload(staff["a"], "note", owners.alice_note2.pk, pdf)
    assert again.status_code == 200 and again.json()["id"] == second["id"]


def test_each_attachment_keeps_the_name_it_was_uploaded_under(staff, owners, store, pdf):
    first = upload(staff["a"], "note", owners.alice_note.pk, pdf, filename="referral.pdf").json()
    second = upload(staff["a"], "note", owners.alice_note2.pk, pdf, filename="lab-report.pdf").json()
    assert first["blob_id"] == second["blob_id"]  # one blob, which keeps its first name
    assert (first["filename"], second["filename"]) == ("referral.pdf", "lab-report.pdf")
    assert Blob.objects.get().filename == "referral.pdf"
    response = staff["a"].get(download(second["id"]))
    assert 'filename="lab-report.pdf"' in response["Content-Disposition"]
    again = upload(staff["a"], "note", owners.alice_note2.pk, pdf, filename="renamed.pdf")
    assert again.status_code == 200 and again.json()["filename"] == "lab-report.pdf"  # the same link, unchanged
    linked = staff["a"].post(
        LIST, {"blob_id": second["blob_id"], "owner_type": "patient", "owner_id": str(owners.alice.pk)}, format="json"
    )
    assert linked.json()["filename"] == "referral.pdf"  # a link takes the blob's name


def test_link_existing_blob(staff, owners, store, pdf):
    blob_id = upload(staff["a"], "note", owners.alice_note.pk, pdf).json()["blob_id"]
    payload = {"blob_id": blob_id, "owner_type": "patient", "owner_id": str(owners.alice.pk)}
    created = staff["a"].post(LIST, payload, format="json")
    assert created.status_code == 201 and created.json()["blob_id"] == blob_id
    repeated = staff["a"].post(LIST, payload, format="json")
    assert repeated.status_code == 200 and repeated.json()["id"] == created.json()["id"]


def test_linking_an_empty_blob_where_empty_files_are_refused_names_the_blob_id(staff, owners, store, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOW_EMPTY_FILES": True}
    empty = services.attach(b"", owner_type="patient", owner_id=owners.alice.pk, filename="empty.txt")
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOW_EMPTY_FILES": False}
    payload = {"blob_id": str(empty.blob_id), "owner_type": "note", "owner_id": str(owners.alice_note.pk)}
    response = staff["a"].post(LIST, payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"blob_id": ["The file is empty."], "code": "invalid_file"}


def test_link_to_another_subject_is_owner_mismatch(staff, owners, store, pdf):
    blob_id = upload(staff["a"], "note", owners.alice_note.pk, pdf).json()["blob_id"]
    response = staff["a"].post(
        LIST, {"blob_id": blob_id, "owner_type": "patient", "owner_id": str(owners.adam.pk)}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "owner_mismatch" and "owner_id" in response.json()


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"owner_type": "invoice", "owner_id": "1"}, "owner_type"),
        ({"owner_type": "PATIENT!", "owner_id": "1"}, "owner_type"),
        ({"owner_id": "1"}, "owner_type"),
        ({"owner_type": "patient"}, "owner_id"),
        ({"owner_type": "patient", "owner_id": "x" * 65}, "owner_id"),
        ({"owner_type": "patient", "owner_id": "abc"}, "owner_id"),
    ],
)
def test_bad_upload_fields_are_400_naming_the_field(staff, owners, store, pdf, payload, field):
    response = staff["a"].post(LIST, {"file": SimpleUploadedFile("f.pdf", pdf), **payload}, format="multipart")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Blob.objects.exists()


def test_missing_file_and_bad_link_bodies(staff, owners, store):
    no_file = staff["a"].post(LIST, {"owner_type": "patient", "owner_id": str(owners.alice.pk)}, format="multipart")
    assert no_file.status_code == 400 and "file" in no_file.json()
    bad_uuid = staff["a"].post(
        LIST, {"blob_id": "nope", "owner_type": "patient", "owner_id": str(owners.alice.pk)}, format="json"
    )
    assert bad_uuid.status_code == 400 and "blob_id" in bad_uuid.json()
    empty = staff["a"].post(LIST, {}, format="json")
    assert empty.status_code == 400 and {"blob_id", "owner_type", "owner_id"} <= set(empty.json())
    assert staff["a"].post(LIST, "not json", content_type="application/json").status_code == 400


def test_missing_owner_and_other_tenants_owner_look_the_same(staff, owners, store, pdf):
    missing = upload(staff["a"], "patient", 999999, pdf)
    foreign = upload(staff["a"], "patient", owners.bob.pk, pdf)
    assert missing.status_code == foreign.status_code == 400
    assert missing.json()["code"] == foreign.json()["code"] == "owner_not_found"
    assert missing.json()["owner_id"][0].replace("999999", "N") == foreign.json()["owner_id"][0].replace(
        str(owners.bob.pk), "N"
    )


def test_other_tenants_blob_is_not_found(staff, owners, store, pdf):
    blob_id = upload(staff["b"], "patient", owners.bob.pk, pdf).json()["blob_id"]
    response = staff["a"].post(
        LIST, {"blob_id": blob_id, "owner_type": "patient", "owner_id": str(owners.alice.pk)}, format="json"
    )
    assert response.status_code == 404
    unknown = staff["a"].post(
        LIST,
        {"blob_id": "00000000-0000-0000-0000-000000000000", "owner_type": "patient", "owner_id": str(owners.alice.pk)},
        format="json",
    )
    assert unknown.status_code == 404 and unknown.json()["detail"].replace(
        "00000000-0000-0000-0000-000000000000", "X"
    ) == response.json()["detail"].replace(blob_id, "X")


# -- limits ------------------------------------------------------------------


def test_content_length_over_the_limit_is_refused_before_reading(staff, owners, store, settings, pdf):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": 1000}
    response = staff["a"].generic(
        "POST", LIST, b"x" * 10, content_type="multipart/form-data; boundary=zz", CONTENT_LENGTH=str(10**9)
    )
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"


def test_file_over_the_limit_is_413(staff, owners, store, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": 100}
    assert upload(staff["a"], "patient", owners.alice.pk, b"a" * 100).status_code == 201
    response = upload(staff["a"], "patient", owners.alice.pk, b"b" * 101)
    assert response.status_code == 413
    assert Blob.objects.count() == 1


def test_owner_type_size_limit_is_413(staff, owners, store, pdf):
    with attachment_registry.override(OwnerSpec("note", resolve_note, max_size=10)):
        response = upload(staff["a"], "note", owners.alice_note.pk, pdf)
    assert response.status_code == 413


def test_disallowed_sniffed_type_is_415(staff, owners, store, settings, pdf):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOWED_CONTENT_TYPES": ["image/*"]}
    response = upload(staff["a"], "patient", owners.alice.pk, pdf, filename="photo.png")
    assert response.status_code == 415 and response.json()["code"] == "unsupported_file_type"


def test_wrong_slot_is_400(staff, owners, store, png):
    response = upload(staff["a"], "note", owners.alice_note.pk, png, name="selfie")
    assert response.status_code == 400 and response.json()["code"] == "invalid_slot"


# -- list ----------------------------------------------------------------------


def test_list_is_the_tenants_newest_first_and_filterable(staff, owners, store, png, pdf):
    a1 = upload(staff["a"], "note", owners.alice_note.pk, png, name="xray").json()
    a2 = upload(staff["a"], "patient", owners.alice.pk, pdf).json()
    upload(staff["b"], "patient", owners.bob.pk, pdf)
    page = staff["a"].get(LIST).json()
    assert page["count"] == 2 and [r["id"] for r in page["results"]] == [a2["id"], a1["id"]]
    assert set(page) == {"count", "next", "previous", "results"}

    def ids(**params):
        return [r["id"] for r in staff["a"].get(LIST, params).json()["results"]]

    assert ids(owner_type="note") == [a1["id"]]
    assert ids(owner_type="patient", owner_id=str(owners.alice.pk)) == [a2["id"]]
    assert ids(name="xray") == [a1["id"]]
    assert ids(checksum=a2["checksum"].upper()) == [a2["id"]]
    assert staff["a"].get(LIST, {"checksum": "zz"}).status_code == 400


def test_list_pagination_and_constant_queries(staff, owners, store):
    for i in range(12):
        services.attach(f"file {i}".encode(), owner_type="patient", owner_id=owners.alice.pk)
    first = staff["a"].get(LIST, {"page_size": 5}).json()
    assert first["count"] == 12 and len(first["results"]) == 5 and first["next"] and first["previous"] is None
    assert len(staff["a"].get(LIST, {"page_size": 5, "page": 3}).json()["results"]) == 2
    assert staff["a"].get(LIST, {"page": 99}).status_code == 404
    assert staff["a"].get(LIST, {"page_size": 10**9}).status_code == 200

    def queries(page_size):
        with CaptureQueriesContext(connection) as captured:
            assert staff["a"].get(LIST, {"page_size": page_size}).status_code == 200
        return len(captured)

    assert queries(2) == queries(12)


# -- read, edit, unlink ----------------------------------------------------------


def test_retrieve_patch_delete(staff, owners, store, png):
    created = upload(staff["a"], "note", owners.alice_note.pk, png, name="xray").json()
    assert staff["a"].get(detail(created["id"])).json() == created
    patched = staff["a"].patch(detail(created["id"]), {"name": "before", "description": "pre-op"}, format="json")
    assert patched.status_code == 200 and (patched.json()["name"], patched.json()["description"]) == (
        "before",
        "pre-op",
    )
    assert staff["a"].patch(detail(created["id"]), {"name": "selfie"}, format="json").status_code == 400
    read_only = staff["a"].patch(detail(created["id"]), {"owner_id": "1"}, format="json")
    assert read_only.status_code == 400 and "owner_id" in read_only.json()
    assert staff["a"].put(detail(created["id"]), {"name": "after"}, format="json").status_code == 405
    assert staff["a"].delete(detail(created["id"])).status_code == 204
    assert staff["a"].get(detail(created["id"])).status_code == 404
    assert Blob.objects.orphans().count() == 1  # the blob waits for the purge


# -- download ------------------------------------------------------------------


@pytest.fixture
def stored(staff, owners, store):
    data = bytes(range(256)) * 40
    created = upload(staff["a"], "patient", owners.alice.pk, data, filename="Röntgen bild.bin").json()
    return created, data


def test_download_full(staff, stored):
    created, data = stored
    response = staff["a"].get(download(created["id"]))
    assert response.status_code == 200 and body(response) == data
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Type"] == created["content_type"]
    assert response["ETag"] == f'"{created["checksum"]}"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "filename*=utf-8''R%C3%B6ntgen%20bild.bin" in response["Content-Disposition"]


@pytest.mark.parametrize(
    "header, start, end",
    [("bytes=0-0", 0, 0), ("bytes=100-199", 100, 199), ("bytes=10000-", 10000, 10239), ("bytes=-40", 10200, 10239),
     ("bytes=10200-99999", 10200, 10239)],
)  # fmt: skip
def test_download_range(staff, stored, header, start, end):
    created, data = stored
    response = staff["a"].get(download(created["id"]), HTTP_RANGE=header)
    assert response.status_code == 206
    assert body(response) == data[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
    assert response["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-30000", "bytes=-0"])
def test_download_unsatisfiable_range(staff, stored, header):
    created, data = stored
    response = staff["a"].get(download(created["id"]), HTTP_RANGE=header)
    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-1", "bytes=abc", "bytes=5-1x"])
def test_download_ignores_ranges_it_does_not_serve(staff, stored, header):
    created, data = stored
    response = staff["a"].get(download(created["id"]), HTTP_RANGE=header)
    assert response.status_code == 200 and body(response) == data


def test_download_conditional(staff, stored):
    created, data = stored
    etag = f'"{created["checksum"]}"'
    not_modified = staff["a"].get(download(created["id"]), HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert staff["a"].get(download(created["id"]), HTTP_IF_NONE_MATCH='"other"').status_code == 200
    stale = staff["a"].get(download(created["id"]), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"old"')
    assert stale.status_code == 200 and body(stale) == data
    fresh = staff["a"].get(download(created["id"]), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag)
    assert fresh.status_code == 206 and body(fresh) == data[:10]


def test_active_content_is_never_served_inline(staff, owners, store):
    html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
    created = upload(staff["a"], "patient", owners.alice.pk, html, filename="page.pdf").json()
    assert created["content_type"] == "text/html"
    response = staff["a"].get(download(created["id"]))
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


def test_redirect_mode(staff, stored, settings, store):
    created, data = stored
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "DOWNLOAD_MODE": "redirect"}
    response = staff["a"].get(download(created["id"]))
    if not store.can_sign_urls:
        assert response.status_code == 200 and body(response) == data  # falls back to proxy
        return
    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"  # a signed URL is no one else's to cache
    import urllib.request

    with urllib.request.urlopen(response["Location"]) as signed:
        assert signed.read() == data
        assert "R%C3%B6ntgen" in signed.headers["Content-Disposition"]


def test_missing_bytes_are_a_clear_503(staff, stored, store):
    created, _ = stored
    blob = Blob.objects.get(pk=created["blob_id"])
    store.delete(blob.storage_identifiers)
    response = staff["a"].get(download(created["id"]))
    assert response.status_code == 503 and response.json()["code"] == "storage_unavailable"


# -- who may do what -----------------------------------------------------------


def test_anonymous_and_tenantless_callers_are_refused(owners, store):
    assert APIClient().get(LIST).status_code in (401, 403)
    lost = APIClient()
    lost.force_authenticate(get_user_model().objects.create_user("nobody"))
    response = lost.get(LIST)
    assert response.status_code == 403 and response.json()["code"] == "no_tenant"


def test_tenant_isolation_matrix(staff, owners, store, pdf, png):
    """Clinic B reaches nothing of clinic A's, by any endpoint and verb, and learns nothing."""
    theirs = upload(staff["a"], "note", owners.alice_note.pk, png, name="xray").json()
    nothing = "00000000-0000-0000-0000-000000000000"
    b = staff["b"]
    assert b.get(LIST).json()["count"] == 0
    assert b.get(LIST, {"checksum": theirs["checksum"]}).json()["count"] == 0
    assert b.get(LIST, {"owner_type": "note", "owner_id": str(owners.alice_note.pk)}).json()["count"] == 0
    for pk in (theirs["id"], nothing):
        assert b.get(detail(pk)).status_code == 404
        assert b.get(download(pk)).status_code == 404
        assert b.patch(detail(pk), {"description": "x"}, format="json").status_code == 404
        assert b.delete(detail(pk)).status_code == 404
    responses = [
        b.post(
            LIST, {"blob_id": theirs["blob_id"], "owner_type": "patient", "owner_id": str(owners.bob.pk)}, format="json"
        ),
        b.post(LIST, {"blob_id": nothing, "owner_type": "patient", "owner_id": str(owners.bob.pk)}, format="json"),
    ]
    assert [r.status_code for r in responses] == [404, 404]
    assert upload(b, "note", owners.alice_note.pk, pdf).status_code == 400
    assert Attachment.objects.filter(owner_type="note", owner_id=str(owners.alice_note.pk)).count() == 1
    assert Attachment.objects.get().description == ""


def test_can_view_and_can_attach_hooks(staff, owners, store, png):
    secret = Note.objects.create(patient=owners.alice, text="secret")
    readonly = Note.objects.create(patient=owners.alice, text="read only")
    visible_id = upload(staff["a"], "note", readonly.pk, png, name="xray").json()["id"]
    hidden_id = upload(staff["a"], "note", secret.pk, png, name="xray").json()["id"]
    spec = OwnerSpec(
        "note",
        resolve_note,
        allowed_names={"", "xray"},
        can_view=lambda request, owner: owner.instance.text != "secret",
        can_attach=lambda request, owner: owner.instance.text not in ("secret", "read only"),
    )
    client = staff["a"]
    with attachment_registry.override(spec):
        # A note the caller may not view does not exist for them.
        assert client.get(detail(hidden_id)).status_code == 404
        assert client.get(download(hidden_id)).status_code == 404
        assert client.get(LIST, {"owner_type": "note", "owner_id": str(secret.pk)}).json()["count"] == 0
        hidden_upload = upload(client, "note", secret.pk, b"new")
        assert hidden_upload.status_code == 400 and hidden_upload.json()["code"] == "owner_not_found"
        # A note the caller may view but not change: 403 on changes.
        assert client.get(detail(visible_id)).status_code == 200
        assert client.get(LIST, {"owner_type": "note", "owner_id": str(readonly.pk)}).json()["count"] == 1
        assert upload(client, "note", readonly.pk, b"new").status_code == 403
        assert client.patch(detail(visible_id), {"description": "x"}, format="json").status_code == 403
        assert client.delete(detail(visible_id)).status_code == 403
        # Unfiltered lists leave out owner types whose hook must be asked per owner.
        assert all(r["owner_type"] != "note" for r in client.get(LIST).json()["results"])
    assert Attachment.objects.count() == 2


def test_permission_classes_setting(staff, owners, store, settings):
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    }
    assert staff["a"].get(LIST).status_code == 403


def test_a_subclass_s_own_view_attributes_win_over_the_settings(staff, owners, store, settings):
    from rest_framework.permissions import IsAdminUser
    from rest_framework.test import APIRequestFactory, force_authenticate

    from django_attachments.api.direct import DirectUploadViewSet
    from django_attachments.api.views import AttachmentPagination, AttachmentViewSet

    class AdminsOnly(AttachmentViewSet):
        permission_classes = [IsAdminUser]

    class AdminsOnlyUploads(DirectUploadViewSet):
        permission_classes = [IsAdminUser]

    class Small(AttachmentPagination):
        page_size = 1

    user = get_user_model().objects.get(username="anna")
    for view in (AdminsOnly.as_view({"get": "list"}), AdminsOnlyUploads.as_view({"post": "create"})):
        request = APIRequestFactory().generic("GET" if view.cls is AdminsOnly else "POST", "/", format="json")
        force_authenticate(request, user)
        assert view(request).status_code == 403  # the setting (IsAuthenticated) would let anna in
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "PAGE_SIZE": 7}
    assert (AttachmentPagination().page_size, Small().page_size) == (7, 1)
    assert [p.__name__ for p in AttachmentViewSet().permission_classes] == ["IsAuthenticated"]


def test_single_tenant_projects_need_no_resolver(owners, store, settings, pdf):
    settings.DJANGO_ATTACHMENTS = {k: v for k, v in settings.DJANGO_ATTACHMENTS.items() if k != "TENANT_RESOLVER"}
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("solo"))
    assert upload(client, "patient", owners.bob.pk, pdf).status_code == 201
    assert upload(client, "patient", owners.alice.pk, pdf).status_code == 201
    assert client.get(LIST).json()["count"] == 2


def test_zero_byte_upload(staff, owners, store):
    response = upload(staff["a"], "patient", owners.alice.pk, b"")
    assert response.status_code == 201 and response.json()["size"] == 0
    assert body(staff["a"].get(download(response.json()["id"]))) == b""


def test_non_uuid_ids_in_urls_are_404(staff, owners):
    for path in ("/api/attachments/not-a-uuid/", "/api/attachments/" + "-" * 36 + "/", "/api/attachments/12/download/"):
        assert staff["a"].get(path).status_code == 404


def test_streamed_upload_of_a_real_file(staff, owners, store, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"\x00\x01" * 2_000_000)  # 4 MB: beyond FILE_UPLOAD_MAX_MEMORY_SIZE, a temporary upload
    with open(path, "rb") as handle:
        response = staff["a"].post(
            LIST, {"file": handle, "owner_type": "patient", "owner_id": str(owners.alice.pk)}, format="multipart"
        )
    assert response.status_code == 201
    assert response.json()["checksum"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert body(staff["a"].get(download(response.json()["id"]))) == path.read_bytes()


def test_every_404_looks_the_same(staff, owners, store, png):
    theirs = upload(staff["b"], "patient", owners.bob.pk, png).json()["id"]
    hidden = upload(staff["a"], "note", owners.alice_note.pk, png, name="xray").json()["id"]
    spec = OwnerSpec("note", resolve_note, allowed_names={"", "xray"}, can_view=lambda request, owner: False)
    with attachment_registry.override(spec):
        bodies = [
            staff["a"].get(path).json()
            for path in (
                detail("00000000-0000-0000-0000-000000000000"),
                detail(theirs),
                detail("not-a-uuid"),
                detail(hidden),
                download(theirs),
            )
        ]
    assert bodies == [{"detail": "Not found.", "code": "not_found"}] * 5
