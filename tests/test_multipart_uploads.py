"""Multipart direct uploads through the REST API, on local disk, moto and SeaweedFS.

Parts go where their signed requests say, with exactly their headers: to
presigned ``UploadPart`` URLs over real HTTP, or, on local disk, to the API's
own token-signed part URL through the test client. SeaweedFS enforces each
part's signed length and SHA-256 as S3 does; moto enforces neither, so where a
test sends bad bytes it says what each store does with them — and in every
case no blob is made of bytes other than the declared ones.

The threshold and the part size are lowered to S3's smallest part (5 MiB), so
that a file of a little over 10 MiB has three parts.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import pytest
from django.utils import timezone
from storages.backends.s3 import S3Storage

from django_attachments import exceptions as services_errors
from django_attachments import services
from django_attachments.models import Attachment, Blob, DirectUpload, UploadPart
from django_attachments.services import multipart
from django_attachments.stores import composite_of, get_store, register_adapter, unregister_adapter
from django_attachments.stores.s3 import S3Store
from tests.apitools import body, download
from tests.test_direct_uploads import (
    TESTSERVER,
    UPLOADS,
    assert_error,
    complete,
    row,
    send,
    sha256,
    start,
    ticket,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver", "small_parts")]

MiB = 1024 * 1024
PART = 5 * MiB
DUMMY_TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


@pytest.fixture
def small_parts(settings):
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "MULTIPART_THRESHOLD": PART,
        "MULTIPART_PART_SIZE": PART,
    }


@pytest.fixture(scope="module")
def big_file() -> bytes:
    """Bytes of two whole parts and a short third one (no type libmagic knows: no analyzer reads them)."""
    return b"\x00\x01\x02" + os.urandom(2 * PART + 12345 - 3)


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + PART] for i in range(0, len(data), PART)]


def parts_url(upload: dict) -> str:
    return upload["multipart"]["parts_url"].removeprefix(TESTSERVER)


def sign(client, upload: dict, data: bytes, numbers=None, checksums=None):
    pieces = chunks(data)
    numbers = numbers or range(1, len(pieces) + 1)
    wanted = [{"number": n, "checksum": (checksums or {}).get(n) or sha256(pieces[n - 1])} for n in numbers]
    return client.post(parts_url(upload), {"parts": wanted}, format="json")


def signed(client, upload: dict, data: bytes, numbers=None) -> dict[int, dict]:
    response = sign(client, upload, data, numbers)
    assert response.status_code == 200, response.json()
    return {part["number"]: part for part in response.json()["parts"]}


def send_part(client, part: dict, body: bytes) -> tuple[int, str | None]:
    return send(client, part, body)


def send_parts(client, upload: dict, data: bytes, numbers=None) -> None:
    pieces = chunks(data)
    for number, part in signed(client, upload, data, numbers).items():
        status, code = send_part(client, part, pieces[number - 1])
        assert status in (200, 204), (number, status, code)


def held(client, upload: dict) -> list[tuple[int, int, str]]:
    response = client.get(parts_url(upload))
    assert response.status_code == 200, response.json()
    return [(p["number"], p["size"], p["checksum"]) for p in response.json()["parts"]]


def incomplete(store) -> list[str]:
    return [upload.upload_id for upload in store.list_multipart()]


def finish(client, upload: dict, capture):
    """Complete as a client does: the verification runs once the completion commits (inline here), then ask again.

    Each test runs inside a transaction, so the inline task backend runs the
    verification when ``capture`` ends, after the first answer (202); on a
    server in autocommit it runs before the first answer, which is then 201.
    """
    with capture(execute=True):
        response = complete(client, upload)
    if response.status_code != 202:
        return response
    return complete(client, upload)


def begin(client, owners, data: bytes, **fields) -> dict:
    upload = ticket(client, "patient", owners.alice.pk, data, **{"checksum": None, **fields})
    assert upload["multipart"] is not None and upload["url"] is None
    return upload


# -- the flow ----------------------------------------------------------------------------


def test_parts_in_any_order_and_twice_then_complete(staff, owners, store, big_file, django_capture_on_commit_callbacks):
    upload = begin(staff["a"], owners, big_file)
    assert upload["checksum"] is None and upload["status"] == "pending"
    assert upload["multipart"]["part_size"] == PART and upload["multipart"]["part_count"] == 3
    assert held(staff["a"], upload) == []

    send_parts(staff["a"], upload, big_file, [3, 1])
    send_parts(staff["a"], upload, big_file, [2, 1])  # part 1 again: the same bytes
    pieces = chunks(big_file)
    assert held(staff["a"], upload) == [(n, len(p), sha256(p)) for n, p in enumerate(pieces, 1)]

    response = finish(staff["a"], upload, django_capture_on_commit_callbacks)
    assert response.status_code == 200, response.json()
    attachment = response.json()["attachment"]
    assert attachment["checksum"] == sha256(big_file) and attachment["content_type"] == "application/octet-stream"
    assert response.json()["upload"]["status"] == "completed"
    assert response.json()["upload"]["attachment"] == attachment["id"]
    assert body(staff["a"].get(download(attachment["id"]))) == big_file
    assert incomplete(store) == []  # the storage holds no parts any more
    assert complete(staff["a"], upload).status_code == 200  # completing again answers the same


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def test_a_client_that_stopped_resumes_with_what_the_storage_holds(staff, owners, store, big_file, capture):
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file, [1, 3])
    assert [number for number, _, _ in held(staff["a"], upload)] == [1, 3]

    response = complete(staff["a"], upload)
    assert_error(response, 400, "parts_missing")
    assert response.json()["missing"] == [2]
    assert row(upload).status == "pending" and not Blob.objects.exists()

    # A new tab: the ticket and what the storage holds say what is left to send.
    again = staff["a"].get(f"{UPLOADS}{upload['id']}/").json()
    assert again["multipart"] == upload["multipart"]
    send_parts(staff["a"], upload, big_file, [2])
    assert finish(staff["a"], upload, capture).status_code == 200


def test_the_whole_checksum_may_come_at_completion_and_must_match(staff, owners, store, big_file, capture):
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    with capture(execute=True):
        response = staff["a"].post(
            upload["complete_url"].removeprefix(TESTSERVER), {"checksum": "0" * 64}, format="json"
        )
    assert response.status_code == 202
    assert_error(complete(staff["a"], upload), 400, "checksum_mismatch")
    assert row(upload).status == "failed" and not Blob.objects.exists()
    assert_error(complete(staff["a"], upload), 400, "checksum_mismatch")  # the same answer ever after


def test_known_bytes_with_a_declared_checksum_attach_at_once(staff, owners, store, big_file, capture):
    first = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], first, big_file)
    assert finish(staff["a"], first, capture).status_code == 200
    response = start(staff["a"], "patient", owners.alice.pk, big_file, name="xray")
    assert response.status_code == 201 and response.json()["upload"] is None
    assert response.json()["attachment"]["checksum"] == sha256(big_file)


def test_identical_bytes_sent_again_link_the_blob_held(
    staff, owners, store, big_file, django_capture_on_commit_callbacks
):
    for slot in ("", "xray"):
        upload = begin(staff["a"], owners, big_file, name=slot)
        send_parts(staff["a"], upload, big_file)
        assert finish(staff["a"], upload, django_capture_on_commit_callbacks).status_code == 200
    assert Blob.objects.count() == 1 and Attachment.objects.count() == 2
    [blob] = Blob.objects.all()
    assert [name for name in store_names(store)] == [blob.storage_identifiers["name"]]


def store_names(store) -> list[str]:
    return sorted(obj.name for obj in store.list() if "/multipart/" not in obj.name)


# -- bad parts -----------------------------------------------------------------------------


def test_a_corrupted_part_is_refused_where_the_store_checks_else_never_becomes_a_blob(
    staff, owners, store, store_server, big_file, django_capture_on_commit_callbacks
):
    upload = begin(staff["a"], owners, big_file, checksum=sha256(big_file))
    pieces = chunks(big_file)
    parts = signed(staff["a"], upload, big_file)
    corrupted = bytes([pieces[1][0] ^ 1]) + pieces[1][1:]
    status, code = send_part(staff["a"], parts[2], corrupted)
    if store_server is None or store_server.strict:
        assert (status, code) in [(400, "checksum_mismatch"), (400, "BadDigest"), (400, "XAmzContentChecksumMismatch")]
        assert [n for n, _, _ in held(staff["a"], upload)] == []
        send_parts(staff["a"], upload, big_file)  # sent again, right
        assert finish(staff["a"], upload, django_capture_on_commit_callbacks).status_code == 200
        return
    # moto keeps it: read back, the part's bytes are not those its request was signed for.
    assert status == 200
    send_part(staff["a"], parts[1], pieces[0])
    send_part(staff["a"], parts[3], pieces[2])
    with django_capture_on_commit_callbacks(execute=True):
        response = finish(staff["a"], upload, django_capture_on_commit_callbacks)
    assert_error(response, 400, "part_mismatch")
    assert response.json()["detail"].startswith("Part 2 holds bytes with SHA-256")
    assert not Blob.objects.exists() and store_names(store) == [] and incomplete(store) == []


@pytest.mark.parametrize("store_alias", ["s3-moto"], indirect=True)
def test_a_store_that_checks_no_part_has_each_part_checked_on_reading_back(
    staff, owners, store, big_file, django_capture_on_commit_callbacks
):
    class Untrusting(S3Store):
        trust_reported_checksums = False

    unregister_adapter(S3Storage)
    register_adapter(S3Storage, Untrusting)
    try:
        upload = begin(staff["a"], owners, big_file)  # no whole checksum: only the parts' say what the bytes are
        pieces = chunks(big_file)
        parts = signed(staff["a"], upload, big_file)
        send_part(staff["a"], parts[1], pieces[0])
        send_part(staff["a"], parts[2], bytes([pieces[1][0] ^ 1]) + pieces[1][1:])  # moto keeps it
        send_part(staff["a"], parts[3], pieces[2])
        response = finish(staff["a"], upload, django_capture_on_commit_callbacks)
        assert_error(response, 400, "part_mismatch")
        assert "Part 2" in response.json()["detail"]
        assert not Blob.objects.exists()
    finally:
        unregister_adapter(S3Storage)
        register_adapter(S3Storage, S3Store)


class CountedPartHashes(multipart._PartHashes):
    made = 0

    def __init__(self, *args, **kwargs) -> None:
        type(self).made += 1
        super().__init__(*args, **kwargs)


@pytest.fixture
def part_passes(monkeypatch):
    """How many times the read-back hashed each part again (a count of ``_PartHashes`` made)."""
    CountedPartHashes.made = 0
    monkeypatch.setattr(multipart, "_PartHashes", CountedPartHashes)
    return CountedPartHashes


@pytest.mark.all_s3_servers
@pytest.mark.parametrize("store_alias", ["s3-moto", "s3-seaweedfs"], indirect=True)
def test_the_stores_composite_checksum_spares_hashing_each_part_again(
    staff, owners, store, big_file, part_passes, django_capture_on_commit_callbacks
):
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    response = finish(staff["a"], upload, django_capture_on_commit_callbacks)
    assert response.status_code == 200, response.json()
    assert response.json()["attachment"]["checksum"] == sha256(big_file)
    # Both servers report the composite SHA-256 they computed from the parts they joined: the
    # signed parts' composite, so the read-back hashed the whole object only.
    blob = Blob.objects.get()
    stat = store.stat(blob.storage_identifiers)
    assert stat.checksum is None
    assert stat.composite_checksum == composite_of([sha256(piece) for piece in chunks(big_file)])
    assert part_passes.made == 0


@pytest.mark.parametrize("store_alias", ["s3-moto"], indirect=True)
def test_a_composite_that_is_not_the_signed_parts_has_each_part_checked(
    staff, owners, store, big_file, part_passes, django_capture_on_commit_callbacks
):
    """moto keeps a corrupted part, and its composite, computed from the bytes it holds, says so."""
    upload = begin(staff["a"], owners, big_file)
    pieces = chunks(big_file)
    parts = signed(staff["a"], upload, big_file)
    for number, piece in enumerate(pieces, 1):
        send_part(staff["a"], parts[number], piece if number != 3 else piece[:-1] + bytes([piece[-1] ^ 1]))
    response = finish(staff["a"], upload, django_capture_on_commit_callbacks)
    assert_error(response, 400, "part_mismatch")
    assert response.json()["detail"].startswith("Part 3 holds bytes with SHA-256")
    assert part_passes.made == 1 and not Blob.objects.exists()


def test_a_short_part_is_refused_or_not_counted(staff, owners, store, store_server, big_file, capture):
    upload = begin(staff["a"], owners, big_file)
    pieces = chunks(big_file)
    parts = signed(staff["a"], upload, big_file)
    short = pieces[0][:-1]
    status, _ = send(staff["a"], parts[1], short, headers={"Content-Length": str(len(short))})
    if store_server is None or store_server.strict:
        assert status in (400, 403)  # the API: size_mismatch; S3: the signed length
    send_part(staff["a"], parts[2], pieces[1])
    send_part(staff["a"], parts[3], pieces[2])
    assert [n for n, _, _ in held(staff["a"], upload)] == [2, 3]  # a short part 1 (moto kept it) is no part 1
    assert_error(complete(staff["a"], upload), 400, "parts_missing")
    send_part(staff["a"], parts[1], pieces[0])
    assert finish(staff["a"], upload, capture).status_code == 200


def test_part_numbers_outside_the_upload_and_bad_checksums_are_refused(staff, owners, store, big_file, settings):
    upload = begin(staff["a"], owners, big_file)
    client = staff["a"]
    for parts in (
        [{"number": 4, "checksum": "0" * 64}],  # an extra part: the upload has three
        [{"number": 0, "checksum": "0" * 64}],
        [{"number": 1, "checksum": "xyz"}],
        [{"number": "1", "checksum": "0" * 64}],
        [{"number": True, "checksum": "0" * 64}],
        [{"number": 1, "checksum": "0" * 64}, {"number": 1, "checksum": "1" * 64}],
        [],
    ):
        response = client.post(parts_url(upload), {"parts": parts}, format="json")
        assert response.status_code == 400, (parts, response.json())
    assert_error(client.post(parts_url(upload), [1, 2], format="json"), 400, "parse_error")
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": None}
    too_many = begin(client, owners, b"", size=101 * PART + 1)
    wanted = [{"number": n, "checksum": "0" * 64} for n in range(1, 102)]
    response = client.post(parts_url(too_many), {"parts": wanted}, format="json")
    assert response.status_code == 400 and "at most 100" in str(response.json())
    assert not UploadPart.objects.filter(upload_id=too_many["id"]).exists()


def test_a_parts_checksum_is_fixed_once_signed(staff, owners, store, big_file):
    upload = begin(staff["a"], owners, big_file)
    assert sign(staff["a"], upload, big_file, [1]).status_code == 200
    assert sign(staff["a"], upload, big_file, [1]).status_code == 200  # the same: signed again
    assert_error(sign(staff["a"], upload, big_file, [1], checksums={1: "0" * 64}), 409, "part_conflict")


def test_a_single_request_upload_has_no_parts(staff, owners, store, pdf):
    upload = ticket(staff["a"], "patient", owners.alice.pk, pdf)
    assert upload["multipart"] is None
    assert staff["a"].get(f"{UPLOADS}{upload['id']}/parts/").status_code == 404


def test_a_checksum_is_still_required_for_a_single_request(staff, owners, store, pdf):
    response = start(staff["a"], "patient", owners.alice.pk, pdf, checksum=None)
    assert_error(response, 400, "checksum_required")
    assert "checksum" in response.json() and response.json()["multipart_threshold"] == PART


def test_the_api_part_url_is_bound_to_its_ticket_number_and_checksum(staff, owners, disk_store, big_file):
    upload = begin(staff["a"], owners, big_file)
    pieces = chunks(big_file)
    parts = signed(staff["a"], upload, big_file)
    other = begin(staff["a"], owners, big_file, name="xray")
    # Part 1's URL with part 2's path, or another ticket's: refused before a byte is read.
    forged = parts[1]["url"].replace("/parts/1?", "/parts/2?")
    assert send(staff["a"], parts[2] | {"url": forged}, pieces[1]) == (403, "invalid_signature")
    forged = parts[1]["url"].replace(upload["id"], other["id"])
    assert send(staff["a"], parts[1] | {"url": forged}, pieces[0]) == (403, "invalid_signature")
    assert send(staff["a"], parts[1] | {"url": parts[1]["url"].split("?")[0]}, pieces[0])[0] == 403
    assert held(staff["a"], upload) == [] and held(staff["a"], other) == []


# -- closing: cancel, expiry, purge --------------------------------------------------------


def test_cancel_drops_the_parts(staff, owners, store, big_file, capture):
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file, [1])
    assert incomplete(store) != []
    with capture(execute=True):  # the parts go once the cancellation commits
        assert staff["a"].delete(f"{UPLOADS}{upload['id']}/").status_code == 204
    assert incomplete(store) == []
    assert_error(complete(staff["a"], upload), 409, "upload_cancelled")
    assert_error(staff["a"].delete(f"{UPLOADS}{upload['id']}/"), 409, "upload_closed")
    assert_error(sign(staff["a"], upload, big_file, [2]), 409, "upload_closed")


def test_another_tenants_ticket_and_parts_are_not_found(staff, owners, store, big_file):
    upload = begin(staff["a"], owners, big_file)
    for response in (
        staff["b"].get(parts_url(upload)),
        sign(staff["b"], upload, big_file, [1]),
        staff["b"].delete(f"{UPLOADS}{upload['id']}/"),
        complete(staff["b"], upload),
    ):
        assert response.status_code == 404, response.json()
    assert row(upload).status == "pending" and not UploadPart.objects.exists()


def test_the_purge_aborts_expired_uploads_and_those_no_ticket_knows(staff, owners, store, big_file):
    expired = begin(staff["a"], owners, big_file)
    live = begin(staff["a"], owners, big_file, name="xray")
    send_parts(staff["a"], expired, big_file, [1])
    send_parts(staff["a"], live, big_file, [1])
    unknown = store.reserve()
    lost = store.start_multipart(unknown, content_type="application/octet-stream")  # a crash before its ticket
    DirectUpload.objects.filter(pk=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    dry = services.purge_incomplete_uploads(dry_run=True, older_than=timedelta(0), allow_young=True)
    assert (dry.found, dry.removed) == (1, 0)  # the lost one; the expired ticket still knows its own
    assert lost in incomplete(store)

    result = services.purge_uploads()
    assert (result.found, result.removed) == (1, 1)
    result = services.purge_incomplete_uploads(older_than=timedelta(0), allow_young=True)
    assert result.ok and result.removed == 1
    assert incomplete(store) == [row(live).multipart_id]
    assert not services.purge_incomplete_uploads(older_than=timedelta(0)).found  # young: kept by the floor


# -- verifying on a worker -------------------------------------------------------------


def test_verification_runs_as_a_task_and_clients_poll(staff, owners, store, settings, big_file):
    settings.TASKS = DUMMY_TASKS
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    response = complete(staff["a"], upload)
    assert response.status_code == 202, response.json()
    assert response["Retry-After"] == "1"
    assert response.json()["attachment"] is None and response.json()["upload"]["status"] == "verifying"
    assert complete(staff["a"], upload).status_code == 202  # asking again: the same
    assert not Blob.objects.exists()

    outcome = services.verify_upload(upload["id"])
    assert outcome.status == "completed", outcome
    assert services.verify_upload(upload["id"]).status == "busy"  # run twice: nothing more
    response = complete(staff["a"], upload)
    assert response.status_code == 200 and response.json()["attachment"]["checksum"] == sha256(big_file)


def test_only_the_completion_whose_own_verification_made_the_attachment_answers_created(
    staff, owners, store, settings, big_file, monkeypatch
):
    """A second completion waits on the ticket's lock while the first one's verification runs; that one ends
    before the second looks again. The second answers 200 with the attachment made, never a second 201."""
    import contextvars

    settings.TASKS = DUMMY_TASKS
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    assert complete(staff["a"], upload).status_code == 202  # the first: verifying

    nudged = multipart.nudge

    def verified_elsewhere_meanwhile(ticket):
        nudged(ticket)
        # Another request's (or a worker's) context: what it records is not this completion's doing.
        assert contextvars.Context().run(services.verify_upload, ticket.pk).status == "completed"

    monkeypatch.setattr(multipart, "nudge", verified_elsewhere_meanwhile)
    response = complete(staff["a"], upload)
    assert response.status_code == 200, response.json()
    assert response.json()["upload"]["status"] == "completed"
    assert response.json()["attachment"]["checksum"] == sha256(big_file)


@pytest.mark.django_db(transaction=True)
def test_a_completion_that_ran_the_verification_itself_answers_created_once(staff, owners, store, big_file):
    """In autocommit, the inline task backend verifies inside the completing request: that answer is 201;
    completing again answers 200 with the same attachment."""
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    first = complete(staff["a"], upload)
    assert first.status_code == 201, first.json()
    again = complete(staff["a"], upload)
    assert again.status_code == 200 and again.json()["attachment"]["id"] == first.json()["attachment"]["id"]


def test_two_verifications_at_once_record_one_blob(staff, owners, store, settings, big_file):
    settings.TASKS = DUMMY_TASKS
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    assert complete(staff["a"], upload).status_code == 202
    claim = multipart._claim(upload["id"])
    assert claim is not None and multipart._claim(upload["id"]) is None  # the second finds it claimed
    assert services.verify_upload(upload["id"]).status == "busy"
    claim.release()
    assert services.verify_upload(upload["id"]).status == "completed"
    assert Blob.objects.count() == 1


def test_a_lost_verification_is_announced_again(staff, owners, store, settings, big_file, capture):
    from django_attachments import tasks

    settings.TASKS = DUMMY_TASKS
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    backend = tasks.verify_upload.get_backend()
    backend.clear()

    def queued_after_completing() -> int:
        with capture(execute=True):
            assert complete(staff["a"], upload).status_code == 202
        return len(backend.results)

    assert queued_after_completing() == 1
    assert queued_after_completing() == 1  # queued a moment ago: not again
    DirectUpload.objects.filter(pk=upload["id"]).update(claimed_at=timezone.now() - timedelta(minutes=6))
    assert queued_after_completing() == 2  # its task is lost: announced again


def test_a_join_that_died_midway_is_joined_again(staff, owners, disk_store, settings, big_file):
    settings.TASKS = DUMMY_TASKS
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    assert complete(staff["a"], upload).status_code == 202
    ticket_row = row(upload)
    store = get_store(ticket_row.storage)
    # What a join killed midway leaves: a partial object under the reserved name, the parts still there.
    store.storage.save(ticket_row.storage_identifiers["name"], __import__("io").BytesIO(big_file[:1000]))
    assert services.verify_upload(upload["id"]).status == "completed"
    [blob] = Blob.objects.all()
    with store.open(blob.storage_identifiers) as stream:
        assert hashlib.sha256(b"".join(stream.chunks())).hexdigest() == sha256(big_file)
    assert incomplete(store) == []


def test_process_attachments_finishes_a_verification_whose_task_was_lost(staff, owners, store, settings, big_file):
    import io
    import json

    from django.core.management import call_command

    settings.TASKS = DUMMY_TASKS  # the task is queued, and never runs
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    assert complete(staff["a"], upload).status_code == 202
    out = io.StringIO()
    call_command("process_attachments", "--json", stdout=out)
    assert json.loads(out.getvalue())["uploads"] == []  # queued a moment ago: the worker's, not ours
    DirectUpload.objects.filter(pk=upload["id"]).update(claimed_at=timezone.now() - timedelta(minutes=6))
    out = io.StringIO()
    call_command("process_attachments", "--json", stdout=out)
    assert json.loads(out.getvalue())["uploads"] == [{"id": upload["id"], "status": "completed"}]
    assert complete(staff["a"], upload).status_code == 200


def test_a_recording_that_loses_a_race_is_retried_not_failed(staff, owners, store, settings, big_file, monkeypatch):
    from django_attachments.services import attaching

    settings.TASKS = DUMMY_TASKS
    upload = begin(staff["a"], owners, big_file)
    send_parts(staff["a"], upload, big_file)
    assert complete(staff["a"], upload).status_code == 202
    with monkeypatch.context() as patched:
        patched.setattr(attaching, "_record_blob", lambda *args, **kwargs: None)  # a concurrent upload always wins
        assert services.verify_upload(upload["id"]).status == "retry"
    assert row(upload).status == "verifying" and not Blob.objects.exists()
    assert multipart.is_stalled(row(upload))  # released: the next completion announces it again at once
    assert services.verify_upload(upload["id"]).status == "completed"


def test_signing_parts_keeps_a_ticket_in_progress_open(staff, owners, store, settings, big_file):
    upload = begin(staff["a"], owners, big_file)
    soon = timezone.now() + timedelta(minutes=1)
    DirectUpload.objects.filter(pk=upload["id"]).update(expires_at=soon)
    response = sign(staff["a"], upload, big_file, [1])
    assert response.status_code == 200
    extended = row(upload).expires_at
    assert extended > soon + timedelta(minutes=50)  # UPLOAD_EXPIRY (an hour) from now
    assert response.json()["expires_at"].startswith(extended.isoformat()[:16])


def test_signing_parts_of_a_ticket_purged_meanwhile_is_a_clear_error(staff, owners, store, big_file):
    upload = begin(staff["a"], owners, big_file)
    ticket_row = row(upload)
    DirectUpload.objects.filter(pk=ticket_row.pk).delete()  # the purge, between the look-up and the signing
    with pytest.raises(services_errors.UploadExpired):
        services.sign_parts(ticket_row, [(1, "0" * 64)])
    assert not UploadPart.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_verification_keeps_its_claim_alive_while_it_works(staff, owners, disk_store, settings, monkeypatch):
    settings.TASKS = DUMMY_TASKS
    data = b"\x00\x01" + os.urandom(PART + 10)
    upload = begin(staff["a"], owners, data)
    send_parts(staff["a"], upload, data)
    assert complete(staff["a"], upload).status_code == 202
    monkeypatch.setattr(multipart, "_RENEW_EVERY", 0.05)
    claim = multipart._claim(upload["id"])
    old = timezone.now() - timedelta(minutes=4)
    DirectUpload.objects.filter(pk=upload["id"]).update(claimed_at=old)
    with claim.kept_alive():
        import time

        time.sleep(0.5)  # a long join or read-back
    assert row(upload).claimed_at > old + timedelta(minutes=3) and not claim.lost
    DirectUpload.objects.filter(pk=upload["id"]).update(claim_token="someone else")
    with claim.kept_alive():
        time.sleep(0.3)
    assert claim.lost  # taken over: the run stops before recording anything
