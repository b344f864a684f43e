"""Mirrors: every upload (and variant) copied to the MIRRORS storages, retried, backfilled, reported.

Real storages: local disk (``FileSystemStorage`` in temporary folders), moto's
S3 server and SeaweedFS. A mirror that is down is an S3 storage whose endpoint
is a port of 127.0.0.1 nothing listens on (every request refused by the
system, as when the service is down or unreachable); it comes back when its
alias points at a live server again. Uploads go through the API; the Tasks
framework's immediate backend runs the tasks once the upload commits
(``django_capture_on_commit_callbacks(execute=True)`` stands for the commit),
and its dummy backend keeps them for a test to run, as a worker would.

Runs on the suite's database: SQLite, and PostgreSQL under
``python -m tests.pgcluster -- pytest tests/test_mirrors.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files import File
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_attachments import services, tasks
from django_attachments.conf import app_settings
from django_attachments.exceptions import ObjectMissing
from django_attachments.models import Attachment, Blob, Replica, Variant
from django_attachments.services import migrating, mirroring
from django_attachments.signals import read_fell_back
from django_attachments.stores import get_store
from tests.apitools import body, download, upload
from tests.conftest import s3_backend, storage_config
from tests.servers import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]

PREVIEW = {"operation": "fit", "width": 48, "height": 48, "format": "webp", "eager": True}
DUMMY_TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}

#: (primary, mirror) store kinds: disk to S3, S3 to disk, and S3 to S3 across two servers.
PAIRS = [("disk", "s3-moto"), ("s3-seaweedfs", "disk"), ("s3-moto", "s3-seaweedfs")]


# -- storages and files ---------------------------------------------------------------------------


def down_s3() -> dict:
    """An S3 storage whose endpoint is a port nothing listens on: each request is refused, tried once."""
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2)
    return s3_backend(f"http://127.0.0.1:{free_port()}", "down", client_config=config)


@pytest.fixture
def mirrored(request, settings, tmp_path):
    """Uploads go to "attachments", copied to the mirror "mirror" (store kinds from the parameter, disk by
    default), with an eager "preview" variant; ``use(alias, config)`` points an alias elsewhere."""
    primary, mirror = getattr(request, "param", ("disk", "disk"))

    class Mirrored:
        kinds = (primary, mirror)

        @staticmethod
        def use(alias, config):
            settings.STORAGES = {**settings.STORAGES, alias: config}

        @staticmethod
        def fresh(kind):
            return storage_config(kind, request, tmp_path)

    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": storage_config(primary, request, tmp_path),
        "mirror": storage_config(mirror, request, tmp_path),
    }
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "STORAGE": "attachments",
        "MIRRORS": ["mirror"],
        "VARIANTS": {"preview": PREVIEW},
    }
    return Mirrored()


def jpeg_bytes(width=200, height=120, color=(30, 120, 200)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG")
    return out.getvalue()


def post(client, owners, data, filename, capture):
    with capture(execute=True):
        response = upload(client, "note", owners.alice_note.pk, data, filename=filename)
    assert response.status_code == 201, response.content
    return response.json()


def read(alias, identifiers) -> bytes:
    with get_store(alias).open(identifiers) as stream:
        return b"".join(stream.chunks(64 * 1024))


def names(alias) -> list[str]:
    return sorted(obj.name for obj in get_store(alias).list())


def age(model, pks, by=timedelta(minutes=5)):
    """Time passes: the rows were made ``by`` ago."""
    model.objects.filter(pk__in=pks).update(created_at=timezone.now() - by)


def retry_time_comes(**filters):
    """Time passes: the failed copies' retry time has come."""
    Replica.objects.filter(state=Replica.FAILED, **filters).update(retry_at=timezone.now() - timedelta(seconds=1))


def run(command, *args):
    out, err = StringIO(), StringIO()
    status = 0
    try:
        call_command(command, *args, stdout=out, stderr=err)
    except CommandError as exc:
        status = exc.returncode
        err.write(str(exc))
    text = out.getvalue()
    data = json.loads(text.strip().splitlines()[-1]) if "--json" in args else None
    return status, data, text, err.getvalue()


