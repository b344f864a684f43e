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


def test_parts_grow_with_the_bytes_that_arrive_not_with_a_declared_length(store_alias, monkeypatch):
    """Part sizes double every PARTS_PER_SIZE parts as bytes come; nothing is sized by what a client claims."""
    from django_attachments.stores import s3

    monkeypatch.setattr(s3._S3StreamedWrite, "parts_per_size", 2)
    store = get_store(store_alias)
    stream = store.open_stream(content_type="application/pdf")
    data = os.urandom(2 * PART + 2 * 2 * PART + 3 * MIB)  # two parts of 5 MiB, two of 10, then 3 MiB
    for offset in range(0, len(data), 3 * MIB):
        stream.write(data[offset : offset + 3 * MIB])
    stream.finish_parts()
    parts = store.client.list_parts(Bucket=store.bucket, Key=stream.identifiers["key"], UploadId=stream.upload_id)
    assert [part["Size"] for part in parts["Parts"]] == [PART, PART, 2 * PART, 2 * PART, 3 * MIB]
    identifiers = stream.complete()
    with store.open(identifiers) as reader:
        assert b"".join(iter(lambda: reader.read(MIB), b"")) == data
    assert held(store)[1] == []


def test_a_declared_length_sets_no_buffer_size(store_alias):
    assert "size_hint" not in S3Store.open_stream.__code__.co_varnames
    stream = get_store(store_alias).open_stream(content_type="application/pdf")
    try:
        stream.write(b"x")
        # What the stream holds is what it was given: the byte, in a part of PART bytes to come.
        assert (stream._chunks, stream._filled, stream._part_size) == ([b"x"], 1, PART)
    finally:
        stream.abort()


def test_a_part_is_the_chunks_written_and_a_buffer_written_is_copied(store_alias):
    """Bytes are kept as they are, not copied; a buffer the caller may fill again is copied first."""
    store = get_store(store_alias)
    stream = store.open_stream(content_type="application/pdf")
    first, buffer = pdf_of(3 * MIB), bytearray(os.urandom(3 * MIB))
    stream.write(first)
    assert stream._chunks[0] is first
    stream.write(buffer)
    sent = bytes(buffer)
    buffer[:] = bytes(len(buffer))  # refilled by its owner before the part is sent
    stream.write(memoryview(b"the end"))
    identifiers = stream.complete()
    with store.open(identifiers) as reader:
        assert b"".join(iter(lambda: reader.read(MIB), b"")) == first + sent + b"the end"


def test_a_part_sent_again_after_a_server_error_is_sent_whole(store_alias):
    """botocore retries a part the service answered 500: the part's chunks go again from the start,
    and the service (SeaweedFS checks the length and the CRC-32) keeps them."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, *args, **kwargs):
            yield b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"

    store = get_store(store_alias)
    refused = []

    def fail_once(request, **kwargs):
        if not refused:
            refused.append(request.url)
            return AWSResponse(request.url, 500, {}, Raw())
        return None

    events = store.part_client.meta.events
    events.register_first("before-send.s3.UploadPart", fail_once)
    try:
        stream = store.open_stream(content_type="application/pdf")
        data = pdf_of(PART + 4321)
        for offset in range(0, len(data), MIB):
            stream.write(data[offset : offset + MIB])
        identifiers = stream.complete()
    finally:
        events.unregister("before-send.s3.UploadPart", fail_once)
    assert len(refused) == 1
    with store.open(identifiers) as reader:
        assert b"".join(iter(lambda: reader.read(MIB), b"")) == data


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


# -- what is streamed, and when ---------------------------------------------------------------------------------


def multipart_body(files: list[tuple[str, bytes]], fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, data in files:
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="f.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def test_only_the_api_file_field_is_streamed_and_only_once(staff, owners, store_alias, opened):
    fields = {"owner_type": "note", "owner_id": str(owners.alice_note.pk)}
    first, last = pdf_of(11 * MIB, seed=b"1"), pdf_of(11 * MIB, seed=b"2")
    files = [("other", pdf_of(11 * MIB, seed=b"o")), ("file", first), ("junk", pdf_of(11 * MIB, seed=b"j")),
             ("file", last)]  # fmt: skip
    body, content_type = multipart_body(files, fields)
    response = staff["a"].generic("POST", LIST, body, content_type=content_type)
    assert response.status_code == 201, response.content
    assert len(opened) == 1 and opened[0].state == "aborted"  # the first "file"; DRF takes the last
    blob = Blob.objects.get()
    assert blob.checksum == hashlib.sha256(last).hexdigest()
    assert held(get_store(store_alias)) == ([blob.storage_identifiers["name"]], [])


def test_a_session_request_is_spooled_and_a_forged_one_sends_nothing(owners, store_alias, opened, client):
    """A session's CSRF check parses the body before the request is known to be allowed: nothing streams then."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_user("sam", password="x")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    data = pdf_of(11 * MIB)
    fields = {"owner_type": "note", "owner_id": str(owners.alice_note.pk)}
    body, content_type = multipart_body([("file", data)], fields)
    forged = browser.generic("POST", LIST, body, content_type=content_type, HTTP_ACCEPT="application/json")
    assert forged.status_code == 403, forged.content
    assert opened == [] and held(get_store(store_alias)) == ([], [])
    browser.get("/api/attachments/")  # a page that sets the CSRF cookie, as a browser would have one
    token = browser.cookies["csrftoken"].value if "csrftoken" in browser.cookies else None
    if token is None:
        from django.middleware.csrf import _get_new_csrf_string

        token = _get_new_csrf_string()
        browser.cookies["csrftoken"] = token
    sent = browser.generic("POST", LIST, body, content_type=content_type, HTTP_X_CSRFTOKEN=token)
    assert sent.status_code == 201, sent.content
    assert opened == []  # spooled, then written
    assert read_back(Blob.objects.get()) == data


