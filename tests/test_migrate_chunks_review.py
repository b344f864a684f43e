"""A review of moving blobs in chunks (:func:`~django_attachments.services.migrating.move_blobs`).

A chunk's blobs (and their variants) are copied one after another, then all
switched in one transaction. Each test sets up real storages (local disk in
temporary folders) and lets another actor (a stray sweep, another run, a
render) act at one moment of a chunk: from a hook that a storage runs as it
opens an object or half way through a write
(:class:`tests.migrate_storages.HookedStorage`). Nine of these tests were
written as strict xfails, each showing a bug of the first version of chunks;
all are fixed: a copy's age for the stray re-check counted up to its switch,
a failed switch reported once (``switch_failed``) and failing its row alone,
a receiver's error after the switch failing nothing, ids in any form and
each blob once, ``stop`` with a blob listed twice, and copies into an S3
store subclass going through its ``save()``.

Runs on the suite's database: SQLite, and PostgreSQL under
``python -m tests.pgcluster -- pytest tests/test_migrate_chunks_review.py``.
"""

from __future__ import annotations

import io
import os
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from django_attachments import services
from django_attachments.models import Blob, Replica, Variant
from django_attachments.services import migrating, variants
from django_attachments.stores import get_store
from tests import test_migrate_review as first_review
from tests.migrate_storages import HookedStorage
from tests.test_migrate_review import HOOKED, jpeg, names, post, sha

# The first review's fixtures: ``disks`` (storages in fresh folders) and ``no_hooks`` (autouse there and here).
disks = first_review.disks
no_hooks = first_review.no_hooks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]


def has_bytes(row: Blob | Variant) -> bool:
    """Whether the row's own storage holds the object its identifiers name (no fallback to a copy)."""
    row.refresh_from_db()
    return get_store(row.storage).exists(row.storage_identifiers)


# -- a copy waiting for the rest of its chunk --------------------------------------------------------------


def test_a_copy_left_waiting_for_its_chunk_past_the_sweep_grace_is_rechecked(
    monkeypatch, disks, staff, owners, django_capture_on_commit_callbacks
):
    # Time scaled down: the sweep deletes strays older than 2 s (STRAY_MIN_AGE), the switch re-checks a copy
    # older than 1 s (STRAY_RECHECK, half of it, as the real ones are).
    monkeypatch.setattr(migrating, "STRAY_RECHECK", 1.0)
    disks.add("old", HOOKED), disks.add("new")
    disks.use("old")
    first = post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3000), "a.bin")
    second = post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3100), "b.bin")
    second_name = Blob.objects.get(pk=second["blob_id"]).storage_identifiers["name"]
    swept: list[Any] = []

    def slow_second_copy_then_sweep(name: str) -> None:
        # As the second blob's copy starts (its source opened), the first's copy is done and waits for the
        # switch; this copy takes long (a slow link, a large file), and a sweep runs meanwhile.
        if name == second_name and not swept:
            swept.append(None)
            time.sleep(2.5)
            swept[0] = services.purge_strays(older_than=timedelta(seconds=2), allow_young=True)

    HookedStorage.on_open = staticmethod(slow_second_copy_then_sweep)
    outcomes = migrating.move_blobs([first["blob_id"], second["blob_id"]], "new", delete_source=True)
    HookedStorage.on_open = None

    assert swept and swept[0].removed == 1, swept  # the first copy, a stray until the switch commits
    assert outcomes[second["blob_id"]].moved == 1, outcomes
    blob = Blob.objects.get(pk=first["blob_id"])
    assert has_bytes(blob), f"blob {blob.pk} points at an object the sweep deleted ({outcomes[first['blob_id']]})"


# -- rows read at the chunk's start (what holds) -------------------------------------------------------------


