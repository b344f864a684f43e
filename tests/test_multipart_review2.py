"""A second adversarial review of multipart direct uploads: the verification's heartbeat, its retries.

Each test here reproduced a defect found in review (it failed before its fix).
The helpers and the 5 MiB part size are those of tests/test_multipart_uploads.py.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.backends.signals import connection_created
from django.utils import timezone

from django_attachments.models import DirectUpload
from django_attachments.services import multipart
from tests.test_multipart_uploads import (  # noqa: F401 (small_parts: a fixture)
    DUMMY_TASKS,
    PART,
    begin,
    complete,
    row,
    send_parts,
    small_parts,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver", "small_parts")]


def verifying(client, owners) -> dict:
    """A two-part ticket whose parts are all held, completed once: 'verifying', its task queued (not run)."""
    data = b"\x00\x01" + os.urandom(PART + 10)
    upload = begin(client, owners, data)
    send_parts(client, upload, data)
    assert complete(client, upload).status_code == 202
    return upload


class HeartbeatConnections:
    """The database connections opened by verification heartbeats (threads named ``verify-...``)."""

    def __init__(self) -> None:
        self.wrappers: list = []
        self.opened = threading.Event()

    def __call__(self, sender, connection, **kwargs) -> None:
        if threading.current_thread().name.startswith("verify-"):
            self.wrappers.append(connection)
            self.opened.set()


def drop(wrapper, quiet: threading.Lock) -> None:
    """What a database restart, a proxy's idle timeout or an operator does to a connection: it is gone.

    On SQLite the test closes the heartbeat's connection itself, from this thread: only between two
    renewals (``quiet``, held by each), since closing an SQLite connection while another thread runs a
    statement on it crashes the process.
    """
    if wrapper.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [wrapper.connection.info.backend_pid])
    else:
        with quiet:
            wrapper.connection.close()


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_the_claim_after_its_database_connection_was_dropped(
    staff, owners, disk_store, settings, monkeypatch
):
    # The heartbeat thread opens its own connection and keeps it for the whole verification (one
    # of a large upload lasts long). Once the database drops it, every renewal fails on the dead
    # connection (only a warning each time): the claim lapses after VERIFY_LEASE, a second run
    # takes the ticket over while this one still joins or reads, and on local disk deletes the
    # object under it (_join's ObjectExists path): the hazard the heartbeat was added for.
    settings.TASKS = DUMMY_TASKS
    upload = verifying(staff["a"], owners)
    monkeypatch.setattr(multipart, "_RENEW_EVERY", 0.05)
    quiet = threading.Lock()
    renew = multipart._Claim.renew

    def renew_unless_dropping(claim) -> None:
        with quiet:
            renew(claim)

    monkeypatch.setattr(multipart._Claim, "renew", renew_unless_dropping)
    opened = HeartbeatConnections()
    connection_created.connect(opened)
    try:
        claim = multipart._claim(upload["id"])
        assert claim is not None
        with claim.kept_alive():  # the join and the read-back of a large upload, running
            assert opened.opened.wait(5), "the heartbeat never reached the database"
            old = timezone.now() - timedelta(minutes=4)
            DirectUpload.objects.filter(pk=upload["id"]).update(claimed_at=old)
            assert wait_for(lambda: row(upload).claimed_at > old + timedelta(minutes=3))  # it beats
            drop(opened.wrappers[-1], quiet)
            DirectUpload.objects.filter(pk=upload["id"]).update(claimed_at=old)
            renewed = wait_for(lambda: row(upload).claimed_at > old + timedelta(minutes=3), timeout=2.0)
    finally:
        connection_created.disconnect(opened)
    assert renewed and not claim.lost, "the claim was not renewed once the heartbeat's connection was dropped"