def test_the_hashing_handler_installed_by_a_project_still_streams(staff, owners, store_alias, opened, settings):
    settings.FILE_UPLOAD_HANDLERS = [
        "django.core.files.uploadhandler.MemoryFileUploadHandler",
        "django_attachments.uploadhandlers.HashingTemporaryFileUploadHandler",
    ]
    response = upload(staff["a"], "note", owners.alice_note.pk, pdf_of(11 * MIB))
    assert response.status_code == 201, response.content
    assert len(opened) == 1 and opened[0].completed


def test_a_join_whose_answer_is_lost_leaves_no_object(staff, owners, store_alias, opened, monkeypatch):
    """The service joins the parts but its answer never comes: 503, and the object it made is deleted."""
    from botocore.exceptions import ReadTimeoutError

    real = S3Store._complete

    def joined_then_lost(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise ReadTimeoutError(endpoint_url="the service")

    monkeypatch.setattr(S3Store, "_complete", joined_then_lost)
    response = upload(staff["a"], "note", owners.alice_note.pk, pdf_of(11 * MIB))
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "storage_unavailable"
    assert Blob.objects.count() == 0
    assert held(get_store(store_alias)) == ([], [])


def test_a_stream_that_cannot_begin_leaves_no_temporary_file(staff, owners, store_alias, settings, tmp_path):
    import gc

    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "spool")
    (tmp_path / "spool").mkdir()
    from tests.servers import free_port

    storage = settings.STORAGES[store_alias]
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens: every request to the storage fails
    settings.STORAGES = {
        **settings.STORAGES,
        store_alias: {**storage, "OPTIONS": {**storage["OPTIONS"], "endpoint_url": gone}},
    }
    gc.disable()  # what a reference cycle would keep, the collector must not clean up for us
    try:
        response = upload(staff["a"], "note", owners.alice_note.pk, pdf_of(11 * MIB))
        assert response.status_code == 503, response.content
        assert list((tmp_path / "spool").iterdir()) == []
    finally:
        gc.enable()


def test_the_purge_keeps_a_stream_still_arriving_and_aborts_an_abandoned_one(store_alias, monkeypatch, request):
    """A streamed upload has no ticket: the purge of incomplete uploads tells a live one by its newest part,
    up to ARRIVING_UPLOAD_MAX_AGE after it began."""
    if request.node.callspec.params["store_alias"] == "s3-moto":
        pytest.skip("moto says every multipart upload began on 2010-11-10, so none is young enough to keep")
    from datetime import timedelta

    from django_attachments.services import purging

    store = get_store(store_alias)
    abandoned, live, lingering = (store.open_stream(content_type="application/octet-stream") for _ in range(3))
    part = os.urandom(PART)

    def wait_for(stream, parts: int) -> None:
        deadline = time.monotonic() + 30
        while len(store.list_parts(stream.identifiers, stream.upload_id)) != parts:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    for stream in (abandoned, live, lingering):
        stream.write(part)
        wait_for(stream, 1)
    time.sleep(6)  # the services keep whole seconds
    for stream in (live, lingering):
        stream.write(part)
        wait_for(stream, 2)
    # All three began over 4 s ago; only two received a part since.
    result = services.purge_incomplete_uploads(older_than=timedelta(seconds=4), allow_young=True)
    assert result.ok and (result.found, result.removed) == (1, 1)
    assert sorted(held(store)[1]) == sorted([live.upload_id, lingering.upload_id])
    live.write(b"the end")
    identifiers = live.complete()
    with store.open(identifiers) as reader:
        assert b"".join(iter(lambda: reader.read(MIB), b"")) == part + part + b"the end"
    # Past its longest life, an upload goes even while parts arrive.
    monkeypatch.setattr(purging, "ARRIVING_UPLOAD_MAX_AGE", timedelta(0))
    result = services.purge_incomplete_uploads(older_than=timedelta(seconds=4), allow_young=True)
    assert result.ok and (result.found, result.removed) == (1, 1)
    assert held(store)[1] == []
    abandoned.abort()
    lingering.abort()


@pytest.mark.parametrize("params", [{"ServerSideEncrpytion": "AES256"}, {"CacheControl": ["no-store"]}])
def test_object_parameters_are_checked_on_the_streamed_path_as_on_save(settings, store_server, store_alias, params):
    """Only a stream's parts go through the client that skips botocore's parameter checks: a misspelt or
    mistyped object parameter is refused by the streamed upload as by save(), and nothing is kept."""
    from django.core.files.base import ContentFile

    from django_attachments.exceptions import StorageError

    bucket = store_server.make_bucket()
    settings.STORAGES = {**settings.STORAGES, store_alias: store_server.backend(bucket, object_parameters=params)}
    store = get_store(store_alias)
    with pytest.raises(StorageError, match="Parameter validation failed"):
        store.save(ContentFile(b"abc"), size=3, checksum=hashlib.sha256(b"abc").hexdigest(), content_type="text/plain")
    with pytest.raises(StorageError, match="Parameter validation failed"):
        store.open_stream(content_type="text/plain")
    assert held(store) == ([], [])
