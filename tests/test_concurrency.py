"""Concurrent uploads on PostgreSQL: identical bytes end as one blob and no stray object."""

from __future__ import annotations

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

THREADS = 12


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
