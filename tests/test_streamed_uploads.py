"""API uploads sent on to S3 while the request body arrives (``STREAM_UPLOADS``), on moto and SeaweedFS.

A file larger than the store's threshold goes up in parts as it is parsed;
the object is joined only once the upload is accepted and no blob holds its
bytes. Every other end — a dedup hit, a refusal of the file or the owner, a
body cut short, a storage that fails midway — leaves nothing in the bucket:
no object, no incomplete multipart upload.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import uuid
from urllib.parse import urlsplit

import boto3
import pytest

from django_attachments import services
from django_attachments.models import Attachment, Blob
from django_attachments.registry import OwnerSpec, attachment_registry
from django_attachments.stores import get_store
from django_attachments.stores.s3 import S3Store
from tests.apitools import LIST, upload
from tests.testapp.owners import resolve_note

S3_KINDS = ["s3-moto", "s3-seaweedfs"]
pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("store_alias", S3_KINDS, indirect=True)]

MIB = 1024 * 1024
PART = 5 * MIB  # S3's smallest part
OPTIONS = {"multipart_threshold": PART, "part_size": PART, "max_parts_in_flight": 2}


def pdf_of(size: int, seed: bytes = b"") -> bytes:
    """A file libmagic calls a PDF, ``size`` bytes of it random."""
    head = b"%PDF-1.4\n%" + seed + b"\n"
    return head + os.urandom(size - len(head))


@pytest.fixture(autouse=True)
def small_parts(settings, store_alias):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORE_OPTIONS": {store_alias: OPTIONS}}


@pytest.fixture
def opened(monkeypatch):
    """How many streamed writes the S3 store began (the real method runs)."""
    calls = []
    real = S3Store.open_stream

    def counting(self, **kwargs):
        stream = real(self, **kwargs)
        calls.append(stream)
        return stream

    monkeypatch.setattr(S3Store, "open_stream", counting)
    return calls


def held(store) -> tuple[list[str], list[str]]:
    """(names of the objects, ids of the incomplete multipart uploads) the bucket holds."""
    return [obj.name for obj in store.list()], [u.upload_id for u in store.list_multipart()]


def read_back(blob: Blob) -> bytes:
    with services.open_blob(blob) as reader:
        return b"".join(iter(lambda: reader.read(MIB), b""))


def test_a_large_upload_goes_up_in_parts_as_it_arrives(staff, owners, store_alias, opened):
    data = pdf_of(12 * MIB + 12345)
    response = upload(staff["a"], "note", owners.alice_note.pk, data, filename="big.pdf")
    assert response.status_code == 201, response.content
    assert len(opened) == 1 and opened[0].completed
    blob = Blob.objects.get()
    assert blob.checksum == hashlib.sha256(data).hexdigest()
    assert (blob.size, blob.content_type, blob.filename) == (len(data), "application/pdf", "big.pdf")
    assert blob.storage_identifiers["etag"].endswith("-3")  # joined from three parts
    store = get_store(store_alias)
    assert held(store) == ([blob.storage_identifiers["name"]], [])
    assert read_back(blob) == data
    head = store.client.head_object(Bucket=store.bucket, Key=blob.storage_identifiers["key"])
    assert head["ContentType"] == "application/pdf"
    assert head["ContentLength"] == len(data)


def test_a_file_up_to_the_threshold_is_written_whole(staff, owners, store_alias, opened):
    data = pdf_of(PART)
    response = upload(staff["a"], "note", owners.alice_note.pk, data)
    assert response.status_code == 201, response.content
    assert opened == []
    blob = Blob.objects.get()
    assert "-" not in blob.storage_identifiers["etag"]  # one PutObject
    assert read_back(blob) == data
    assert held(get_store(store_alias))[1] == []


def test_a_dedup_hit_keeps_no_byte_of_the_second_upload(staff, owners, store_alias, opened):
    data = pdf_of(11 * MIB)
    first = upload(staff["a"], "note", owners.alice_note.pk, data)
    second = upload(staff["a"], "note", owners.alice_note2.pk, data)  # Alice again: the same subject
    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert len(opened) == 2 and opened[0].completed and opened[1].state == "aborted"
    blob = Blob.objects.get()
    assert Attachment.objects.filter(blob=blob).count() == 2
    assert held(get_store(store_alias)) == ([blob.storage_identifiers["name"]], [])
    assert read_back(blob) == data


@pytest.mark.parametrize(
    "case",
    ["type not allowed", "owner missing", "owner of another tenant", "no owner type", "slot unknown", "type's limit"],
)
def test_a_refused_upload_keeps_nothing(staff, owners, store_alias, opened, settings, case):
    data = pdf_of(11 * MIB)
    owner_type, owner_id, fields = "note", owners.alice_note.pk, {}
    expected = 400
    if case == "type not allowed":
        settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOWED_CONTENT_TYPES": ["image/*"]}
        expected = 415
    elif case == "owner missing":
        owner_id = 999_999
    elif case == "owner of another tenant":
        owner_id = owners.bob_note.pk
    elif case == "no owner type":
        owner_type = ""
    elif case == "slot unknown":
        fields = {"name": "nowhere"}
    limited = OwnerSpec("note", resolve_note, allowed_names={"", "before", "after", "xray"}, max_size=10 * MIB)
    if case == "type's limit":
        expected = 413
        with attachment_registry.override(limited):
            response = upload(staff["a"], owner_type, owner_id, data, **fields)
    else:
        response = upload(staff["a"], owner_type, owner_id, data, **fields)
    assert response.status_code == expected, response.content
    assert Blob.objects.count() == 0
    assert held(get_store(store_alias)) == ([], [])
    assert all(stream.state == "aborted" for stream in opened)
    if case in ("type not allowed", "type's limit"):
        assert len(opened) == 1  # the parts went up, and were dropped


def test_a_file_past_the_upload_limit_while_parsed_keeps_nothing(staff, owners, store_alias, opened, settings):
    # Declared within the limit plus room for the form, so the body is read until the file outgrows it.
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": 8 * MIB}
    response = upload(staff["a"], "note", owners.alice_note.pk, pdf_of(8 * MIB + 100 * 1024))
    assert response.status_code == 413, response.content
    assert response.json()["code"] == "file_too_large"
    assert len(opened) == 1 and opened[0].state == "aborted"
    assert held(get_store(store_alias)) == ([], [])


def test_uploads_are_spooled_first_with_the_setting_off(staff, owners, store_alias, opened, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STREAM_UPLOADS": False}
    data = pdf_of(11 * MIB)
    response = upload(staff["a"], "note", owners.alice_note.pk, data)
    assert response.status_code == 201, response.content
    assert opened == []
    blob = Blob.objects.get()
    assert read_back(blob) == data
    assert held(get_store(store_alias)) == ([blob.storage_identifiers["name"]], [])


def test_parts_grow_so_that_a_huge_body_fits_in_ten_thousand(store_alias):
    store = get_store(store_alias)
    stream = store.open_stream(content_type="application/pdf", size_hint=200 * 1024**3)
    try:
        assert stream._part_size == 21 * MIB  # 200 GiB / 10,000 parts, rounded up to whole MiB
    finally:
        stream.abort()
    small = store.open_stream(content_type="application/pdf", size_hint=50 * MIB)
    try:
        assert small._part_size == PART
    finally:
        small.abort()
    assert held(store) == ([], [])


def test_a_streamed_file_is_attached_once(staff, owners, store_alias, rf):
    """A project's own view that attaches the upload twice gets a clear error, and one blob."""
    from django_attachments.exceptions import InvalidFile
    from django_attachments.uploadhandlers import StreamedUploadedFile

    store = get_store(store_alias)
    stream = store.open_stream(content_type="application/pdf")
    data = pdf_of(6 * MIB)
    from django_attachments.ingest import Hasher

    hasher = Hasher(256 * 1024)
    for offset in range(0, len(data), MIB):
        stream.write(data[offset : offset + MIB])
        hasher.update(data[offset : offset + MIB])
    stream.finish_parts()
    file = StreamedUploadedFile(stream, hasher.digest(), name="x.pdf", content_type="application/pdf", size=len(data))
    with pytest.raises(OSError):
        file.read()
    attachment = services.attach(file, owner_type="note", owner_id=owners.alice_note.pk)
    assert attachment.was_created and read_back(attachment.blob) == data
    with pytest.raises(InvalidFile):
        services.attach(file, owner_type="note", owner_id=owners.alice_note2.pk)
    file.close()  # after completion: the object stays
    assert held(store) == ([attachment.blob.storage_identifiers["name"]], [])