def test_a_blob_moved_by_another_run_while_its_chunk_copies_another_is_copied_from_where_it_is_now(
    disks, staff, owners, django_capture_on_commit_callbacks
):
    disks.add("old"), disks.add("new", HOOKED), disks.add("other")
    disks.use("old")
    first = post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3000), "a.bin")
    second = post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3100), "b.bin")
    other_run: list[migrating.MigrationResult] = []

    def another_run_moves_the_second(name: str) -> None:
        # Half way through the first blob's copy, another run ("--to other --delete-source") moves the second:
        # the object the chunk read for it at its start is gone.
        if not other_run:
            other_run.append(migrating.move_blob(second["blob_id"], "other", delete_source=True))

    HookedStorage.on_save = staticmethod(another_run_moves_the_second)
    outcomes = migrating.move_blobs([first["blob_id"], second["blob_id"]], "new")
    HookedStorage.on_save = None

    assert other_run and (other_run[0].moved, other_run[0].sources_deleted) == (1, 1), other_run
    assert all(outcome.failed == [] for outcome in outcomes.values()), outcomes
    assert [outcomes[c["blob_id"]].moved for c in (first, second)] == [1, 1], outcomes
    for created in (first, second):
        blob = Blob.objects.get(pk=created["blob_id"])
        assert blob.storage == "new" and has_bytes(blob)
    # The second's object in "other" is kept as its copy (this run has no --delete-source).
    assert Replica.objects.get(blob_id=second["blob_id"]).storage == "other"


def test_a_variant_re_rendered_while_its_chunk_copies_another_blob_is_moved_with_its_new_bytes(
    disks, staff, owners, django_capture_on_commit_callbacks
):
    disks.add("old"), disks.add("new", HOOKED)
    disks.use("old")
    disks.thumbs()
    first = post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3000), "a.bin")
    second = post(staff["a"], owners, django_capture_on_commit_callbacks, jpeg(5), "photo.jpg")
    blob = Blob.objects.get(pk=second["blob_id"])
    declared = variants.resolve(blob, "thumb", owner_type="note")
    assert variants.make_declared(blob, declared).state == "made"
    old_variant = Variant.objects.get(blob=blob)
    rendered: list[Any] = []

    def rerender(name: str) -> None:
        # Half way through the first blob's copy, a forced render replaces the second blob's thumbnail.
        if not rendered:
            rendered.append(variants.make_declared(Blob.objects.get(pk=blob.pk), declared, force=True).state)

    HookedStorage.on_save = staticmethod(rerender)
    outcomes = migrating.move_blobs([first["blob_id"], second["blob_id"]], "new")
    HookedStorage.on_save = None

    assert rendered == ["made"]
    outcome = outcomes[second["blob_id"]]
    # The variant's copy is of the render's bytes (moved), or of the old ones, seen changed by the switch
    # (skipped, its copy deleted): never a failure, never the old bytes under the variant.
    assert outcome.failed == [] and outcome.moved >= 1 and outcome.moved + outcome.skipped == 2, outcome
    variant = Variant.objects.get(blob=blob)
    assert variant.storage_identifiers != old_variant.storage_identifiers
    with get_store(variant.storage).open(variant.storage_identifiers) as stream:
        assert sha(stream.read()) == variant.checksum
    referenced = {Blob.objects.get(pk=c["blob_id"]).storage_identifiers["name"] for c in (first, second)}
    if variant.storage == "new":
        referenced.add(variant.storage_identifiers["name"])
    assert names("new") == referenced


# -- a row whose switch fails -----------------------------------------------------------------------------------


def fail_the_switch_of_the_next_copy(skip: int = 0) -> None:
    """Make the target (a HookedStorage) fail with a disk error on the copy written after ``skip`` others, when
    the switch looks at it again (in its transaction: the copy itself and its verification go well)."""
    writes: list[str] = []

    def disk_error_in_the_switch(name: str) -> None:
        if len(writes) > skip and name == writes[skip] and connection.in_atomic_block:
            raise OSError(5, "Input/output error")

    HookedStorage.on_save = staticmethod(writes.append)
    HookedStorage.on_open = staticmethod(disk_error_in_the_switch)


