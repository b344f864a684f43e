"""purge_orphan_attachments and the purge services: orphans, strays, dangling links, on disk and S3."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files import File
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from django_attachments import services
from django_attachments.models import Attachment, Blob
from django_attachments.registry import Owner, OwnerSpec, attachment_registry
from django_attachments.signals import blob_purged
from django_attachments.stores import get_store
from tests.testapp.models import Note
from tests.testapp.owners import resolve_note

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def names(store):
    return sorted(obj.name for obj in store.list())


def age(blobs, by=2 * DAY):
    Blob.objects.filter(pk__in=[b.pk for b in blobs]).update(created_at=timezone.now() - by)


def orphan(owners, data, *, old=True):
    attachment = services.attach(data, owner_type="patient", owner_id=owners.alice.pk)
    services.unlink(attachment)
    if old:
        age([attachment.blob])
    return attachment.blob


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("purge_orphan_attachments", *args, stdout=out, stderr=err)
    return out.getvalue()


# -- orphans -------------------------------------------------------------------


def test_orphans_past_the_grace_period_lose_row_then_bytes(owners, store, pdf, png):
    old = orphan(owners, pdf)
    young = orphan(owners, png, old=False)
    linked = services.attach(b"kept", owner_type="patient", owner_id=owners.alice.pk).blob
    age([linked])
    result = services.purge_orphans()
    assert (result.found, result.removed, result.bytes, result.failures) == (1, 1, len(pdf), [])
    assert set(Blob.objects.values_list("pk", flat=True)) == {young.pk, linked.pk}
    assert old.storage_identifiers["name"] not in names(store)
    assert len(names(store)) == 2


def test_older_than_overrides_the_grace_period(owners, store, settings, pdf):
    blob = orphan(owners, pdf, old=False)
    age([blob], by=timedelta(hours=2))
    assert services.purge_orphans().found == 0
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ORPHAN_GRACE_PERIOD": timedelta(hours=1)}
    assert services.purge_orphans(older_than=timedelta(hours=3)).found == 0
    assert services.purge_orphans().found == 1


def test_dry_run_reports_exactly_and_changes_nothing(owners, store, pdf, png):
    orphan(owners, pdf)
    orphan(owners, png)
    before = (list(Blob.objects.values_list("pk", flat=True)), names(store))
    dry = services.purge_orphans(dry_run=True)
    assert (list(Blob.objects.values_list("pk", flat=True)), names(store)) == before
    real = services.purge_orphans()
    assert (dry.found, dry.bytes) == (real.found, real.bytes) == (2, len(pdf) + len(png))
    assert dry.removed == 0 and real.removed == 2


def test_batches_and_limit(owners, store):
    blobs = [orphan(owners, f"orphan {i}".encode()) for i in range(7)]
    assert services.purge_orphans(batch_size=2, limit=5).found == 5
    assert Blob.objects.count() == 2
    assert services.purge_orphans(batch_size=2).found == 2
    assert names(store) == [] and len(blobs) == 7


def test_failed_byte_delete_keeps_rows_consistent_and_the_next_stray_run_sweeps(owners, settings, tmp_path, pdf):
    settings.STORAGES = {
        **settings.STORAGES,
        "flaky": {"BACKEND": "tests.failing_storage.FlakyStorage", "OPTIONS": {"location": str(tmp_path / "f")}},
    }
    settings.DJANGO_ATTACHMENTS = {"STORAGE": "flaky"}
    flaky = get_store("flaky")
    orphan(owners, pdf)
    flaky.storage.fail_deletes = True
    with pytest.raises(CommandError, match="1 failure"):
        run()
    assert not Blob.objects.exists()  # the row went first
    assert len(names(flaky)) == 1  # the bytes stayed: a stray, never a row without bytes
    flaky.storage.fail_deletes = False
    assert "strays: removed 1" in run("--stray", "--older-than", "0s", "--allow-young-strays")
    assert names(flaky) == []


def test_blob_purged_signal(owners, store, pdf):
    blob = orphan(owners, pdf)
    seen = []

    def receiver(sender, blob, bytes_deleted, **kwargs):
        seen.append((blob.pk, bytes_deleted))

    blob_purged.connect(receiver)
    try:
        services.purge_orphans()
    finally:
        blob_purged.disconnect(receiver)
    assert seen == [(blob.pk, True)]


def test_blob_purged_receivers_get_whole_rows(owners, store, pdf, django_assert_num_queries):
    """The purge reads only the fields it needs unless a receiver is handed the rows: then whole ones."""
    blob = orphan(owners, pdf)
    Blob.objects.filter(pk=blob.pk).update(metadata={"pdf.pages": 1})
    seen = []

    def receiver(sender, blob, bytes_deleted, **kwargs):
        with django_assert_num_queries(0):  # no deferred field left to load (the row is gone)
            seen.append((blob.checksum, blob.metadata, blob.scan_state, blob.tenant))

    blob_purged.connect(receiver)
    try:
        services.purge_orphans()
    finally:
        blob_purged.disconnect(receiver)
    assert seen == [(blob.checksum, {"pdf.pages": 1}, blob.scan_state, blob.tenant)]


def deletes(queries) -> list[str]:
    return [q["sql"].split(" WHERE")[0] for q in queries if q["sql"].startswith("DELETE")]


def test_orphans_rows_go_in_one_delete_a_table_per_batch(owners, store):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    blobs = [orphan(owners, f"orphan {i}".encode() * 40) for i in range(250)]
    with CaptureQueriesContext(connection) as queries:
        result = services.purge_orphans(batch_size=100)
    assert result.removed == 250 and not Blob.objects.exists() and names(store) == []
    # Three batches (100, 100, 50), each: copies, renders, variants, blobs; never a row fetched again.
    tables = [statement.split('"')[1] for statement in deletes(queries.captured_queries)]
    assert tables == ["django_attachments_replica", "django_attachments_variantrender",
                      "django_attachments_variant", "django_attachments_blob"] * 3  # fmt: skip
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(selects) == 3 * 4 + 1  # per batch: blobs, links, variants, copies; and the last, empty, page
    assert len(blobs) == 250


def test_a_pre_delete_receiver_has_the_orphans_deleted_through_the_orm(owners, store):
    from django.db.models.signals import pre_delete

    blobs = [orphan(owners, f"orphan {i}".encode() * 40) for i in range(5)]
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    pre_delete.connect(receiver, sender=Blob)
    try:
        result = services.purge_orphans(batch_size=2)
    finally:
        pre_delete.disconnect(receiver, sender=Blob)
    assert result.removed == 5 and not Blob.objects.exists() and names(store) == []
    assert sorted(seen, key=str) == sorted((blob.pk for blob in blobs), key=str)


def test_a_failing_blob_purged_receiver_stops_the_purge_with_no_row_or_object_left_behind(owners, store):
    """A batch's objects are deleted while the next batch's rows go: when recording one fails (a receiver
    raises), the purge stops, and the batch whose rows went meanwhile loses its objects too."""
    blobs = [orphan(owners, f"orphan {i}".encode() * 40) for i in range(6)]
    calls = []

    def receiver(sender, blob, bytes_deleted, **kwargs):
        calls.append(blob.pk)
        raise RuntimeError("receiver failed")

    blob_purged.connect(receiver)
    try:
        with pytest.raises(RuntimeError, match="receiver failed"):
            services.purge_orphans(batch_size=2)
    finally:
        blob_purged.disconnect(receiver)
    left = set(Blob.objects.values_list("pk", flat=True))
    assert len(left) == 2  # the first two batches went (the second while the first was recorded); not the third
    assert names(store) == sorted(blob.storage_identifiers["name"] for blob in blobs if blob.pk in left)
    assert calls[0] == blobs[0].pk and blobs[2].pk in calls  # the second batch was recorded on the way out
    assert services.purge_orphans().removed == 2 and names(store) == []


def test_a_link_between_the_recheck_and_the_delete_rolls_the_batch_back(owners, store):
    """Without row locks (SQLite), a link can land after the batch's re-check: the delete leaves its blob,
    the batch rolls back and is taken again, and each blob is counted once."""
    from django.db import connection

    blobs = [orphan(owners, f"orphan {i}".encode() * 40) for i in range(4)]
    fired = []

    def link_first(execute, sql, params, many, context):
        if sql.startswith('DELETE FROM "django_attachments_blob"') and not fired:
            fired.append(sql)
            Attachment.objects.create(blob=blobs[1], owner_type="patient", owner_id=str(owners.alice.pk))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(link_first):
        result = services.purge_orphans(batch_size=10)
    assert fired
    # The link was made inside the batch's transaction (the only way to land it there on one connection),
    # so it rolled back with the batch: the batch taken again removes all four, each counted once.
    assert result.found == result.removed == 4 and result.failures == []
    assert not Blob.objects.exists() and not Attachment.objects.exists() and names(store) == []


# -- strays --------------------------------------------------------------------


def put_stray(store, data=b"stray bytes"):
    checksum = hashlib.sha256(data).hexdigest()  # S3 refuses bytes whose checksum does not match
    return store.save(File(io.BytesIO(data)), size=len(data), checksum=checksum, content_type="x/y")["name"]


def test_strays_are_swept_and_referenced_objects_kept(owners, store, pdf):
    kept = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk).blob.storage_identifiers["name"]
    stray = put_stray(store)
    store.storage.save("elsewhere/not-ours.txt", File(io.BytesIO(b"x")))  # outside the key prefix
    assert services.purge_strays().found == 0  # younger than the grace period
    dry = services.purge_strays(older_than=timedelta(0), dry_run=True)
    assert (dry.found, dry.removed) == (1, 0) and stray in names(store)
    result = services.purge_strays(older_than=timedelta(0), batch_size=1, allow_young=True)
    assert (result.found, result.removed, result.bytes) == (1, 1, len(b"stray bytes"))
    assert names(store) == [kept]
    assert store.storage.exists("elsewhere/not-ours.txt")


def test_strays_in_every_storage_blobs_use(owners, store, settings, tmp_path, pdf):
    old_store = store
    services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    put_stray(old_store)
    settings.STORAGES = {
        **settings.STORAGES,
        "new": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "n")}},
    }
    settings.DJANGO_ATTACHMENTS = {"STORAGE": "new"}
    put_stray(get_store("new"))
    assert services.purge_strays(older_than=timedelta(0), allow_young=True).removed == 2
    assert len(names(get_store(old_store.alias))) == 1


@pytest.mark.parametrize("grace", [timedelta(0), timedelta(minutes=59, seconds=59), None])
def test_the_service_never_sweeps_strays_younger_than_the_floor(owners, store, settings, grace):
    # A task or a shell calling the service gets the command's floor: an upload in flight
    # writes its bytes before its row, and its object must not be taken for a stray.
    from django_attachments.exceptions import UnsafePurge
    from django_attachments.services.purging import STRAY_MIN_AGE

    assert STRAY_MIN_AGE == timedelta(hours=1)
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ORPHAN_GRACE_PERIOD": timedelta(0)}
    in_flight = put_stray(store)
    with pytest.raises(UnsafePurge, match="uploads still in flight"):
        services.purge_strays(older_than=grace)
    assert in_flight in names(store)
    assert services.purge_strays(older_than=timedelta(0), dry_run=True).found == 1  # looking deletes nothing
    assert in_flight in names(store)
    assert services.purge_strays(older_than=timedelta(0), allow_young=True).removed == 1  # uploads stopped


def test_an_object_any_registered_holder_references_is_not_stray(owners, store):
    # A new kind of stored object (a variant, a mirror copy) registers a holder and is never swept.
    from django_attachments.services.holders import referenced, register_holder, unregister_holder

    kept, swept = put_stray(store, b"a variant's bytes"), put_stray(store, b"nobody's bytes")

    def variants(alias, names, besides):
        return [name for name in names if alias == store.alias and name == kept]

    register_holder(variants)
    try:
        assert referenced(store.alias, [kept, swept]) == {kept}
        result = services.purge_strays(older_than=timedelta(0), allow_young=True)
        assert (result.found, result.removed) == (1, 1)
        assert names(store) == [kept]
    finally:
        unregister_holder(variants)
    assert services.purge_strays(older_than=timedelta(0), allow_young=True).removed == 1


# -- dangling links --------------------------------------------------------------


def test_dangling_links_reported_then_removed(owners, store, pdf, png):
    services.attach(pdf, owner_type="note", owner_id=owners.alice_note.pk)
    services.attach(png, owner_type="note", owner_id=owners.alice_note.pk, name="xray")
    services.attach(pdf, owner_type="note", owner_id=owners.alice_note2.pk)
    Note.objects.filter(pk=owners.alice_note.pk).delete()  # a bulk delete: no signal, no unlink
    report = services.find_dangling()
    assert (report.found, report.removed) == (2, 0) and Attachment.objects.count() == 3
    removed = services.find_dangling(delete=True)
    assert (removed.found, removed.removed) == (2, 2)
    assert list(Attachment.objects.values_list("owner_id", flat=True)) == [str(owners.alice_note2.pk)]


def test_dangling_uses_the_batch_resolver(owners, store, pdf):
    for note in (owners.alice_note, owners.alice_note2):
        services.attach(pdf, owner_type="note", owner_id=note.pk)
    calls = []

    def batch(owner_ids):
        calls.append(list(owner_ids))
        notes = Note.objects.filter(pk__in=owner_ids).select_related("patient")
        return {str(n.pk): Owner(tenant=str(n.patient.clinic_id), subject=str(n.patient_id)) for n in notes}

    Note.objects.filter(pk=owners.alice_note2.pk).delete()
    spec = OwnerSpec("note", resolve_note, allowed_names={"", "xray"}, batch_resolver=batch)
    with attachment_registry.override(spec):
        assert services.find_dangling(batch_size=10).found == 1
    assert len(calls) == 1 and sorted(calls[0]) == sorted([str(owners.alice_note.pk), str(owners.alice_note2.pk)])


def test_unregistered_owner_types_are_counted_not_removed(owners, store, pdf):
    services.attach(pdf, owner_type="note", owner_id=owners.alice_note.pk)
    with attachment_registry.override(
        *[spec for spec in attachment_registry if spec.owner_type != "note"], replace_all=True
    ):
        result = services.find_dangling(delete=True)
    assert result.unregistered == {"note": 1} and result.removed == 0
    assert Attachment.objects.count() == 1


# -- the command -----------------------------------------------------------------


def test_command_summary_json_and_verbose(owners, store, pdf, png):
    orphan(owners, pdf)
    put_stray(store)
    out = run("--stray", "--older-than", "0s", "--allow-young-strays", "--dry-run", "-v", "2")
    assert out.count("orphan: id=") == 1 and out.count("stray: storage=") == 1
    assert "[dry run] orphans: would remove 1" in out and "strays: would remove 1" in out
    out = run("--stray", "--older-than", "0s", "--allow-young-strays", "--json", "--dangling")
    assert out.count("\n") == 1 and out.endswith("\n")  # one object on one line per run, for log shippers
    data = json.loads(out)
    assert data["ok"] and not data["dry_run"]
    assert data["orphans"]["removed"] == 1 and data["orphans"]["bytes"] == len(pdf)
    assert data["strays"]["removed"] == 1 and data["dangling"]["found"] == 0
    assert Blob.objects.count() == 0 and names(store) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--delete"], "--delete only applies to --dangling"),
        (["--older-than", "soon"], "duration"),
        (["--batch-size", "0"], "batch-size"),
        (["--stray", "--older-than", "10m"], "uploads still in flight"),
    ],
)
def test_command_refuses_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


# -- admin -----------------------------------------------------------------------


def test_admin_orphan_filter_and_purge_action(admin_client, owners, store, pdf, png):
    lone = orphan(owners, pdf, old=False)  # chosen by hand: no grace period applies
    linked = services.attach(png, owner_type="patient", owner_id=owners.alice.pk).blob
    url = reverse("admin:django_attachments_blob_changelist")
    assert [b.pk for b in admin_client.get(url, {"orphan": "yes"}).context["cl"].result_list] == [lone.pk]
    assert [b.pk for b in admin_client.get(url, {"orphan": "no"}).context["cl"].result_list] == [linked.pk]
    response = admin_client.post(
        url, {"action": "purge_selected", "_selected_action": [str(lone.pk), str(linked.pk)]}, follow=True
    )
    text = " ".join(str(m) for m in response.context["messages"])
    assert "Purged 1 orphan blob" in text and "1 selected blob(s) still have attachments" in text
    assert list(Blob.objects.values_list("pk", flat=True)) == [linked.pk]
