"""An adversarial review of multipart direct uploads: races, lost bytes, stuck tickets, store differences.

Each test is a scenario the issue trackers of other upload libraries know
(a storage upload that vanished under its ticket, a crash's remains, a purge
running beside a verification, a server that checks no part's checksum, a
checksum given late). Each test that says "found in review" failed before
its fix; the others guard behaviour that the review checked on every store.

The threshold and the part size are S3's smallest part (5 MiB), as in
tests/test_multipart_uploads.py, whose helpers these tests use.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_attachments import services
from django_attachments.models import Attachment, Blob, DirectUpload
from django_attachments.services import multipart
from tests.apitools import body, download
from tests.test_direct_uploads import TESTSERVER, assert_error, send, sha256, start, ticket
from tests.test_multipart_uploads import (  # noqa: F401 (small_parts: a fixture)
    DUMMY_TASKS,
    PART,
    begin,
    chunks,
    complete,
    finish,
    held,
    incomplete,
    row,
    send_parts,
    signed,
    small_parts,
    store_names,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver", "small_parts")]


@pytest.fixture(scope="module")
def big_file() -> bytes:
    """Two whole parts and a short third one (no type libmagic knows: no analyzer reads them)."""
    return b"\x00\x01\x02" + os.urandom(2 * PART + 12345 - 3)


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def complete_with(client, upload: dict, checksum: str):
    return client.post(upload["complete_url"].removeprefix(TESTSERVER), {"checksum": checksum}, format="json")


def verifying(client, owners, data: bytes, owner=None) -> dict:
    """A ticket whose parts are all held, completed once: 'verifying', its task queued (not run)."""
    if owner is None:
        upload = begin(client, owners, data)
    else:
        upload = ticket(client, *owner, data, checksum=None)
    send_parts(client, upload, data)
    response = complete(client, upload)
    assert response.status_code == 202, response.json()
    return upload


# -- the storage's upload vanished under a pending ticket -------------------------------------


@pytest.mark.all_s3_servers
def test_an_upload_the_storage_forgot_fails_its_ticket_instead_of_asking_for_parts_for_ever(
    staff, owners, store, big_file
):
    # An S3 lifecycle rule (AbortIncompleteMultipartUpload), an operator's clean-up or a lost
    # parts folder: the storage's multipart upload is gone while the ticket is still pending.
    # Found in review: completing answered 400 parts_missing (every part) for ever, and the
    # parts the client then sent could not be kept (S3: 404 NoSuchUpload; local disk: 204, dropped).
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file, [1])
    ticket_row = row(upload)
    store.abort_multipart(ticket_row.storage_identifiers, ticket_row.multipart_id)

    # The contract says: send the parts missing, then complete again. The client does.
    pieces = chunks(big_file)
    for number, part in signed(staff["a"], upload, big_file).items():
        send(staff["a"], part, pieces[number - 1])
    response = complete(staff["a"], upload)
    assert response.status_code < 500 and response.json()["code"] != "parts_missing", response.json()
    assert row(upload).status == "failed"
    assert not Blob.objects.exists() and incomplete(store) == []


def test_a_part_of_an_upload_the_storage_forgot_is_not_acknowledged(staff, owners, disk_store, big_file):
    # Found in review: the API's part URL answered 204 and recreated the parts folder without its
    # marker, though no listing ever counted the part. S3 answers 404 NoSuchUpload here.
    upload = begin(staff["a"], owners, big_file)
    ticket_row = row(upload)
    disk_store.abort_multipart(ticket_row.storage_identifiers, ticket_row.multipart_id)
    part = signed(staff["a"], upload, big_file, [1])[1]
    status, code = send(staff["a"], part, chunks(big_file)[0])
    assert 400 <= status < 500, (status, code)
    assert incomplete(disk_store) == []  # nothing left behind


# -- the remains of a crash ---------------------------------------------------------------------


def test_a_part_cut_short_by_a_crash_is_replaced_when_sent_again(staff, owners, disk_store, big_file, capture):
    # Found in review: a part file of the wrong size under the part's name made every later PUT of
    # that part a silent no-op (204, ObjectExists swallowed): the part could never be held.
    upload = begin(staff["a"], owners, big_file)
    pieces = chunks(big_file)
    parts = signed(staff["a"], upload, big_file)
    # What a worker killed while the part was copied into place leaves (Storage.save() copies
    # chunk by chunk when the temporary file is on another file system): the part's name, fewer bytes.
    ticket_row = row(upload)
    folder = f"{disk_store.storage.location}/{multipart_part_folder(ticket_row)}"
    with open(f"{folder}/00001.{sha256(pieces[0])}", "wb") as partial:
        partial.write(pieces[0][: PART // 2])
    assert [n for n, _, _ in held(staff["a"], upload)] == []

    for number, part in parts.items():
        assert send(staff["a"], part, pieces[number - 1])[0] == 204
    assert [n for n, _, _ in held(staff["a"], upload)] == [1, 2, 3]
    assert finish(staff["a"], upload, capture).status_code == 200


def multipart_part_folder(ticket_row: DirectUpload) -> str:
    from django_attachments.stores.storage_api import multipart_prefix

    return f"{multipart_prefix()}{ticket_row.multipart_id}"


@pytest.mark.all_s3_servers
def test_a_verification_that_died_after_joining_is_finished_by_the_next(staff, owners, store, settings, big_file):
    # Regression guard: a run joined the parts, then died (or its read-back failed). Every store
    # forgets an upload it completed, so the next run finds the object itself and reads it back.
    settings.TASKS = DUMMY_TASKS
    upload = verifying(staff["a"], owners, big_file)
    multipart._join(store, row(upload), multipart._Claim(upload["id"], ""))
    assert incomplete(store) == []
    assert services.verify_upload(upload["id"]).status == "completed"
    [blob] = Blob.objects.all()
    assert blob.checksum == sha256(big_file) and store_names(store) == [blob.storage_identifiers["name"]]


# -- purges beside a verification -------------------------------------------------------------


def test_an_object_being_verified_is_not_swept_as_stray(staff, owners, disk_store, settings, big_file):
    # Found in review: only pending tickets held their objects, so the stray sweep deleted a joined
    # object under its verification, which then found neither parts nor object.
    settings.TASKS = DUMMY_TASKS
    upload = verifying(staff["a"], owners, big_file)
    ticket_row = row(upload)
    multipart._join(
        disk_store, ticket_row, multipart._Claim(upload["id"], "")
    )  # the task's first step; its read-back is still to come
    name = ticket_row.storage_identifiers["name"]
    # Older than the sweep's floor: a read-back (or a worker's queue) that took that long; on a
    # service that dates a multipart object from the start of its upload, at once.
    two_hours_ago = time.time() - 2 * 3600
    os.utime(f"{disk_store.storage.location}/{name}", (two_hours_ago, two_hours_ago))

    swept = services.purge_strays(older_than=timedelta(hours=1))
    outcome = services.verify_upload(upload["id"])
    assert (swept.removed, outcome.status) == (0, "completed"), outcome
    [attachment] = Attachment.objects.all()
    assert body(staff["a"].get(download(attachment.pk))) == big_file


def test_the_expiry_purge_keeps_a_verifying_ticket_whose_task_holds_its_claim(staff, owners, store, settings, big_file):
    # Regression guard: past its expiry, a verifying ticket is purged only when no task holds it.
    settings.TASKS = DUMMY_TASKS
    upload = verifying(staff["a"], owners, big_file)
    claim = multipart._claim(upload["id"])
    assert claim is not None
    DirectUpload.objects.filter(pk=upload["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.purge_uploads().found == 0
    claim.release()
    assert services.verify_upload(upload["id"]).status == "completed"


# -- what the storage is trusted with ---------------------------------------------------------


@pytest.mark.parametrize("store_alias", ["s3-moto"], indirect=True)
def test_a_part_the_server_did_not_check_never_becomes_a_blob(staff, owners, store, big_file, capture):
    # Found in review: the read-back skipped the per-part check wherever the store "trusts reported
    # checksums" (every S3Store), although it reads every byte anyway. moto keeps a part whose bytes
    # differ from the SHA-256 its request was signed with, as some S3-compatible services do; the
    # client declared no whole checksum (it is optional above the threshold).
    upload = begin(staff["a"], owners, big_file)
    pieces = chunks(big_file)
    parts = signed(staff["a"], upload, big_file)
    send(staff["a"], parts[1], pieces[0])
    assert send(staff["a"], parts[2], bytes([pieces[1][0] ^ 1]) + pieces[1][1:]) == (200, None)  # kept
    send(staff["a"], parts[3], pieces[2])
    response = finish(staff["a"], upload, capture)
    assert_error(response, 400, "part_mismatch")
    assert not Blob.objects.exists()


def test_a_checksum_given_while_verifying_is_checked(staff, owners, store, settings, big_file):
    # Found in review: a whole checksum given with a completion while the ticket was verifying was ignored.
    settings.TASKS = DUMMY_TASKS
    upload = verifying(staff["a"], owners, big_file)  # completed once without the whole checksum
    response = complete_with(staff["a"], upload, "0" * 64)  # the client's hash is known now: not this file's
    assert response.status_code in (202, 400), response.json()
    services.verify_upload(upload["id"])
    assert_error(complete(staff["a"], upload), 400, "checksum_mismatch")
    assert row(upload).status == "failed" and not Blob.objects.exists()


def test_a_checksum_given_once_completed_is_compared(staff, owners, store, big_file, capture):
    # Found in review: a completed ticket answered its attachment whatever whole checksum came with
    # the completion, so a client whose file differs was told it was attached.
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    assert finish(staff["a"], upload, capture).status_code == 200
    response = complete_with(staff["a"], upload, "0" * 64)
    assert response.status_code == 400, response.json()


# -- sizes at the edges -------------------------------------------------------------------------


@pytest.mark.all_s3_servers
@pytest.mark.parametrize(
    ("size", "parts"),
    [(PART, None), (PART + 1, [PART, 1]), (2 * PART, [PART, PART])],
    ids=["at-the-threshold", "one-byte-last-part", "whole-parts"],
)
def test_sizes_at_the_edges(staff, owners, store, capture, size, parts):
    # Regression guard: exactly the threshold is one request; a byte more makes a last part of one
    # byte (S3 takes a small last part only); a multiple of the part size has no short part.
    data = b"\x00\x01\x02" + os.urandom(size - 3)
    if parts is None:
        response = start(staff["a"], "patient", owners.alice.pk, data, checksum=None)
        assert_error(response, 400, "checksum_required")  # one request: the checksum is required
        upload = start(staff["a"], "patient", owners.alice.pk, data).json()["upload"]
        assert upload["multipart"] is None and upload["url"]
        return
    upload = begin(staff["a"], owners, data)
    assert upload["multipart"]["part_count"] == len(parts)
    send_parts(staff["a"], upload, data)
    assert [size for _, size, _ in held(staff["a"], upload)] == parts
    response = finish(staff["a"], upload, capture)
    assert response.status_code == 200, response.json()
    assert response.json()["attachment"]["checksum"] == sha256(data)
    assert body(staff["a"].get(download(response.json()["attachment"]["id"]))) == data


# -- the owner changes under a verification -----------------------------------------------------


def test_an_owner_deleted_while_verifying_fails_the_ticket_and_leaves_nothing(
    staff, owners, store, settings, big_file, capture
):
    # Regression guard: the verification checks the owner again, as a single upload's completion does.
    settings.TASKS = DUMMY_TASKS
    upload = verifying(staff["a"], owners, big_file, owner=("note", owners.alice_note.pk))
    owners.alice_note.delete()
    with capture(execute=True):
        assert services.verify_upload(upload["id"]).status == "failed"
    assert (row(upload).status, row(upload).error_code) == ("failed", "owner_not_found")
    assert not Blob.objects.exists() and store_names(store) == [] and incomplete(store) == []