def mirror_tasks(backend_alias="default"):
    """The mirror tasks the dummy backend holds (what a worker would run), oldest first."""
    backend = tasks.mirror_blob.using(backend=backend_alias).get_backend()
    return [result for result in backend.results if result.task.func is tasks.mirror_blob.func]


def assert_copied(row, data: bytes | None = None):
    """``row`` (a blob or variant) has one copy in "mirror", verified: its bytes are the row's."""
    filters = {"variant": row} if isinstance(row, Variant) else {"blob": row, "variant__isnull": True}
    replica = Replica.objects.get(storage="mirror", **filters)
    assert replica.state == Replica.COPIED and replica.attempts == 0 and replica.error == ""
    copy = read("mirror", replica.storage_identifiers)
    assert (len(copy), hashlib.sha256(copy).hexdigest()) == (row.size, row.checksum)
    if data is not None:
        assert copy == data
    assert copy == read(row.storage, row.storage_identifiers)
    return replica


# -- every upload is copied --------------------------------------------------------------------


@pytest.mark.parametrize("mirrored", PAIRS, indirect=True, ids=lambda pair: "->".join(pair))
def test_an_upload_and_its_variant_are_copied_to_the_mirror(
    staff, owners, mirrored, django_capture_on_commit_callbacks
):
    data = jpeg_bytes()
    created = post(staff["a"], owners, data, "photo.jpg", django_capture_on_commit_callbacks)
    blob = Blob.objects.get(pk=created["blob_id"])
    variant = Variant.objects.get(blob=blob, name="preview")
    assert blob.storage == variant.storage == "attachments"
    blob_copy = assert_copied(blob, data)
    variant_copy = assert_copied(variant)
    assert names("mirror") == sorted([blob_copy.storage_identifiers["name"], variant_copy.storage_identifiers["name"]])
    assert Replica.objects.count() == 2
    # Nothing is left to do: the command finds nothing due, verify nothing missing or bad.
    status, summary, _, _ = run("process_attachments", "--json")
    assert (status, summary["counts"]["mirror_blobs"], summary["mirrors"]) == (0, 0, ["mirror"])
    age(Blob, [blob.pk])
    age(Variant, [variant.pk])
    status, report, _, _ = run("verify_attachments", "--json")
    assert status == 0, report
    assert report["checked"] == 4  # the blob, its variant, and their two copies
    assert report["missing_copies"] == [{"storage": "mirror", "blobs": 0, "variants": 0, "listed": []}]


