"""``manage.py migrate_attachments`` and the migration service, against real storages.

Local disk (``FileSystemStorage`` in temporary folders), moto's S3 server and
SeaweedFS (two buckets of one server: a server-side copy; two servers: a
streamed one), with the files uploaded through the API, their variants made
by the real renderer, and downloads through the API after the switch. The
storages that misbehave (a disk that stores other bytes, a disk that lets a
purge run in the middle of a write) are in :mod:`tests.migrate_storages`.

Runs in-process on the suite's database: SQLite, and PostgreSQL under
``python -m tests.pgcluster -- pytest tests/test_migrate_command.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from django_attachments import services
from django_attachments.conf import app_settings
from django_attachments.models import Attachment, Blob, Replica, Variant
from django_attachments.services import migrating
from django_attachments.stores import get_store
from tests.apitools import body, download, upload
from tests.conftest import storage_config
from tests.migrate_storages import HookedStorage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]

THUMB = {"operation": "fit", "width": 48, "height": 48, "format": "webp", "eager": True}

#: (source kind, target kind): every direction the issue names. moto -> moto is two buckets of one
#: server (copied server-side); moto -> SeaweedFS crosses servers (streamed).
DIRECTIONS = [
    ("disk", "s3-seaweedfs"),
    ("disk", "s3-moto"),
    ("s3-seaweedfs", "disk"),
    ("s3-moto", "disk"),
    ("s3-moto", "s3-moto"),
    ("s3-moto", "s3-seaweedfs"),
]


# -- storages and files ---------------------------------------------------------------------------


@pytest.fixture
def storages(settings, tmp_path, request):
    """``add(alias, kind)``: a fresh, empty storage under ``alias`` (kind: a conftest store kind, or
    "corrupting" / "hooked" from tests.migrate_storages); ``use(alias)`` makes it the upload storage."""

    class Storages:
        def add(self, alias: str, kind: str) -> str:
            if kind in ("corrupting", "hooked"):
                backend = {"corrupting": "CorruptingStorage", "hooked": "HookedStorage"}[kind]
                config: dict[str, Any] = {
                    "BACKEND": f"tests.migrate_storages.{backend}",
                    "OPTIONS": {"location": str(tmp_path / alias)},
                }
            elif kind == "disk":
                config = {
                    "BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(tmp_path / alias)},
                }
            else:
                config = storage_config(kind, request, tmp_path)
            settings.STORAGES = {**settings.STORAGES, alias: config}
            return alias

        def use(self, alias: str) -> None:
            settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORAGE": alias}

        def folder(self, alias: str):
            return tmp_path / alias

    return Storages()


@pytest.fixture
def thumbs(settings):
    """An eager "thumb" variant: made by the pipeline as each image's upload commits."""
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": THUMB}}


@pytest.fixture(autouse=True)
def no_hook():
    yield
    HookedStorage.on_save = HookedStorage.on_open = None


def jpeg(seed: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (96 + seed % 7, 64), (seed * 37 % 256, seed * 11 % 256, 90)).save(out, "JPEG")
    return out.getvalue()


def names(alias: str) -> set[str]:
    """The objects under the key prefix of storage ``alias``."""
    return {obj.name for obj in get_store(alias).list()}


def read(alias: str, identifiers: dict) -> bytes:
    with get_store(alias).open(identifiers) as stream:
        return b"".join(stream.chunks(64 * 1024))


