"""Faults between bytes and rows: never a row without bytes, never bytes left behind by a failed attach."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection, transaction

from django_attachments import services
from django_attachments.exceptions import StorageError
from django_attachments.models import Attachment, Blob
from django_attachments.signals import attachment_created
from django_attachments.stores import get_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def flaky(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "flaky": {"BACKEND": "tests.failing_storage.FlakyStorage", "OPTIONS": {"location": str(tmp_path / "flaky")}},
    }
    settings.DJANGO_ATTACHMENTS = {"STORAGE": "flaky"}
    return get_store("flaky")


def names(store):
    return sorted(obj.name for obj in store.list())


def fail_sql(fragment):
    """Make every statement containing ``fragment`` fail like a lost connection."""

    def wrapper(execute, sql, params, many, context):
        if fragment in sql:
            raise OperationalError(f"injected failure on: {fragment}")
        return execute(sql, params, many, context)

    return connection.execute_wrapper(wrapper)


def test_storage_failure_writes_no_row(owners, flaky, pdf):
    flaky.storage.fail_saves = True
    with pytest.raises(StorageError, match="injected"):
        services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    assert not Blob.objects.exists() and not Attachment.objects.exists()
    flaky.storage.fail_saves = False
    attachment = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)  # a retry succeeds
    assert services.open_blob(attachment.blob).read() == pdf


@pytest.mark.parametrize("table", ['"django_attachments_blob"', '"django_attachments_attachment"'])
def test_database_failure_after_the_write_removes_the_bytes(owners, store, pdf, table):
    with fail_sql(f"INSERT INTO {table}"):
        with pytest.raises(OperationalError):
            services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    assert not Blob.objects.exists()
    assert names(store) == []
    services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    assert len(names(store)) == 1


def test_error_in_a_receiver_rolls_back_rows_and_bytes(owners, store, pdf):
    def explode(**kwargs):
        raise RuntimeError("receiver failed")

    attachment_created.connect(explode)
    try:
        with pytest.raises(RuntimeError):
            services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    finally:
        attachment_created.disconnect(explode)
    assert not Blob.objects.exists() and names(store) == []


def test_failed_cleanup_keeps_the_original_error(owners, flaky, pdf, caplog):
    flaky.storage.fail_deletes = True
    with fail_sql('INSERT INTO "django_attachments_blob"'):
        with pytest.raises(OperationalError):
            services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    # The object could not be removed: it is stray (no row points at it) and logged.
    assert not Blob.objects.exists()
    assert len(names(flaky)) == 1
    assert "stray until the next purge" in caplog.text


def test_outer_rollback_leaves_at_most_a_stray_object(owners, store, pdf):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
            raise RuntimeError("the caller's own transaction fails later")
    assert not Blob.objects.exists()
    assert len(names(store)) <= 1  # a stray object for the purge, never a row without bytes


def test_old_blobs_stay_readable_after_switching_storage(owners, store, settings, tmp_path, pdf, png):
    old = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk).blob
    settings.STORAGES = {
        **settings.STORAGES,
        "new": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "n")}},
    }
    settings.DJANGO_ATTACHMENTS = {"STORAGE": "new"}
    new = services.attach(png, owner_type="patient", owner_id=owners.alice.pk).blob
    assert (old.storage, new.storage) == (store.alias, "new")
    assert services.open_blob(Blob.objects.get(pk=old.pk)).read() == pdf
    assert services.open_blob(Blob.objects.get(pk=new.pk)).read() == png