def test_a_lazy_variant_made_on_request_is_copied_too(
    settings, staff, owners, mirrored, django_capture_on_commit_callbacks
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": {**PREVIEW, "eager": False}}}
    created = post(staff["a"], owners, jpeg_bytes(), "photo.jpg", django_capture_on_commit_callbacks)
    assert not Variant.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff["a"].get(f"/api/attachments/{created['id']}/variants/thumb/")
    assert response.status_code == 200
    assert_copied(Variant.objects.get(name="thumb"), body(response))


def test_the_copy_is_enqueued_on_commit_and_only_with_mirrors(
    settings, staff, owners, mirrored, django_capture_on_commit_callbacks
):
    settings.TASKS = DUMMY_TASKS
    tasks.mirror_blob.using(backend="default").get_backend().clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(staff["a"], "note", owners.alice_note.pk, b"first file", filename="a.txt")
    assert response.status_code == 201
    assert mirror_tasks() == []  # nothing before the commit
    for callback in callbacks:
        callback()
    queued = mirror_tasks()
    assert [result.args for result in queued] == [[response.json()["blob_id"]]]
    assert not Replica.objects.exists()  # the worker has not run it yet

    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": []}
    post(staff["a"], owners, b"second file", "b.txt", django_capture_on_commit_callbacks)
    assert len(mirror_tasks()) == 1  # no mirror, no task
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": ["mirror"]}

    outcome = tasks.mirror_blob.call(*queued[0].args)
    assert (outcome["due"], outcome["copied"], outcome["failed"]) == (True, 1, [])
    again = tasks.mirror_blob.call(*queued[0].args)  # a task run twice copies nothing more
    assert (again["due"], again.get("copied")) == (False, 0)
    assert Replica.objects.get().state == Replica.COPIED


# -- a mirror that is down ------------------------------------------------------------------------


def test_a_mirror_that_is_down_never_fails_the_upload_and_is_backfilled_once_back(
    staff, owners, mirrored, django_capture_on_commit_callbacks
):
    mirrored.use("mirror", down_s3())
    data = jpeg_bytes()
    created = post(staff["a"], owners, data, "photo.jpg", django_capture_on_commit_callbacks)
    blob = Blob.objects.get(pk=created["blob_id"])
    variant = Variant.objects.get(blob=blob)
    assert body(staff["a"].get(download(created["id"]))) == data

    failed = {(row.variant_id, row.state, row.attempts) for row in Replica.objects.all()}
    assert failed == {(None, Replica.FAILED, 1), (variant.pk, Replica.FAILED, 1)}  # one attempt each
    for row in Replica.objects.all():
        assert row.storage_identifiers == {} and row.error and row.error_code
        expected = migrating.mirror_retry_delay(1)
        assert timedelta(0) < row.retry_at - timezone.now() <= expected

    # Still down when the retry time comes: the command tries, fails, says so, and counts the attempt.
    retry_time_comes()
    status, summary, _, err = run("process_attachments", "--json")
    assert status == 1 and summary["ok"] is False
    assert (summary["counts"]["mirror_blobs"], summary["counts"]["mirror_failed"]) == (1, 2)
    assert {item["target"] for item in summary["mirror_failed"]} == {"mirror"}
    assert "mirror cop(ies) could not be made" in err
    assert set(Replica.objects.values_list("attempts", flat=True)) == {2}

    # Back: nothing before the retry time, then both copies.
    mirrored.use("mirror", mirrored.fresh("s3-moto"))
    status, summary, _, _ = run("process_attachments", "--json")
    assert (status, summary["counts"]["mirror_blobs"]) == (0, 0)
    retry_time_comes()
    status, summary, text, _ = run("process_attachments", "--json")
    assert status == 0, summary
    counts = summary["counts"]
    assert (counts["mirror_blobs"], counts["mirrored"], counts["mirror_failed"]) == (1, 2, 0)
    assert counts["mirrored_bytes"] == blob.size + variant.size
    assert_copied(blob, data)
    assert_copied(variant)


def test_a_copy_that_failed_is_retried_by_deferred_tasks_at_most_scan_max_attempts(
    settings, staff, owners, mirrored, django_capture_on_commit_callbacks
):
    settings.TASKS = DUMMY_TASKS
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCAN_MAX_ATTEMPTS": 3, "VARIANTS": {}}
    tasks.mirror_blob.using(backend="default").get_backend().clear()
    mirrored.use("mirror", down_s3())
    created = post(staff["a"], owners, b"a file for the mirror", "a.txt", django_capture_on_commit_callbacks)
    [first] = mirror_tasks()

    ran = 0
    pending = [first]
    while pending:
        result = pending.pop(0)
        before = timezone.now()
        outcome = tasks.mirror_blob.call(*result.args)
        ran += 1
        replica = Replica.objects.get()
        assert replica.attempts == ran and outcome["failed"][0]["target"] == "mirror"
        new = mirror_tasks()[ran:]
        if ran < app_settings.SCAN_MAX_ATTEMPTS:
            # Enqueued again, deferred to the copy's retry time (the delay doubles).
            [retry] = new
            delay = migrating.mirror_retry_delay(ran)
            assert outcome["retry_in"] == pytest.approx(delay.total_seconds(), abs=5)
            assert abs(retry.task.run_after - (before + delay)) < timedelta(seconds=5)
            assert abs(replica.retry_at - retry.task.run_after) < timedelta(seconds=5)
            # A copy of the task run before its time (enqueued twice) spends no attempt.
            early = tasks.mirror_blob.call(*retry.args)
            assert early["due"] is False and Replica.objects.get().attempts == ran
            retry_time_comes()
            pending.append(retry)
        else:
            assert new == [] and outcome["retry_in"] is None  # no more: left to process_attachments
    assert ran == 3

    # The command still tries it once its retry time has come, and makes it once the mirror is back.
    mirrored.use("mirror", mirrored.fresh("disk"))
    retry_time_comes()
    status, summary, _, _ = run("process_attachments", "--json")
    assert (status, summary["counts"]["mirrored"]) == (0, 1)
    assert_copied(Blob.objects.get(pk=created["blob_id"]), b"a file for the mirror")


def test_an_inline_backend_does_not_retry_at_once(staff, owners, mirrored, django_capture_on_commit_callbacks, caplog):
    mirrored.use("mirror", down_s3())
    with caplog.at_level(logging.INFO, logger="django_attachments.tasks"):
        post(staff["a"], owners, b"inline", "a.txt", django_capture_on_commit_callbacks)
    assert Replica.objects.get().attempts == 1
    assert "cannot defer; process_attachments copies it" in caplog.text


def test_blobs_a_lost_task_left_are_copied_by_the_command_once_a_minute_old(
    settings, staff, owners, mirrored, django_capture_on_commit_callbacks
):
    # Stored before the mirror was configured (as a lost task would leave them): no row in the mirror.
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": []}
    first = post(staff["a"], owners, b"file 1", "a.txt", django_capture_on_commit_callbacks)
    second = post(staff["a"], owners, b"file 2", "b.txt", django_capture_on_commit_callbacks)
    photo = post(staff["a"], owners, jpeg_bytes(), "c.jpg", django_capture_on_commit_callbacks)
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": ["mirror"]}
    assert not Replica.objects.exists()

    status, summary, _, _ = run("process_attachments", "--json")
    assert (status, summary["counts"]["mirror_blobs"]) == (0, 0)  # younger than a minute: its task may run
    age(Blob, [first["blob_id"], second["blob_id"]])
    status, summary, _, _ = run("process_attachments", "--json", "--limit", "1")
    assert (status, summary["counts"]["mirror_blobs"], summary["counts"]["mirrored"]) == (0, 1, 1)
    status, summary, text, _ = run("process_attachments")
    assert status == 0 and "mirrors (mirror): 1 cop(ies) made (6\xa0bytes) for 1 blob(s), 0 failed" in text
    assert Replica.objects.count() == 2

    # A variant a minute old without a copy makes its blob due (the blob, still young, is copied with it).
    variant = Variant.objects.get(blob_id=photo["blob_id"])
    age(Variant, [variant.pk])
    status, summary, _, _ = run("process_attachments", "--json")
    assert (summary["counts"]["mirror_blobs"], summary["counts"]["mirrored"]) == (1, 2)
    for blob in Blob.objects.all():
        assert_copied(blob)
    assert_copied(variant)
    # A run naming a stage does that stage alone.
    Replica.objects.all().delete()
    age(Blob, [photo["blob_id"]])
    status, summary, _, _ = run("process_attachments", "--analyze", "--json")
    assert "mirrors" not in summary and "mirror_blobs" not in summary["counts"]
    assert mirroring.due().count() == 3


def test_the_command_enqueues_the_copies_with_enqueue(
    settings, staff, owners, mirrored, django_capture_on_commit_callbacks
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": []}
    created = post(staff["a"], owners, b"later", "a.txt", django_capture_on_commit_callbacks)
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": ["mirror"]}
    settings.TASKS = DUMMY_TASKS
    tasks.mirror_blob.using(backend="default").get_backend().clear()
    age(Blob, [created["blob_id"]])
    status, summary, _, _ = run("process_attachments", "--enqueue", "--json")
    assert (status, summary["counts"]["mirror_enqueued"]) == (0, 1)
    assert [result.args for result in mirror_tasks()] == [[created["blob_id"]]]
    assert not Replica.objects.exists()


def test_migrate_attachments_mirror_backfills_what_failed(staff, owners, mirrored, django_capture_on_commit_callbacks):
    mirrored.use("mirror", down_s3())
    data = jpeg_bytes()
    created = post(staff["a"], owners, data, "photo.jpg", django_capture_on_commit_callbacks)
    assert set(Replica.objects.values_list("state", flat=True)) == {Replica.FAILED}
    mirrored.use("mirror", mirrored.fresh("s3-seaweedfs"))
    status, summary, _, _ = run("migrate_attachments", "--mirror", "--json")
    assert status == 0, summary
    assert (summary["copied"], summary["failed"]) == (2, [])
    blob = Blob.objects.get(pk=created["blob_id"])
    assert_copied(blob, data)
    assert_copied(Variant.objects.get(blob=blob))


# -- reads fall back to the mirror --------------------------------------------------------------


@pytest.mark.parametrize("mirrored", [("disk", "disk"), ("s3-seaweedfs", "s3-moto")], indirect=True, ids="->".join)
def test_reads_fall_back_to_the_mirror_when_the_primary_object_is_gone(
    staff, owners, mirrored, django_capture_on_commit_callbacks, caplog
):
    data = jpeg_bytes()
    created = post(staff["a"], owners, data, "photo.jpg", django_capture_on_commit_callbacks)
    blob = Blob.objects.get(pk=created["blob_id"])
    variant = Variant.objects.get(blob=blob)
    preview = read("attachments", variant.storage_identifiers)
    get_store("attachments").delete(blob.storage_identifiers)
    get_store("attachments").delete(variant.storage_identifiers)
    seen = []

    def receiver(sender, row, storage, error, **kwargs):
        seen.append((sender, row.pk, storage, type(error).__name__))

    read_fell_back.connect(receiver)
    try:
        with caplog.at_level(logging.WARNING, logger="django_attachments"):
            response = staff["a"].get(download(created["id"]))
            assert response.status_code == 200 and body(response) == data
            ranged = staff["a"].get(download(created["id"]), HTTP_RANGE="bytes=10-19")
            assert ranged.status_code == 206 and body(ranged) == data[10:20]
            shown = staff["a"].get(f"/api/attachments/{created['id']}/variants/preview/")
            assert shown.status_code == 200 and body(shown) == preview
    finally:
        read_fell_back.disconnect(receiver)
    assert seen == [
        (Blob, blob.pk, "mirror", "ObjectMissing"),
        (Blob, blob.pk, "mirror", "ObjectMissing"),
        (Variant, variant.pk, "mirror", "ObjectMissing"),
    ]
    assert f"Read blob {blob.pk} from its copy in storage 'mirror'" in caplog.text
    assert f"Read variant {variant.pk} from its copy in storage 'mirror'" in caplog.text


def fall_back_from_a_failing_primary(staff, created, data, caplog) -> list:
    seen = []

    def receiver(sender, row, storage, error, **kwargs):
        seen.append((row.pk, storage, error))

    read_fell_back.connect(receiver)
    try:
        with caplog.at_level(logging.WARNING, logger="django_attachments"):
            response = staff["a"].get(download(created["id"]))
            assert response.status_code == 200 and body(response) == data
    finally:
        read_fell_back.disconnect(receiver)
    [(pk, storage, error)] = seen
    assert (str(pk), storage) == (created["blob_id"], "mirror")
    assert not isinstance(error, ObjectMissing)  # the storage failed; it did not say the object is gone
    assert "its storage 'attachments' failed" in caplog.text
    return seen


def test_reads_fall_back_to_the_mirror_when_the_primary_disk_fails(
    settings, staff, owners, mirrored, django_capture_on_commit_callbacks, caplog
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {}}
    data = os.urandom(300_000)
    created = post(staff["a"], owners, data, "scan.bin", django_capture_on_commit_callbacks)
    assert_copied(Blob.objects.get(pk=created["blob_id"]), data)
    # The disk goes: its folder is no longer there, and a file stands where it was mounted (the
    # system answers "not a directory", not "no such file").
    location = settings.STORAGES["attachments"]["OPTIONS"]["location"]
    os.rename(location, location + ".away")
    with open(location, "wb") as handle:
        handle.write(b"not the volume")
    fall_back_from_a_failing_primary(staff, created, data, caplog)


@pytest.mark.parametrize("mirrored", [("s3-seaweedfs", "disk")], indirect=True, ids="->".join)
def test_reads_fall_back_to_the_mirror_when_the_primary_s3_is_unreachable(
    settings, staff, owners, mirrored, django_capture_on_commit_callbacks, caplog
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {}}
    data = os.urandom(300_000)
    created = post(staff["a"], owners, data, "scan.bin", django_capture_on_commit_callbacks)
    assert_copied(Blob.objects.get(pk=created["blob_id"]), data)
    # The primary goes down: its alias now reaches no server (the object is still there, unreachable).
    down = down_s3()
    down["OPTIONS"]["bucket_name"] = settings.STORAGES["attachments"]["OPTIONS"]["bucket_name"]
    mirrored.use("attachments", down)
    fall_back_from_a_failing_primary(staff, created, data, caplog)


# -- verify_attachments ---------------------------------------------------------------------------


@pytest.mark.parametrize("mirrored", [("disk", "disk"), ("disk", "s3-moto")], indirect=True, ids="->".join)
def test_verify_names_a_corrupted_mirror_copy(settings, staff, owners, mirrored, django_capture_on_commit_callbacks):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {}}
    good = post(staff["a"], owners, b"a good copy", "good.txt", django_capture_on_commit_callbacks)
    bad = post(staff["a"], owners, b"bytes about to rot", "bad.txt", django_capture_on_commit_callbacks)
    replica = Replica.objects.get(blob_id=bad["blob_id"])
    name = replica.storage_identifiers["name"]
    rotten = b"bytes abouT to rot"
    mirror = get_store("mirror")
    if mirrored.kinds[1] == "disk":
        with open(mirror.storage.path(name), "wb") as handle:
            handle.write(rotten)
    else:
        options = settings.STORAGES["mirror"]["OPTIONS"]
        import boto3

        client = boto3.client("s3", endpoint_url=options["endpoint_url"], region_name="us-east-1")
        client.put_object(Bucket=options["bucket_name"], Key=name, Body=rotten)

    status, report, _, _ = run("verify_attachments", "--json")
    assert status == 1 and report["ok"] is False
    [entry] = report["mismatched"]
    assert entry["kind"] == "copy" and entry["id"] == str(replica.pk)
    assert (entry["storage"], entry["name"], entry["blob"]) == ("mirror", name, bad["blob_id"])
    assert entry["actual"] == hashlib.sha256(rotten).hexdigest() and entry["expected"] != entry["actual"]
    assert report["missing"] == report["errors"] == []
    status, _, text, err = run("verify_attachments")
    assert status == 1 and f"mismatch: copy {replica.pk} of blob {bad['blob_id']} (mirror: {name})" in text
    assert "failed verification" in err
    assert good["blob_id"] not in text


def test_verify_reports_the_blobs_and_variants_missing_a_mirror_copy(
    settings, staff, owners, mirrored, django_capture_on_commit_callbacks
):
    copied = post(staff["a"], owners, b"copied", "a.txt", django_capture_on_commit_callbacks)
    mirror = settings.STORAGES["mirror"]
    mirrored.use("mirror", down_s3())
    failed = post(staff["a"], owners, jpeg_bytes(), "b.jpg", django_capture_on_commit_callbacks)
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": []}
    untried = post(staff["a"], owners, b"before the mirror", "c.txt", django_capture_on_commit_callbacks)
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": ["mirror"]}
    mirrored.use("mirror", mirror)
    young = post(staff["a"], owners, b"its task is running", "d.txt", django_capture_on_commit_callbacks)
    Replica.objects.filter(blob_id=young["blob_id"]).delete()  # not made yet
    age(Blob, [copied["blob_id"], failed["blob_id"], untried["blob_id"]])
    age(Variant, list(Variant.objects.values_list("pk", flat=True)))

    with CaptureQueriesContext(connection) as queries:
        report = mirroring.missing("mirror")
    assert len(queries) == 2  # one for the blobs, one for the variants: not one per blob
    assert (report.blobs, report.variants) == (2, 1)

    status, data, _, err = run("verify_attachments", "--json")
    assert status == 1 and data["ok"] is False
    assert data["missing"] == data["mismatched"] == data["errors"] == []  # every copy there is sound
    [missing] = data["missing_copies"]
    variant = Variant.objects.get(blob_id=failed["blob_id"])
    assert (missing["storage"], missing["blobs"], missing["variants"]) == ("mirror", 2, 1)
    listed = {(item["kind"], item["id"]): item for item in missing["listed"]}
    assert set(listed) == {("blob", failed["blob_id"]), ("blob", untried["blob_id"]), ("variant", str(variant.pk))}
    assert listed[("blob", failed["blob_id"])]["attempts"] == 1 and listed[("blob", failed["blob_id"])]["code"]
    assert listed[("blob", untried["blob_id"])]["attempts"] == 0 and listed[("blob", untried["blob_id"])]["code"] == ""
    assert listed[("variant", str(variant.pk))]["blob"] == failed["blob_id"]
    assert "copies are missing in a mirror (3 in 'mirror')" in err

    status, data, _, _ = run("verify_attachments", "--json", "--list-missing", "1")
    [missing] = data["missing_copies"]
    assert (missing["blobs"], missing["variants"], len(missing["listed"])) == (2, 1, 2)  # one of each kind
    status, _, text, _ = run("verify_attachments", "--list-missing", "1")
    assert "mirror 'mirror': 2 blob(s) and 1 variant(s) without a copy" in text
    assert "... and 1 more" in text

    status, summary, _, _ = run("process_attachments", "--json")  # the untried one (the failed: not yet)
    assert (status, summary["counts"]["mirrored"]) == (0, 1)
    retry_time_comes()
    status, summary, _, _ = run("process_attachments", "--json")
    assert (status, summary["counts"]["mirrored"]) == (0, 2)
    status, data, _, _ = run("verify_attachments", "--json")
    assert status == 0 and data["missing_copies"][0]["listed"] == [] and data["ok"] is True


# -- purge and sweep -----------------------------------------------------------------------------


def put_stray(alias, data=b"stray bytes"):
    checksum = hashlib.sha256(data).hexdigest()
    return get_store(alias).save(File(io.BytesIO(data)), size=len(data), checksum=checksum, content_type="x/y")["name"]


@pytest.mark.parametrize("mirrored", [("disk", "s3-moto"), ("s3-seaweedfs", "disk")], indirect=True, ids="->".join)
def test_the_purge_removes_a_blobs_mirror_copies_and_the_sweep_keeps_them(
    staff, owners, mirrored, django_capture_on_commit_callbacks
):
    kept = post(staff["a"], owners, jpeg_bytes(color=(1, 2, 3)), "kept.jpg", django_capture_on_commit_callbacks)
    gone = post(staff["a"], owners, jpeg_bytes(color=(9, 8, 7)), "gone.jpg", django_capture_on_commit_callbacks)
    kept_copies = sorted(r.storage_identifiers["name"] for r in Replica.objects.filter(blob_id=kept["blob_id"]))
    assert len(kept_copies) == 2 and len(names("mirror")) == 4
    stray = put_stray("mirror")

    # The sweep: the mirror's copies are held by their rows; only the stray goes.
    result = services.purge_strays(older_than=timedelta(0), allow_young=True)
    assert result.failures == [] and result.removed == 1
    assert stray not in names("mirror") and len(names("mirror")) == 4

    # The purge: an orphan goes with its copies, bytes and rows.
    services.unlink(Attachment.objects.get(pk=gone["id"]))
    age(Blob, [gone["blob_id"]], by=timedelta(days=30))
    result = services.purge_orphans()
    assert (result.removed, result.failures) == (1, [])
    assert names("mirror") == kept_copies
    assert Replica.objects.count() == 2 and not Replica.objects.exclude(blob_id=kept["blob_id"]).exists()