def run(*args: str) -> tuple[dict[str, Any], int]:
    """``migrate_attachments --json ARGS``: (the summary, the exit status)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("migrate_attachments", *args, "--json", stdout=out, stderr=err)
        status = 0
    except CommandError as exc:
        status = exc.returncode
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert lines, f"no summary (status {status}): {err.getvalue()}"
    return json.loads(lines[-1]), status


def usage_error(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("migrate_attachments", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.returncode == 2, caught.value
    return str(caught.value)


def signs_urls(alias: str) -> bool:
    return get_store(alias).can_sign_urls


def after_url_expiry() -> None:
    """As if URL_EXPIRY had passed since every switch: a URL signed before one no longer leads anywhere."""
    Replica.objects.update(updated_at=timezone.now() - app_settings.URL_EXPIRY - timedelta(seconds=1))


def delete_sources(target: str, count: int, old: str) -> dict[str, Any]:
    """``--to target --delete-source``: the ``count`` old objects in ``old`` deleted; where ``old`` signs URLs,
    kept (waiting) until URL_EXPIRY has passed since their switch, then deleted by a later run."""
    summary, status = run("--to", target, "--delete-source")
    assert status == 0, summary
    if signs_urls(old):
        assert (summary["sources_waiting"], summary["sources_deleted"]) == (count, 0), summary
        assert Replica.objects.filter(storage=old).count() == count, list(
            Replica.objects.values_list("blob_id", "variant_id", "storage", "state", "storage_identifiers")
        )
        after_url_expiry()
        summary, status = run("--to", target, "--delete-source")
        assert status == 0, summary
    assert (summary["copied"], summary["sources_deleted"], summary["sources_waiting"]) == (0, count, 0), summary
    return summary


def upload_files(client, owners, capture, *, images: int = 2, others: int = 1, owner=None, tag: str = "") -> list[dict]:
    """``images`` JPEGs (each with its thumb) and ``others`` binary files, uploaded through the API."""
    owner_type, owner_id = owner or ("note", owners.alice_note.pk)
    created = []
    for n in range(images + others):
        if n < images:
            data, filename = jpeg(n + 100 * len(tag)), f"photo{tag}{n}.jpg"
        else:
            data, filename = os.urandom(3000 + 517 * n), f"data{tag}{n}.bin"
        with capture(execute=True):
            response = upload(client, owner_type, owner_id, data, filename=filename)
        assert response.status_code == 201, response.content
        created.append({**response.json(), "data": data})
    return created


# -- moving, every direction ------------------------------------------------------------------------


@pytest.mark.parametrize("source_kind, target_kind", DIRECTIONS, ids=[f"{s}-to-{t}" for s, t in DIRECTIONS])
def test_a_move_switches_blobs_and_variants_keeps_the_old_objects_then_deletes_them(
    storages, staff, owners, thumbs, django_capture_on_commit_callbacks, source_kind, target_kind
):
    source, target = storages.add("old", source_kind), storages.add("new", target_kind)
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=2, others=1)
    blobs = {c["blob_id"]: c for c in created}
    made = list(Variant.objects.filter(blob_id__in=blobs))
    assert len(made) == 2 and all(v.storage == source for v in made)
    old_objects = {b.storage_identifiers["name"] for b in Blob.objects.all()} | {
        v.storage_identifiers["name"] for v in made
    }
    assert names(source) == old_objects and names(target) == set()

    summary, status = run("--to", target)

    assert status == 0, summary
    assert (summary["blobs"], summary["copied"], summary["moved"], summary["failed"]) == (3, 5, 5, [])
    assert summary["bytes"] == sum(len(c["data"]) for c in created) + sum(v.size for v in made)
    assert summary["verified"] == 5 and summary["sources_kept"] == 5 and summary["sources_deleted"] == 0
    for blob in Blob.objects.all():
        assert blob.storage == target and blob.storage_identifiers["storage"] == target
        assert read(target, blob.storage_identifiers) == blobs[str(blob.pk)]["data"]
        (kept,) = Replica.objects.filter(blob=blob, variant=None)
        assert kept.storage == source and kept.state == Replica.COPIED
        assert read(source, kept.storage_identifiers) == blobs[str(blob.pk)]["data"]
    for variant in Variant.objects.all():
        assert variant.storage == target
        data = read(target, variant.storage_identifiers)
        assert hashlib.sha256(data).hexdigest() == variant.checksum and len(data) == variant.size
        assert Replica.objects.get(variant=variant).storage == source
    assert names(source) == old_objects and len(names(target)) == 5
    for c in created:
        response = staff["a"].get(download(c["id"]))
        assert response.status_code == 200 and body(response) == c["data"]
    assert services.verify_blobs().ok

    again, status = run("--to", target)
    assert status == 0 and (again["blobs"], again["copied"], again["moved"]) == (0, 0, 0), again

    # The stray sweep leaves both the new objects and the kept ones alone: each is some row's.
    swept = services.purge_strays(older_than=timedelta(0), allow_young=True)
    assert swept.removed == 0 and names(source) == old_objects and len(names(target)) == 5

    delete_sources(target, 5, source)
    assert names(source) == set() and not Replica.objects.exists()
    for c in created:
        response = staff["a"].get(download(c["id"]))
        assert response.status_code == 200 and body(response) == c["data"]
    assert services.verify_blobs().ok


def test_a_move_between_buckets_of_one_server_is_copied_by_the_server(
    storages, staff, owners, django_capture_on_commit_callbacks, monkeypatch
):
    source, target = storages.add("old", "s3-moto"), storages.add("new", "s3-moto")
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=2)
    opened: list[Any] = []
    store = get_store(source)
    real_open = store.open
    monkeypatch.setattr(
        store, "open", lambda identifiers, **kw: opened.append(identifiers) or real_open(identifiers, **kw)
    )

    summary, status = run("--to", target)

    assert status == 0 and summary["moved"] == 2, summary
    assert opened == []  # no byte of the source passed through this process
    for c in created:
        blob = Blob.objects.get(pk=c["blob_id"])
        assert blob.storage == target and read(target, blob.storage_identifiers) == c["data"]


def test_a_move_with_delete_source_deletes_each_old_object_once_switched(
    storages, staff, owners, thumbs, django_capture_on_commit_callbacks
):
    source, target = storages.add("old", "disk"), storages.add("new", "s3-seaweedfs")
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=1, others=2)

    summary, status = run("--to", target, "--delete-source")

    assert status == 0 and (summary["moved"], summary["sources_deleted"], summary["sources_kept"]) == (4, 4, 0)
    assert names(source) == set() and not Replica.objects.exists() and len(names(target)) == 4
    for c in created:
        response = staff["a"].get(download(c["id"]))
        assert response.status_code == 200 and body(response) == c["data"]


def test_moving_back_takes_over_the_copy_kept_there(storages, staff, owners, django_capture_on_commit_callbacks):
    source, target = storages.add("old", "disk"), storages.add("new", "s3-seaweedfs")
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=2)
    before = {c["blob_id"]: Blob.objects.get(pk=c["blob_id"]).storage_identifiers for c in created}
    assert run("--to", target)[1] == 0

    summary, status = run("--to", source, "--delete-source")

    assert status == 0 and (summary["copied"], summary["taken_over"]) == (0, 2), summary
    # S3 signs URLs: one signed before the switch still works a while, and the old objects wait for a later run.
    assert Replica.objects.filter(storage=target).count() == 2 and len(names(target)) == 2
    delete_sources(source, 2, target)
    for c in created:
        blob = Blob.objects.get(pk=c["blob_id"])
        assert (blob.storage, blob.storage_identifiers) == (source, before[c["blob_id"]])
    assert names(target) == set() and not Replica.objects.exists()


def test_each_old_object_left_waiting_is_counted_once(storages, staff, owners, django_capture_on_commit_callbacks):
    source, target = storages.add("old", "s3-moto"), storages.add("new", "disk")
    storages.use(source)
    upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=3)

    summary, status = run("--to", target, "--delete-source")

    assert status == 0 and summary["moved"] == 3, summary
    assert Replica.objects.filter(storage=source).count() == len(names(source)) == 3
    assert summary["sources_waiting"] == 3, summary


# -- a dry run, the summary, the filters ------------------------------------------------------------


def test_a_dry_run_changes_nothing_and_counts_blobs_and_bytes(
    storages, staff, owners, thumbs, django_capture_on_commit_callbacks
):
    source, target = storages.add("old", "disk"), storages.add("new", "disk")
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=2, others=2)
    rows = {(b.pk, b.storage, json.dumps(b.storage_identifiers)) for b in Blob.objects.all()}
    variants = {(v.pk, v.storage, json.dumps(v.storage_identifiers)) for v in Variant.objects.all()}

    summary, status = run("--to", target, "--dry-run")
    out = io.StringIO()
    call_command("migrate_attachments", "--to", target, "--dry-run", stdout=out, stderr=io.StringIO())

    assert status == 0 and summary["dry_run"] is True
    assert (summary["blobs"], summary["bytes"]) == (4, sum(len(c["data"]) for c in created))
    # On a dry run, "copied" and "bytes" are what a real run would copy; nothing is moved.
    assert (summary["copied"], summary["moved"], summary["failed"]) == (4, 0, [])
    assert f"would copy 4 blob(s) ({_size(sum(len(c['data']) for c in created))})" in out.getvalue()
    assert {(b.pk, b.storage, json.dumps(b.storage_identifiers)) for b in Blob.objects.all()} == rows
    assert {(v.pk, v.storage, json.dumps(v.storage_identifiers)) for v in Variant.objects.all()} == variants
    assert names(target) == set() and not Replica.objects.exists()


def test_a_dry_run_reports_the_bytes_the_real_run_copies(storages, staff, owners, django_capture_on_commit_callbacks):
    source, target = storages.add("old", "disk"), storages.add("new", "disk")
    storages.use(source)
    upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=3)
    assert run("--to", target)[1] == 0  # moved; the old objects kept

    dry, status = run("--to", target, "--dry-run", "--delete-source")
    real, _ = run("--to", target, "--delete-source")

    assert status == 0 and (real["copied"], real["bytes"], real["sources_deleted"]) == (0, 0, 3), real
    assert dry["bytes"] == real["bytes"], (dry, real)


def _size(n: int) -> str:
    from django.template.defaultfilters import filesizeformat

    return filesizeformat(n)


def test_the_json_summary_has_one_line_and_every_count(storages, staff, owners, django_capture_on_commit_callbacks):
    source, target = storages.add("old", "disk"), storages.add("new", "disk")
    storages.use(source)
    upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=1)
    out = io.StringIO()
    call_command("migrate_attachments", "--to", target, "--json", stdout=out, stderr=io.StringIO())
    (line,) = out.getvalue().splitlines()
    summary = json.loads(line)
    assert set(summary) == {
        "target", "mirror", "dry_run", "delete_source", "blobs", "copied", "bytes", "verified",
        "verified_by_checksum", "verified_by_read", "moved", "taken_over", "skipped", "sources_deleted",
        "sources_kept", "sources_waiting", "failed", "ok", "interrupted",
    }  # fmt: skip
    assert summary["target"] == [target] and summary["ok"] is True and summary["interrupted"] is False
    assert summary["verified_by_checksum"] + summary["verified_by_read"] == summary["verified"] == 1


@pytest.fixture
def spread(storages, staff, owners, django_capture_on_commit_callbacks):
    """Blobs of two tenants, on two storages, linked to notes and to patients: {label: blob id}."""
    storages.add("old", "disk")
    storages.add("other", "disk")
    storages.add("new", "disk")
    capture = django_capture_on_commit_callbacks
    storages.use("old")
    found = {}
    for label, client, owner in (
        ("a-note", staff["a"], ("note", owners.alice_note.pk)),
        ("a-patient", staff["a"], ("patient", owners.adam.pk)),
        ("b-note", staff["b"], ("note", owners.bob_note.pk)),
        ("b-patient", staff["b"], ("patient", owners.bob.pk)),
    ):
        (created,) = upload_files(client, owners, capture, images=0, others=1, owner=owner, tag=label)
        found[label] = created["blob_id"]
    storages.use("other")
    (created,) = upload_files(staff["a"], owners, capture, images=0, others=1, tag="other")
    found["a-other"] = created["blob_id"]
    return found


def _selected(*args: str) -> set[str]:
    summary, status = run("--to", "new", "--dry-run", *args)
    assert status == 0, summary
    before = set(Blob.objects.exclude(storage="new").values_list("pk", flat=True))
    moved, status = run("--to", "new", *args)
    assert status == 0 and moved["blobs"] == summary["blobs"], (summary, moved)
    after = set(Blob.objects.exclude(storage="new").values_list("pk", flat=True))
    return {str(pk) for pk in before - after}


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--from", "other"), {"a-other"}),
        (("--from", "old"), {"a-note", "a-patient", "b-note", "b-patient"}),
        (("--owner-type", "patient"), {"a-patient", "b-patient"}),
        (("--owner-type", "note", "--from", "old"), {"a-note", "b-note"}),
        (("--tenant", "B"), {"b-note", "b-patient"}),
        (("--tenant", "A", "--owner-type", "note"), {"a-note", "a-other"}),
    ],
)
def test_the_filters_select_exactly_what_they_say(spread, owners, args, expected):
    args = tuple(
        {"A": owners.tenant_a, "B": owners.tenant_b}.get(arg, arg) if i and args[i - 1] == "--tenant" else arg
        for i, arg in enumerate(args)
    )
    assert _selected(*args) == {spread[label] for label in expected}


def test_limit_moves_exactly_that_many_and_the_next_runs_the_rest(spread):
    first = _selected("--limit", "2")
    assert len(first) == 2
    second = _selected("--limit", "2")
    assert len(second) == 2 and not first & second
    assert _selected() == set(spread.values()) - first - second
    assert run("--to", "new")[0]["blobs"] == 0


# -- exit codes -----------------------------------------------------------------------------------


def test_a_blob_whose_bytes_are_gone_fails_stays_put_and_the_others_move(
    storages, staff, owners, django_capture_on_commit_callbacks
):
    source, target = storages.add("old", "disk"), storages.add("new", "s3-seaweedfs")
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=3)
    lost = Blob.objects.get(pk=created[1]["blob_id"])
    get_store(source).delete(lost.storage_identifiers)

    summary, status = run("--to", target)

    assert status == 1
    assert summary["moved"] == 2 and summary["ok"] is False
    (failure,) = summary["failed"]
    assert (failure["id"], failure["code"], failure["storage"], failure["target"]) == (
        str(lost.pk),
        "source_missing",
        source,
        target,
    )
    lost.refresh_from_db()
    assert lost.storage == source and not Replica.objects.filter(blob=lost).exists()
    assert len(names(target)) == 2  # nothing of the failed blob's left there
    summary, status = run("--to", target)  # tried again, failing again
    assert status == 1 and [f["id"] for f in summary["failed"]] == [str(lost.pk)]


def test_wrong_arguments_exit_with_status_2(storages, settings):
    storages.add("old", "disk")
    storages.add("new", "disk")
    assert "'nowhere' is not an alias" in usage_error("--to", "nowhere")
    assert "'nowhere' is not an alias" in usage_error("--to", "new", "--from", "nowhere")
    assert "same storage" in usage_error("--to", "new", "--from", "new")
    assert "--to is required" in usage_error()
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": []}
    assert "MIRRORS" in usage_error("--mirror")
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MIRRORS": ["new"]}
    assert "--delete-source" in usage_error("--mirror", "--delete-source")
    assert "not one of MIRRORS" in usage_error("--mirror", "--to", "old")
    assert "is a mirror" in usage_error("--to", "new")


# -- a copy that is not the bytes -------------------------------------------------------------------


def test_a_corrupted_copy_is_detected_deleted_and_not_switched(
    storages, staff, owners, thumbs, django_capture_on_commit_callbacks
):
    source, target = storages.add("old", "disk"), storages.add("bad", "corrupting")
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=1, others=1)
    before = {b.pk: (b.storage, b.storage_identifiers) for b in Blob.objects.all()}

    summary, status = run("--to", target, "--delete-source")

    assert status == 1 and summary["moved"] == 0
    assert len(summary["failed"]) == 3  # two blobs and the variant
    assert {f["code"] for f in summary["failed"]} == {"copy_mismatch"}
    assert {b.pk: (b.storage, b.storage_identifiers) for b in Blob.objects.all()} == before
    assert set(Variant.objects.values_list("storage", flat=True)) == {source}
    assert not Replica.objects.exists()
    left = [p for p in storages.folder(target).rglob("*") if p.is_file()]
    assert left == []
    for c in created:
        response = staff["a"].get(download(c["id"]))
        assert response.status_code == 200 and body(response) == c["data"]


# -- races: a purge during a copy, after a switch ------------------------------------------------------


def _purge_on_another_connection(blob_id: Any) -> None:
    """The purge of one blob, run by another thread (its own connection) while the caller waits."""
    errors: list[BaseException] = []

    def purge() -> None:
        try:
            services.purge_orphans(older_than=timedelta(0), blob_ids=[blob_id])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=purge)
    thread.start()
    thread.join()
    assert not errors, errors


def _purge_while_copying(storages, staff, owners, capture, *, another_connection: bool) -> None:
    """A blob unlinked, then purged half way through the write of its copy; the migration goes on."""
    source, target = storages.add("old", "disk"), storages.add("hooked", "hooked")
    storages.use(source)
    created = upload_files(staff["a"], owners, capture, images=1, others=1)
    doomed, kept = created[0]["blob_id"], created[1]["blob_id"]
    Attachment.objects.filter(blob_id=doomed).delete()  # unlinked: an orphan for the purge
    purged: list[str] = []

    def purge_during_the_copy(name: str) -> None:
        if purged:
            return
        purged.append(name)
        if another_connection:
            _purge_on_another_connection(doomed)
        else:
            services.purge_orphans(older_than=timedelta(0), blob_ids=[doomed])

    HookedStorage.on_save = staticmethod(purge_during_the_copy)
    summary, status = run("--to", target)

    assert purged and not Blob.objects.filter(pk=doomed).exists()
    assert status == 0, summary
    assert not Replica.objects.filter(blob_id=doomed).exists()
    kept_blob = Blob.objects.get(pk=kept)
    assert kept_blob.storage == target
    expected = {kept_blob.storage_identifiers["name"]}
    assert names(target) == expected, "the purged blob's copy was left in the target"
    folder = storages.folder(target)
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == expected
    assert names(source) == {r.storage_identifiers["name"] for r in Replica.objects.all()}


def test_a_blob_purged_while_its_copy_is_in_flight_leaves_nothing_behind(
    storages, staff, owners, thumbs, django_capture_on_commit_callbacks
):
    _purge_while_copying(storages, staff, owners, django_capture_on_commit_callbacks, another_connection=False)


@pytest.mark.django_db(transaction=True)
def test_a_blob_purged_by_another_connection_while_its_copy_is_in_flight_leaves_nothing_behind(
    storages, staff, owners, thumbs, django_capture_on_commit_callbacks
):
    _purge_while_copying(storages, staff, owners, django_capture_on_commit_callbacks, another_connection=True)


def test_a_blob_purged_just_before_its_copy_reads_it_is_skipped_not_failed(
    storages, staff, owners, django_capture_on_commit_callbacks
):
    source, target = storages.add("hooked", "hooked"), storages.add("new", "disk")
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=2)
    doomed = created[0]["blob_id"]
    doomed_name = Blob.objects.get(pk=doomed).storage_identifiers["name"]
    Attachment.objects.filter(blob_id=doomed).delete()

    purged: list[str] = []

    def purge_first(name: str) -> None:
        if name == doomed_name and not purged:
            purged.append(name)
            services.purge_orphans(older_than=timedelta(0), blob_ids=[doomed])

    HookedStorage.on_open = staticmethod(purge_first)
    summary, status = run("--to", target)

    assert not Blob.objects.filter(pk=doomed).exists() and summary["moved"] == 1
    assert names(target) == {Blob.objects.get().storage_identifiers["name"]}  # nothing of the purged one
    assert (status, summary["failed"]) == (0, []), summary
    assert summary["skipped"] == 1


def test_after_the_switch_a_purge_of_the_old_object_leaves_downloads_working(
    storages, staff, owners, django_capture_on_commit_callbacks
):
    source, target = storages.add("old", "disk"), storages.add("new", "s3-seaweedfs")
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=2)
    stale = {c["blob_id"]: Blob.objects.get(pk=c["blob_id"]) for c in created}  # loaded before the switch
    assert run("--to", target)[1] == 0

    # The old objects go (the kept copies deleted by a later run); a row read before the switch still reads.
    assert run("--to", target, "--delete-source")[1] == 0
    assert names(source) == set()
    for c in created:
        with services.open_blob(stale[c["blob_id"]]) as stream:
            assert b"".join(stream.chunks()) == c["data"]
        response = staff["a"].get(download(c["id"]))
        assert response.status_code == 200 and body(response) == c["data"]

    # Unlinked and purged: the blob's object goes from its new storage, nothing is left anywhere.
    Attachment.objects.filter(blob_id=created[0]["blob_id"]).delete()
    services.purge_orphans(older_than=timedelta(0), blob_ids=[created[0]["blob_id"]])
    assert names(target) == {Blob.objects.get(pk=created[1]["blob_id"]).storage_identifiers["name"]}


def test_a_purge_after_the_switch_removes_the_kept_copy_too(
    storages, staff, owners, django_capture_on_commit_callbacks
):
    source, target = storages.add("old", "disk"), storages.add("new", "disk")
    storages.use(source)
    (created,) = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=1)
    assert run("--to", target)[1] == 0
    assert names(source) and names(target)
    Attachment.objects.filter(blob_id=created["blob_id"]).delete()
    result = services.purge_orphans(older_than=timedelta(0), blob_ids=[created["blob_id"]])
    assert (result.removed, result.copies) == (1, 1)
    assert names(source) == set() and names(target) == set()


def test_a_variant_rendered_from_a_row_read_before_the_switch_is_moved_by_the_next_run(
    storages, staff, owners, settings, django_capture_on_commit_callbacks
):
    from django_attachments.services import variants

    source, target = storages.add("old", "disk"), storages.add("new", "disk")
    storages.use(source)
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": {**THUMB, "eager": False}}}
    (created,) = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=1, others=0)
    stale = Blob.objects.get(pk=created["blob_id"])
    assert run("--to", target)[1] == 0

    outcome = variants.make_declared(stale, variants.resolve(stale, "thumb", owner_type="note"))
    assert outcome.state == "made" and outcome.variant.storage == source  # rendered where the row said

    summary, status = run("--to", target)
    assert status == 0 and summary["moved"] == 1, summary
    variant = Variant.objects.get()
    assert variant.storage == target and hashlib.sha256(read(target, variant.storage_identifiers)).hexdigest() == (
        variant.checksum
    )


# -- --delete-source and objects other rows reference ------------------------------------------------


def test_delete_source_never_deletes_an_object_another_row_references(
    storages, staff, owners, django_capture_on_commit_callbacks
):
    source, target = storages.add("old", "disk"), storages.add("new", "s3-seaweedfs")
    storages.use(source)
    (created,) = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=1)
    shared = Blob.objects.get(pk=created["blob_id"])
    # Another tenant's blob naming the same object (rows imported from elsewhere, say).
    other = Blob.objects.get(pk=shared.pk)
    other.pk = None
    other.tenant = owners.tenant_b
    other.save()

    summary, status = run("--to", target, "--delete-source", "--tenant", owners.tenant_a)

    assert status == 0 and summary["moved"] == 1 and summary["sources_deleted"] == 0, summary
    assert shared.storage_identifiers["name"] in names(source)
    other.refresh_from_db()
    assert other.storage == source and read(source, other.storage_identifiers) == created["data"]

    # Moved too: now nothing else references the old object, and it goes.
    summary, status = run("--to", target, "--delete-source")
    assert status == 0 and summary["sources_deleted"] == 1, summary
    assert names(source) == set()
    for blob in Blob.objects.all():
        assert read(target, blob.storage_identifiers) == created["data"]


def test_delete_source_keeps_an_object_a_copy_of_another_blob_holds(
    storages, staff, owners, django_capture_on_commit_callbacks
):
    source, target = storages.add("old", "disk"), storages.add("new", "disk")
    storages.use(source)
    first, second = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=2)
    a = Blob.objects.get(pk=first["blob_id"])
    b = Blob.objects.get(pk=second["blob_id"])
    # b's copy in "old" names a's object (a copy recorded by another tool, or a bug elsewhere).
    Replica.objects.create(blob=b, storage=source, storage_identifiers=a.storage_identifiers)

    summary, status = run("--to", target, "--delete-source", "--limit", "1")
    # Whichever went first, a's object is held by a row until every row naming it is gone.
    assert status == 0, summary
    assert a.storage_identifiers["name"] in names(source)


# -- several at once -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_and_a_second_run_at_once_copy_each_blob_once(
    storages, staff, owners, django_capture_on_commit_callbacks
):
    if connection.vendor == "sqlite":
        pytest.skip("threads that write at once need row locks: PostgreSQL (SQLite runs with --concurrency 1)")
    source, target = storages.add("old", "disk"), storages.add("new", "s3-seaweedfs")
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=12)
    results: list[migrating.MigrationResult] = []

    def one_run() -> None:
        try:
            results.append(migrating.migrate(target, concurrency=3, delete_source=True))
        finally:
            connection.close()

    runs = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()

    assert len(results) == 2 and all(r.ok for r in results), [r.failed for r in results]
    assert sum(r.moved for r in results) == 12
    assert Blob.objects.filter(storage=target).count() == 12
    assert names(target) == {b.storage_identifiers["name"] for b in Blob.objects.all()}
    assert names(source) == set() and not Replica.objects.exists()
    for c in created:
        blob = Blob.objects.get(pk=c["blob_id"])
        assert read(target, blob.storage_identifiers) == c["data"]


# -- what a run killed mid-copy leaves ----------------------------------------------------------------


def test_a_copy_left_by_a_run_killed_before_its_first_switch_is_swept(
    storages, staff, owners, django_capture_on_commit_callbacks
):
    from django_attachments.services import replicas

    source, target = storages.add("old", "disk"), storages.add("new", "disk")
    storages.use(source)
    (created,) = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=1)
    # The first step of a move, and no more: what a run killed between its copy and its switch leaves.
    copied = replicas.copy_row(Blob.objects.get(pk=created["blob_id"]), target)
    assert names(target) == {copied.identifiers["name"]}

    services.purge_strays(older_than=timedelta(0), allow_young=True)

    assert names(target) == set(), "the stray copy is still in the target"


# -- large objects: in parts, streamed and server-side; memory ------------------------------------------

MiB = 1024 * 1024


@pytest.mark.parametrize(
    "source_kind, target_kind",
    [("disk", "s3-seaweedfs"), ("s3-moto", "s3-moto"), ("s3-seaweedfs", "disk")],
    ids=["disk-to-seaweedfs-in-parts", "moto-to-moto-part-copies", "seaweedfs-to-disk"],
)
def test_a_large_blob_is_copied_in_parts_with_memory_that_does_not_grow_with_its_size(
    storages, staff, owners, settings, source_kind, target_kind
):
    import tracemalloc

    source, target = storages.add("old", source_kind), storages.add("new", target_kind)
    small_parts = {"multipart_threshold": 5 * MiB, "part_size": 5 * MiB, "max_parts_in_flight": 2}
    s3_aliases = [alias for alias, kind in ((source, source_kind), (target, target_kind)) if kind != "disk"]
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "MAX_UPLOAD_SIZE": None,
        "STORE_OPTIONS": {alias: small_parts for alias in s3_aliases},
    }
    storages.use(source)
    peaks = {}
    for size in (16 * MiB + 1234, 64 * MiB + 4321):
        data = os.urandom(size)
        response = upload(staff["a"], "note", owners.alice_note.pk, data, filename=f"big-{size}.bin")
        assert response.status_code == 201, response.content
        blob_id = response.json()["blob_id"]
        del response
        store = get_store(target)
        if source_kind.startswith("s3") and target_kind.startswith("s3"):
            # Part by part (UploadPartCopy), as above 5 GiB, without moving 5 GiB.
            store.multipart_copy_threshold = 8 * MiB
            store.copy_part_size = 5 * MiB

        tracemalloc.start()
        try:
            summary, status = run("--to", target, "--delete-source")
            peaks[size] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

        assert status == 0 and summary["moved"] == 1, json.dumps(summary)
        if signs_urls(source):
            after_url_expiry()
            assert run("--to", target, "--delete-source")[0]["sources_deleted"] == 1
        else:
            assert summary["sources_deleted"] == 1, summary
        blob = Blob.objects.get(pk=blob_id)
        assert blob.storage == target
        with get_store(target).open(blob.storage_identifiers) as stream:
            digest = hashlib.sha256()
            for chunk in stream.chunks(MiB):
                digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        assert names(source) == set()
        del data
    small, large = peaks.values()
    figures = f"{small / MiB:.1f} MiB traced for 16 MiB, {large / MiB:.1f} MiB for 64 MiB"
    assert large - small < 5 * MiB and large < 32 * MiB, figures  # a part's worth at most, not the file


# -- a source that is not its bytes any more ----------------------------------------------------------------


@pytest.mark.parametrize(
    "source_kind, target_kind", [("disk", "s3-seaweedfs"), ("s3-moto", "s3-moto"), ("s3-moto", "disk")]
)
def test_a_source_whose_bytes_rotted_is_not_copied_and_the_blob_stays(
    storages, staff, owners, django_capture_on_commit_callbacks, source_kind, target_kind
):
    source, target = storages.add("old", source_kind), storages.add("new", target_kind)
    storages.use(source)
    created = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=0, others=2)
    rotten = Blob.objects.get(pk=created[0]["blob_id"])
    flipped = bytes([created[0]["data"][0] ^ 0x01]) + created[0]["data"][1:]  # same size, one bit off
    store = get_store(source)
    if source_kind == "disk":
        (storages.folder(source) / rotten.storage_identifiers["name"]).write_bytes(flipped)
    else:
        store.client.put_object(Bucket=store.bucket, Key=rotten.storage_identifiers["key"], Body=flipped)
        rotten.storage_identifiers = store.stat(rotten.storage_identifiers).identifiers  # its new ETag
        Blob.objects.filter(pk=rotten.pk).update(storage_identifiers=rotten.storage_identifiers)

    summary, status = run("--to", target, "--delete-source")

    assert status == 1 and summary["moved"] == 1, summary
    (failure,) = summary["failed"]
    assert failure["id"] == str(rotten.pk), failure
    rotten.refresh_from_db()
    assert rotten.storage == source
    kept = Blob.objects.get(pk=created[1]["blob_id"])
    assert names(target) == {kept.storage_identifiers["name"]}  # no copy of the rotten bytes
    if signs_urls(source):
        after_url_expiry()
        assert run("--to", target, "--delete-source")[0]["sources_deleted"] == 1
    assert names(source) == {rotten.storage_identifiers["name"]}


# -- a variant purged while its copy is in flight --------------------------------------------------------


def test_a_variant_purged_as_stale_while_its_copy_is_in_flight_leaves_nothing_behind(
    storages, staff, owners, settings, thumbs, django_capture_on_commit_callbacks
):
    source, target = storages.add("old", "disk"), storages.add("hooked", "hooked")
    storages.use(source)
    (created,) = upload_files(staff["a"], owners, django_capture_on_commit_callbacks, images=1, others=0)
    variant = Variant.objects.get()
    blob = Blob.objects.get(pk=created["blob_id"])
    purged: list[int] = []
    saves: list[str] = []

    def purge_the_variant(name: str) -> None:
        saves.append(name)
        if purged or len(saves) < 2:
            return  # the blob's own copy (copied first): let it through
        # The thumb's spec changes: the variant being copied is stale, and goes.
        settings.DJANGO_ATTACHMENTS = {
            **settings.DJANGO_ATTACHMENTS,
            "VARIANTS": {"thumb": {**THUMB, "width": 47}},
            "STORAGE": source,
        }
        purged.append(services.purge_stale_variants().removed)

    HookedStorage.on_save = staticmethod(purge_the_variant)
    summary, status = run("--to", target)

    assert purged == [1] and not Variant.objects.filter(pk=variant.pk).exists()
    assert status == 0, summary
    blob.refresh_from_db()
    assert blob.storage == target
    assert names(target) == {blob.storage_identifiers["name"]}, "the stale variant's copy was left in the target"
    assert not Replica.objects.filter(variant_id=variant.pk).exists()
