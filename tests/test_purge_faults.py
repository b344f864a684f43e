"""A purge whose database delete fails after it chose its batch: the bytes of that batch stay.

Each purge batch locks its rows, deletes them and commits; only then are the
bytes deleted. Here the DATABASE fails in between: the DELETE of the batch's
rows (blobs for the orphan purge, tickets for the expired-upload purge), or
the COMMIT after it. The purge must report the failure, every row still
present must still have its bytes (read back, SHA-256 checked), and a later
run must finish the job. On disk and on S3.
"""

from __future__ import annotations

import hashlib
import io
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.utils import timezone

from django_attachments import services
from django_attachments.exceptions import StorageError
from django_attachments.models import Blob, DirectUpload
from django_attachments.stores import get_store
from tests.faults import read_all

pytestmark = pytest.mark.django_db

NOW = timedelta(0)
BLOBS = "django_attachments_blob"
TICKETS = "django_attachments_directupload"
#: Where the database fails: the DELETE statement itself, or the COMMIT of its transaction
#: (a real COMMIT needs a test that does not run inside a transaction of its own).
POINTS = ["delete", pytest.param("commit", marks=pytest.mark.django_db(transaction=True))]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DatabaseFault:
    """Fails the ``nth`` DELETE of ``table``'s rows, or the COMMIT of the transaction that ran it."""

    def __init__(self, table: str, point: str, nth: int) -> None:
        self.table, self.point, self.nth = table, point, nth
        self.deletes = 0
        self.commit_doomed = False
        self.fired = False

    def execute(self, execute, sql, params, many, context):
        if sql.startswith(f'DELETE FROM "{self.table}"'):
            self.deletes += 1
            if self.deletes == self.nth:
                if self.point == "delete":
                    self.fired = True
                    raise OperationalError("injected database failure: delete")
                self.commit_doomed = True
        return execute(sql, params, many, context)

    def commit(self, real_commit):
        def commit():
            if self.commit_doomed:
                self.commit_doomed, self.fired = False, True
                raise OperationalError("injected database failure: commit")  # Atomic rolls back
            return real_commit()

        return commit


@contextmanager
def failing_database(monkeypatch, table: str, point: str, *, nth: int = 1):
    fault = DatabaseFault(table, point, nth)
    monkeypatch.setattr(connection, "_commit", fault.commit(connection._commit))
    with connection.execute_wrapper(fault.execute):
        yield fault
    monkeypatch.undo()
    assert fault.fired, f"the {point} fault never fired"


def bytes_of(store_alias: str, identifiers: dict) -> str | None:
    """The SHA-256 of the object, None if it cannot be read."""
    try:
        return sha256(read_all(get_store(store_alias).open(identifiers)))
    except StorageError:
        return None


def rows_without_their_bytes() -> list[str]:
    """Blobs and pending tickets whose object is missing or holds other bytes than recorded."""
    broken = [
        f"blob {blob.pk}"
        for blob in Blob.objects.all()
        if bytes_of(blob.storage, blob.storage_identifiers) != blob.checksum
    ]
    broken += [
        f"ticket {upload.pk}"
        for upload in DirectUpload.objects.filter(status=DirectUpload.PENDING)
        if bytes_of(upload.storage, upload.storage_identifiers) != upload.checksum
    ]
    return broken


def objects(store) -> set[str]:
    return {obj.name for obj in store.list()}


def object_names(rows) -> set[str]:
    return {row.storage_identifiers["name"] for row in rows}


# -- what each purge removes ----------------------------------------------------------


def linked_blob(owners) -> Blob:
    return services.attach(b"linked, kept", owner_type="patient", owner_id=owners.alice.pk).blob


def make_orphans(owners, count: int) -> None:
    for i in range(count):
        services.unlink(services.attach(f"orphan {i}".encode(), owner_type="patient", owner_id=owners.alice.pk))


def make_expired_tickets(owners, count: int) -> None:
    """``count`` expired tickets whose bytes arrived, and one completed ticket (its object is a blob's)."""
    for i in range(count + 1):
        data = f"ticket {i}".encode()
        upload = services.start_upload(
            owner_type="note",
            owner_id=owners.alice_note.pk,
            name="before" if i == count else "",
            filename="t.txt",
            size=len(data),
            checksum=sha256(data),
        ).upload
        services.receive_upload(upload, io.BytesIO(data), length=len(data))
        if i == count:
            services.complete_upload(upload.pk)
    DirectUpload.objects.filter(status=DirectUpload.PENDING).update(expires_at=timezone.now() - timedelta(minutes=1))


KINDS = {
    # kind: (table whose DELETE fails, make count items, purge them, the rows that remain)
    "orphans": (
        BLOBS,
        make_orphans,
        lambda **options: services.purge_orphans(older_than=NOW, **options),
        lambda: Blob.objects.orphans(),
    ),
    "uploads": (
        TICKETS,
        make_expired_tickets,
        lambda **options: services.purge_uploads(**options),
        lambda: DirectUpload.objects.filter(status=DirectUpload.PENDING),
    ),
}


# -- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("kind", KINDS)
def test_failed_row_delete_of_a_batch_keeps_its_bytes(owners, store, monkeypatch, kind, point):
    table, make, purge, remaining = KINDS[kind]
    kept = linked_blob(owners)
    make(owners, 5)
    with failing_database(monkeypatch, table, point, nth=2):  # the second batch of two
        with pytest.raises(OperationalError, match=f"injected database failure: {point}"):
            purge(batch_size=2)
    # The first batch went, rows then bytes; the failed one kept its rows, and so its bytes.
    assert remaining().count() == 3
    assert rows_without_their_bytes() == []
    assert objects(store) == object_names(Blob.objects.all()) | object_names(remaining())
    result = purge(batch_size=2)  # a later run finishes the job
    assert (result.found, result.removed, result.failures) == (3, 3, [])
    assert not remaining().exists() and kept in Blob.objects.all()
    assert rows_without_their_bytes() == []
    assert objects(store) == object_names(Blob.objects.all())


@pytest.mark.parametrize("kind", KINDS)
def test_purge_command_reports_a_failed_row_delete(owners, store, monkeypatch, kind):
    table, make, _, remaining = KINDS[kind]
    make(owners, 3)
    out = StringIO()
    with failing_database(monkeypatch, table, "delete"):
        with pytest.raises(CommandError, match="injected database failure") as failed:
            call_command("purge_orphan_attachments", "--older-than", "0", stdout=out, stderr=StringIO())
    assert failed.value.returncode == 1 and "run the command again" in str(failed.value)
    assert remaining().count() == 3 and rows_without_their_bytes() == []
    closed = DirectUpload.objects.exclude(status=DirectUpload.PENDING).count()  # past "--older-than 0" too
    call_command("purge_orphan_attachments", "--older-than", "0", stdout=out, stderr=StringIO())
    assert f"{kind}: removed {3 + closed if kind == 'uploads' else 3} " in out.getvalue()
    assert not remaining().exists() and rows_without_their_bytes() == []
    assert objects(store) == object_names(Blob.objects.all())