def move_two_failing_the_seconds_switch(monkeypatch, disks, staff, owners, capture) -> tuple[dict, dict, dict]:
    """Two blobs moved from "old" to "new" in one chunk, the second's switch failing (an I/O error as the switch
    looks at its copy again); the two uploads and the outcomes."""
    monkeypatch.setattr(migrating, "STRAY_RECHECK", -1.0)  # every copy is looked at again by the switch
    disks.add("old"), disks.add("new", HOOKED)
    disks.use("old")
    first = post(staff["a"], owners, capture, os.urandom(3000), "a.bin")
    second = post(staff["a"], owners, capture, os.urandom(3100), "b.bin")
    fail_the_switch_of_the_next_copy(skip=1)  # the second blob's
    outcomes = migrating.move_blobs([first["blob_id"], second["blob_id"]], "new")
    HookedStorage.on_save = HookedStorage.on_open = None
    return first, second, outcomes


@pytest.mark.django_db(transaction=True)
def test_a_row_whose_switch_fails_is_reported_failed_and_not_also_skipped(
    monkeypatch, disks, staff, owners, django_capture_on_commit_callbacks
):
    first, second, outcomes = move_two_failing_the_seconds_switch(
        monkeypatch, disks, staff, owners, django_capture_on_commit_callbacks
    )

    assert outcomes[first["blob_id"]].moved == 1 and outcomes[first["blob_id"]].failed == [], outcomes
    failed = outcomes[second["blob_id"]]
    assert [f["blob"] for f in failed.failed] == [str(second["blob_id"])], failed
    assert Blob.objects.get(pk=second["blob_id"]).storage == "old"
    assert (failed.moved, failed.skipped) == (0, 0), failed


@pytest.mark.django_db(transaction=True)
def test_a_row_whose_switch_fails_is_not_reported_as_a_misconfiguration(
    monkeypatch, disks, staff, owners, django_capture_on_commit_callbacks
):
    _, second, outcomes = move_two_failing_the_seconds_switch(
        monkeypatch, disks, staff, owners, django_capture_on_commit_callbacks
    )

    [failure] = outcomes[second["blob_id"]].failed
    assert "Input/output error" in failure["error"]
    assert failure["code"] != "improperly_configured", failure


@pytest.mark.django_db(transaction=True)
def test_one_rows_failed_switch_does_not_fail_the_other_blobs_of_its_chunk(
    monkeypatch, disks, staff, owners, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(migrating, "STRAY_RECHECK", -1.0)
    disks.add("old"), disks.add("new", HOOKED)
    disks.use("old")
    created = [
        post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3000 + n), "a.bin") for n in (0, 1)
    ]
    moving, moved = sorted(str(c["blob_id"]) for c in created)  # the order a run lists them in
    # The second was moved by an earlier run that kept its old object: a --delete-source run deletes it.
    assert migrating.move_blob(moved, "new").moved == 1
    kept = Replica.objects.get(blob_id=moved)
    fail_the_switch_of_the_next_copy()  # the first blob's copy, the only one of the run

    result = migrating.migrate("new", delete_source=True)
    HookedStorage.on_save = HookedStorage.on_open = None

    assert [failure["blob"] for failure in result.failed] == [moving], result.failed
    assert result.sources_deleted == 1, result
    assert not Replica.objects.filter(pk=kept.pk).exists()
    assert kept.storage_identifiers["name"] not in names("old")


# -- ids as the caller gives them ------------------------------------------------------------------------------


def test_move_blob_takes_a_blob_id_in_any_form_a_uuid_field_accepts(
    disks, staff, owners, django_capture_on_commit_callbacks
):
    disks.add("old"), disks.add("new")
    disks.use("old")
    created = post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3000), "a.bin")
    blob = Blob.objects.get(pk=created["blob_id"])
    assert Blob.objects.filter(pk=blob.pk.hex).exists()  # the form is one the database look-up takes

    outcome = migrating.move_blob(blob.pk.hex, "new")

    assert (outcome.moved, outcome.skipped) == (1, 0), outcome
    blob.refresh_from_db()
    assert blob.storage == "new"


