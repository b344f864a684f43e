"""Every store fault point, across attach, link, unlink, download and purge: nothing lost, nothing left behind.

For each fault the test asserts the invariants of docs/reliability.md: no row
references missing bytes; whatever object the fault left behind is found by
the next stray sweep; the caller gets a clear error; a retry succeeds.
Runs on local disk and on S3 (SeaweedFS, the main S3 server of tests/conftest.py), through ``tests/faults.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection
from django.utils import timezone

from django_attachments import services
from django_attachments.exceptions import StorageError, UploadFailed
from django_attachments.models import Attachment, Blob, DirectUpload
from django_attachments.stores import get_store
from tests import faults
from tests.conftest import COMMON_STORE_KINDS, get_s3_server

pytestmark = pytest.mark.django_db

NOW = timedelta(0)


@pytest.fixture(params=COMMON_STORE_KINDS)  # disk and the main S3 server: the subject is our code
def faulty(request, settings, tmp_path):
    faults.install()
    if request.param == "disk":
        config = {"BACKEND": "tests.faults.FaultyFileSystemStorage", "OPTIONS": {"location": str(tmp_path / "f")}}
    else:
        server = get_s3_server(request, request.param.removeprefix("s3-"))
        config = {**server.backend(server.make_bucket()), "BACKEND": "tests.faults.FaultyS3Storage"}
    settings.STORAGES = {**settings.STORAGES, "faulty": config}
    settings.DJANGO_ATTACHMENTS = {"STORAGE": "faulty"}
    store = get_store("faulty")
    assert isinstance(store, faults.FaultInjecting)
    yield store
    store.storage.faults.disarm()
    faults.uninstall()


def objects(store):
    store.storage.faults.armed.discard("list")
    return {obj.name for obj in store.list()}


def assert_consistent(store):
    """No row without bytes (with the right checksum), and after a stray sweep no object without a row."""
    store.storage.faults.disarm()
    for blob in Blob.objects.all():
        assert hashlib.sha256(faults.read_all(services.open_blob(blob))).hexdigest() == blob.checksum
    services.purge_strays(older_than=NOW, allow_young=True)
    assert objects(store) == {blob.storage_identifiers["name"] for blob in Blob.objects.all()}


@pytest.mark.parametrize("point", ["save.before", "save.partial", "save.after"])
def test_attach_with_a_failing_write(owners, faulty, pdf, point):
    faulty.storage.faults.arm(point)
    with pytest.raises(StorageError, match=f"injected fault: {point}"):
        services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    assert not Blob.objects.exists() and not Attachment.objects.exists()
    leftovers = objects(faulty)
    assert len(leftovers) == (0 if point == "save.before" else 1)
    assert_consistent(faulty)  # the sweep removes the partial or orphaned object
    assert objects(faulty) == set()
    attachment = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)  # the retry succeeds
    assert faults.read_all(services.open_blob(attachment.blob)) == pdf
    assert_consistent(faulty)


@pytest.mark.parametrize("failure", [IntegrityError, Exception])
def test_database_failure_after_the_write(owners, faulty, pdf, failure):
    def explode(execute, sql, params, many, context):
        if 'INSERT INTO "django_attachments_blob"' in sql:
            raise failure("injected database failure")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explode), pytest.raises(failure, match="injected database failure"):
        services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    assert not Blob.objects.exists() and objects(faulty) == set()  # the written bytes were removed
    services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    assert_consistent(faulty)


def test_database_failure_with_a_failing_cleanup_leaves_only_a_stray(owners, faulty, pdf):
    def explode(execute, sql, params, many, context):
        if 'INSERT INTO "django_attachments_blob"' in sql:
            raise IntegrityError("injected database failure")
        return execute(sql, params, many, context)

    faulty.storage.faults.arm("delete")
    with connection.execute_wrapper(explode), pytest.raises(IntegrityError):
        services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    assert not Blob.objects.exists() and len(objects(faulty)) == 1
    assert_consistent(faulty)
    assert objects(faulty) == set()


@pytest.mark.parametrize("point", faults.POINTS)
def test_link_and_unlink_never_touch_the_storage(owners, faulty, pdf, point):
    blob = services.attach(pdf, owner_type="note", owner_id=owners.alice_note.pk).blob
    faulty.storage.faults.arm(point)
    linked = services.link(blob, owner_type="patient", owner_id=owners.alice.pk)
    services.unlink(linked)
    assert services.unlink_all_for_owner("note", owners.alice_note.pk) == 1
    assert Blob.objects.orphans().count() == 1
    assert_consistent(faulty)


def test_download_with_a_failing_read(owners, faulty, pdf, django_user_model):
    from rest_framework.test import APIClient

    attachment = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("reader"))
    url = f"/api/attachments/{attachment.pk}/download/"
    faulty.storage.faults.arm("open")
    with pytest.raises(StorageError):
        services.open_blob(attachment.blob)
    response = client.get(url)
    assert response.status_code == 503 and response.json()["code"] == "storage_unavailable"
    faulty.storage.faults.disarm()
    retry = client.get(url)
    assert retry.status_code == 200 and b"".join(retry.streaming_content) == pdf
    assert_consistent(faulty)


def orphans(owners, count):
    blobs = []
    for i in range(count):
        attachment = services.attach(f"orphan {i}".encode(), owner_type="patient", owner_id=owners.alice.pk)
        services.unlink(attachment)
        blobs.append(attachment.blob)
    return blobs


@pytest.mark.parametrize("point", ["delete_many", "delete_many.partial"])
def test_purge_with_failing_deletes(owners, faulty, point):
    orphans(owners, 4)
    kept = services.attach(b"linked", owner_type="patient", owner_id=owners.alice.pk).blob
    faulty.storage.faults.arm(point)
    out = StringIO()
    with pytest.raises(CommandError, match="failure"):
        call_command("purge_orphan_attachments", "--older-than", "0", stdout=out, stderr=StringIO())
    assert list(Blob.objects.values_list("pk", flat=True)) == [kept.pk]  # rows went first, all of them
    strays = objects(faulty) - {kept.storage_identifiers["name"]}
    assert len(strays) == (4 if point == "delete_many" else 2)
    assert_consistent(faulty)  # the next stray sweep takes them
    assert objects(faulty) == {kept.storage_identifiers["name"]}


def test_stray_sweep_with_a_failing_listing_deletes_nothing(owners, faulty, pdf):
    services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    faulty.storage.save(faulty.new_name(), io.BytesIO(b"stray"))
    faulty.storage.faults.arm("list")
    result = services.purge_strays(older_than=NOW, allow_young=True)
    assert result.found == 0 and result.failures == ["storage 'faulty': injected fault: list"]
    assert len(objects(faulty)) == 2
    assert_consistent(faulty)


# -- verify ----------------------------------------------------------------------


def corrupt(store, blob, data):
    identifiers = blob.storage_identifiers
    if "bucket" in identifiers:
        store.client.put_object(Bucket=identifiers["bucket"], Key=identifiers["key"], Body=data)
    else:
        with open(store.storage.path(identifiers["name"]), "wb") as handle:
            handle.write(data)


def test_verify_reports_missing_and_corrupted_objects(owners, faulty, pdf, png):
    good = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk).blob
    rotten = services.attach(png, owner_type="patient", owner_id=owners.alice.pk).blob
    gone = services.attach(b"soon gone", owner_type="patient", owner_id=owners.alice.pk).blob
    assert services.verify_blobs().ok
    corrupt(faulty, rotten, png[:-1] + b"\x00")
    faulty.delete(gone.storage_identifiers)
    result = services.verify_blobs(batch_size=1)
    assert result.checked == 3 and not result.ok
    assert [m["id"] for m in result.missing] == [str(gone.pk)]
    assert [m["id"] for m in result.mismatched] == [str(rotten.pk)]
    assert result.mismatched[0]["expected"] == rotten.checksum
    faulty.storage.faults.arm("open")
    unreadable = services.verify_blobs()
    assert len(unreadable.errors) == 3 and unreadable.errors[0]["error"] == "injected fault: open"
    faulty.storage.faults.disarm()
    out = StringIO()
    with pytest.raises(CommandError, match="2 blob"):
        call_command("verify_attachments", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["checked"] == 3 and not summary["ok"] and len(summary["missing"]) == 1
    assert str(good.pk) not in {item["id"] for item in summary["missing"] + summary["mismatched"]}


# -- direct uploads --------------------------------------------------------------------------------


def direct_ticket(owners, data):
    started = services.start_upload(
        owner_type="patient",
        owner_id=owners.alice.pk,
        filename="scan.pdf",
        size=len(data),
        checksum=hashlib.sha256(data).hexdigest(),
    )
    return started.upload


def send_direct(upload, data):
    upload.refresh_from_db()
    services.receive_upload(upload, io.BytesIO(data), length=len(data))


def assert_consistent_with_tickets(store):
    """assert_consistent(), once no ticket is pending: their objects are the only others allowed."""
    DirectUpload.objects.filter(status=DirectUpload.PENDING).update(expires_at=timezone.now() - NOW)
    services.purge_uploads()
    assert_consistent(store)


@pytest.mark.parametrize("point", ["save.before", "save.partial", "save.after"])
def test_receiving_with_a_failing_write(owners, faulty, pdf, point, django_capture_on_commit_callbacks):
    upload = direct_ticket(owners, pdf)
    faulty.storage.faults.arm(point)
    with pytest.raises(StorageError, match=f"injected fault: {point}"):
        send_direct(upload, pdf)
    faulty.storage.faults.disarm()
    upload.refresh_from_db()
    assert upload.status == DirectUpload.PENDING and upload.received_checksum == ""
    # Whatever the failed write left under the reserved name (nothing, part or all of it) is gone:
    # the ticket takes the bytes again, and completes.
    assert objects(faulty) == set()
    send_direct(upload, pdf)
    with django_capture_on_commit_callbacks(execute=True):
        attachment = services.complete_upload(upload.pk)
    assert faults.read_all(services.open_blob(attachment.blob)) == pdf
    assert_consistent_with_tickets(faulty)


@pytest.mark.parametrize("point", ["stat", "open"])
def test_completing_with_a_failing_read_keeps_the_ticket_open(owners, faulty, pdf, point):
    upload = direct_ticket(owners, pdf)
    send_direct(upload, pdf)
    DirectUpload.objects.filter(pk=upload.pk).update(received_checksum="")  # so that the object is read
    faulty.storage.faults.arm(point)
    with pytest.raises(StorageError, match=f"injected fault: {point}"):
        services.complete_upload(upload.pk)
    upload.refresh_from_db()
    assert upload.status == DirectUpload.PENDING and not Blob.objects.exists()
    faulty.storage.faults.disarm()
    assert services.complete_upload(upload.pk).was_created  # the retry succeeds
    assert_consistent_with_tickets(faulty)


def test_failed_completion_with_a_failing_delete_leaves_only_a_stray(
    owners, faulty, pdf, django_capture_on_commit_callbacks
):
    upload = direct_ticket(owners, pdf)
    send_direct(upload, pdf[:-1] + b"!")  # tampered
    faulty.storage.faults.arm("delete")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(UploadFailed):
        services.complete_upload(upload.pk)
    assert len(objects(faulty)) == 1 and not Blob.objects.exists()
    assert_consistent(faulty)  # a failed ticket's object is stray: the sweep removes it
    assert objects(faulty) == set()


def test_database_failure_while_completing_keeps_the_ticket_and_its_bytes(owners, faulty, pdf):
    upload = direct_ticket(owners, pdf)
    send_direct(upload, pdf)

    def explode(execute, sql, params, many, context):
        if 'INSERT INTO "django_attachments_blob"' in sql:
            raise IntegrityError("injected database failure")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explode), pytest.raises(IntegrityError, match="injected database failure"):
        services.complete_upload(upload.pk)
    upload.refresh_from_db()
    assert upload.status == DirectUpload.PENDING and len(objects(faulty)) == 1
    services.purge_strays(older_than=NOW, allow_young=True)  # a pending ticket's object is not stray
    assert len(objects(faulty)) == 1
    attachment = services.complete_upload(upload.pk)
    assert faults.read_all(services.open_blob(attachment.blob)) == pdf
    assert_consistent_with_tickets(faulty)