# -- over a live server: a body cut short, a storage failing midway ----------------------------------------------


def send_partly(live_url: str, owner_id: int, data: bytes, *, then) -> tuple[int | None, bytes]:
    """POST a multipart body of ``data`` to the API, calling ``then()`` once half of it is sent.

    ``then()`` returns False to drop the connection there (the answer is then None).
    """
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="owner_type"\r\n\r\nnote\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="owner_id"\r\n\r\n{owner_id}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    parts = urlsplit(live_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest("POST", LIST)
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(head) + len(data) + len(tail)))
        conn.endheaders()
        conn.send(head)
        half = len(data) // 2
        view = memoryview(data)
        for offset in range(0, half, MIB):
            conn.send(view[offset : min(offset + MIB, half)])
        if not then():
            return None, b""
        for offset in range(half, len(data), MIB):
            conn.send(view[offset : offset + MIB])
        conn.send(tail)
        response = conn.getresponse()
        return response.status, response.read()
    except (BrokenPipeError, ConnectionResetError):
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def served(settings, transactional_db) -> str:
    """The test project served on 127.0.0.1 from a thread (sharing the test's database), anyone may upload."""
    from pytest_django.live_server_helper import LiveServer

    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    }
    settings.STATIC_URL = "/static/"  # the server's static files handler needs one
    server = LiveServer("127.0.0.1:0")
    try:
        with server._live_server_modified_settings:
            yield server.url
    finally:
        server.stop()


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_body_cut_short_keeps_nothing(store_alias, served):
    from tests.testapp.models import Clinic, Note, Patient

    note = Note.objects.create(patient=Patient.objects.create(clinic=Clinic.objects.create(name="A"), name="P"))
    store = get_store(store_alias)

    def hang_up() -> bool:
        assert wait_for(lambda: held(store)[1]), "the upload never began to go up"
        return False

    status, _ = send_partly(served, note.pk, pdf_of(16 * MIB), then=hang_up)
    assert status is None
    # The server finds the body short when it reads on, then aborts what it sent.
    assert wait_for(lambda: held(store) == ([], []))
    assert Blob.objects.count() == 0


def test_a_storage_failing_midway_answers_503_and_keeps_nothing(store_alias, served):
    from tests.testapp.models import Clinic, Note, Patient

    note = Note.objects.create(patient=Patient.objects.create(clinic=Clinic.objects.create(name="A"), name="P"))
    store = get_store(store_alias)
    client = boto3.client(
        "s3",
        endpoint_url=store.storage.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=store.storage.access_key,
        aws_secret_access_key=store.storage.secret_key,
    )

    def drop_the_upload() -> bool:
        assert wait_for(lambda: held(store)[1]), "the upload never began to go up"
        for begun in client.list_multipart_uploads(Bucket=store.bucket)["Uploads"]:
            client.abort_multipart_upload(Bucket=store.bucket, Key=begun["Key"], UploadId=begun["UploadId"])
        return True

    status, raw = send_partly(served, note.pk, pdf_of(16 * MIB), then=drop_the_upload)
    assert status == 503, raw
    assert b"storage_unavailable" in raw
    assert wait_for(lambda: held(store) == ([], []))
    assert Blob.objects.count() == 0