def test_a_blob_listed_twice_in_a_chunk_is_copied_once(disks, staff, owners, django_capture_on_commit_callbacks):
    disks.add("old"), disks.add("new", HOOKED)
    disks.use("old")
    created = post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3000), "a.bin")
    writes: list[str] = []
    HookedStorage.on_save = staticmethod(writes.append)

    outcome = migrating.move_blobs([created["blob_id"], created["blob_id"]], "new")[created["blob_id"]]
    HookedStorage.on_save = None

    blob = Blob.objects.get(pk=created["blob_id"])
    assert blob.storage == "new" and has_bytes(blob)
    assert names("new") == {blob.storage_identifiers["name"]}
    assert Replica.objects.filter(blob=blob).count() == 1
    assert (len(writes), outcome.copied, outcome.moved, outcome.skipped) == (1, 1, 1, 0), (writes, outcome)


def test_a_stopped_chunk_listing_a_blob_twice_does_not_raise(disks, staff, owners, django_capture_on_commit_callbacks):
    disks.add("old"), disks.add("new")
    disks.use("old")
    created = post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3000), "a.bin")
    stop = threading.Event()
    stop.set()

    outcomes = migrating.move_blobs([created["blob_id"], created["blob_id"]], "new", stop=stop)

    assert outcomes == {}
    assert Blob.objects.get(pk=created["blob_id"]).storage == "old"


# -- after the switch --------------------------------------------------------------------------------------------


def test_a_row_moved_receiver_failing_for_one_blob_does_not_fail_the_others_of_its_chunk(
    disks, staff, owners, django_capture_on_commit_callbacks
):
    from django_attachments.signals import row_moved

    disks.add("old"), disks.add("new")
    disks.use("old")
    created = [
        post(staff["a"], owners, django_capture_on_commit_callbacks, os.urandom(3000 + n), "a.bin") for n in range(2)
    ]
    first, second = sorted(str(c["blob_id"]) for c in created)  # the order a run lists them in
    told: list[str] = []

    def receiver(sender: Any, row: Any, **kwargs: Any) -> None:
        told.append(str(row.pk))
        if str(row.pk) == first:
            raise RuntimeError("a receiver's own failure")

    row_moved.connect(receiver)
    try:
        result = migrating.migrate("new")
    finally:
        row_moved.disconnect(receiver)

    assert {b.storage for b in Blob.objects.all()} == {"new"}  # both were switched
    assert second in told, told
    assert second not in [failure["blob"] for failure in result.failed], result.failed
    assert result.moved >= 1, result


# -- a store that overrides save() -------------------------------------------------------------------------------


def test_a_copy_into_an_s3_store_subclass_goes_through_its_save(request, settings, tmp_path):
    from django.core.files import File

    from django_attachments.exceptions import StorageError
    from tests import faults
    from tests.conftest import MAIN_S3_SERVER, get_s3_server

    server = get_s3_server(request, MAIN_S3_SERVER)
    faults.install()
    try:
        target_config = {**server.backend(server.make_bucket()), "BACKEND": "tests.faults.FaultyS3Storage"}
        source_config = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        }
        settings.STORAGES = {**settings.STORAGES, "src": source_config, "dst": target_config}
        source, target = get_store("src"), get_store("dst")
        data = os.urandom(5000)
        meta = {"size": len(data), "checksum": sha(data), "content_type": "application/octet-stream"}
        identifiers = source.save(File(io.BytesIO(data)), **meta)
        # An adapter's save() that refuses every write (as a policy, or a fault) refuses the copies too.
        target.storage.faults.arm("save.before")
        with pytest.raises(StorageError, match="injected fault"):
            target.copy_from(source, identifiers, **meta)
        assert target.storage.faults.fired["save.before"] == 1
        assert list(target.list()) == []
    finally:
        faults.uninstall()
