"""Concurrent uploads on PostgreSQL: identical bytes end as one blob and no stray object."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from django.db import connection

from django_attachments import services
from django_attachments.models import Attachment, Blob
from tests.testapp.models import Note

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("DJANGO_ATTACHMENTS_TEST_PG"), reason="needs PostgreSQL (run under tests.pgcluster)"
    ),
]

#: As many uploads at once as the reliability issue asks for; PostgreSQL's test cluster allows 200 connections.
THREADS = 50


def run_in_threads(target, count):
    barrier = threading.Barrier(count, timeout=30)
    errors = []

    def worker(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    if errors:
        raise errors[0]


def test_identical_concurrent_uploads_make_one_blob(owners, store):
    data = os.urandom(300_000)
    notes = [Note.objects.create(patient=owners.alice, text=str(i)) for i in range(THREADS)]
    run_in_threads(lambda i: services.attach(data, owner_type="note", owner_id=notes[i].pk), THREADS)
    assert Blob.objects.count() == 1
    assert Attachment.objects.count() == THREADS
    assert len(list(store.list())) == 1  # the losers removed the bytes they wrote
    blob = Blob.objects.get()
    with services.open_blob(blob) as stream:
        assert b"".join(stream.chunks()) == data


def test_identical_concurrent_uploads_to_one_owner_are_idempotent(owners, store):
    data = os.urandom(100_000)
    run_in_threads(lambda i: services.attach(data, owner_type="patient", owner_id=owners.alice.pk), THREADS)
    assert Blob.objects.count() == 1 and Attachment.objects.count() == 1
    assert len(list(store.list())) == 1


def old_orphans(owners, count):
    from datetime import timedelta

    from django.utils import timezone

    blobs = []
    for i in range(count):
        attachment = services.attach(f"orphan {i} ".encode() * 50, owner_type="patient", owner_id=owners.alice.pk)
        services.unlink(attachment)
        blobs.append(attachment.blob)
    Blob.objects.update(created_at=timezone.now() - timedelta(days=2))
    return blobs


def test_two_purges_at_once_remove_each_blob_once(owners, store):
    old_orphans(owners, 60)
    results = [None, None]

    def purge(i):
        results[i] = services.purge_orphans(batch_size=5)

    run_in_threads(purge, 2)
    assert sum(r.found for r in results) == 60 and sum(r.removed for r in results) == 60
    assert all(r.ok for r in results)
    assert not Blob.objects.exists() and list(store.list()) == []


def test_purge_racing_links_and_attaches_never_leaves_a_link_without_bytes(owners, store):
    from django_attachments.exceptions import BlobNotFound

    blobs = old_orphans(owners, 40)
    payloads = {blob.pk: f"orphan {i} ".encode() * 50 for i, blob in enumerate(blobs)}
    notes = [Note.objects.create(patient=owners.alice, text=str(i)) for i in range(4)]

    def worker(i):
        if i == 0:
            services.purge_orphans(batch_size=3)
            return
        for n, blob in enumerate(blobs[i - 1 :: 3]):
            try:
                if n % 2:
                    services.link(blob.pk, owner_type="note", owner_id=notes[i].pk)
                else:  # the same bytes again: reuse the blob if it survives, else store anew
                    services.attach(payloads[blob.pk], owner_type="note", owner_id=notes[i].pk)
            except BlobNotFound:
                pass  # the purge won this one: the link is refused, not left dangling

    run_in_threads(worker, 4)
    linked = Blob.objects.filter(attachments__isnull=False).distinct()
    assert linked.exists()
    for blob in linked:
        with services.open_blob(blob) as stream:
            data = b"".join(stream.chunks())
        assert hashlib.sha256(data).hexdigest() == blob.checksum
    assert not Attachment.objects.exclude(blob__in=Blob.objects.all()).exists()


def test_uploads_links_unlinks_and_two_purges_interleaved(owners, store):
    """A fixed number of rounds of everything at once on a shared set of blobs; then check the invariants."""
    from datetime import timedelta

    from django.utils import timezone

    from django_attachments.exceptions import BlobNotFound

    pool = [f"shared {i} ".encode() * 200 for i in range(6)]
    notes = [Note.objects.create(patient=owners.alice, text=str(i)) for i in range(6)]
    rounds = 8

    def worker(i):
        for r in range(rounds):
            if i in (0, 1):  # two purgers; everything unlinked counts as past the grace period
                services.purge_orphans(older_than=timedelta(0), batch_size=2)
                continue
            note = notes[(i + r) % len(notes)]
            data = pool[(i * 7 + r) % len(pool)]
            attachment = services.attach(data, owner_type="note", owner_id=note.pk)
            try:
                services.link(attachment.blob_id, owner_type="patient", owner_id=owners.alice.pk, name=str(i))
            except BlobNotFound:
                pass  # unlinked by another worker and purged in between
            if r % 2:
                services.unlink(attachment)
            if r % 3 == 2:
                services.unlink_all_for_owner("patient", owners.alice.pk)

    run_in_threads(worker, 8)
    # Every link's blob exists and its bytes read back with the right checksum.
    for blob in Blob.objects.filter(attachments__isnull=False).distinct():
        with services.open_blob(blob) as stream:
            assert hashlib.sha256(b"".join(stream.chunks())).hexdigest() == blob.checksum
    assert not Attachment.objects.exclude(blob__in=Blob.objects.all()).exists()
    # Orphans older than the grace period are gone after a last purge, and with them their bytes.
    Blob.objects.update(created_at=timezone.now() - timedelta(days=2))
    services.purge_orphans()
    assert not Blob.objects.orphans().exists()
    assert {obj.name for obj in store.list()} == {b.storage_identifiers["name"] for b in Blob.objects.all()}
