"""Variants (thumbnails, previews) through the service, the API, the purge and the pipeline.

Real renderers (Pillow, pypdfium2) on real stores: local disk, moto and
SeaweedFS. Uploads go through the API; the Tasks framework's immediate
backend runs the pipeline when the upload commits
(``django_capture_on_commit_callbacks(execute=True)`` stands for the commit).
The races run on threads against the database the suite runs on (PostgreSQL
in the PostgreSQL leg), and over a live server.
"""

from __future__ import annotations

import io
import os
import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from django_attachments import services
from django_attachments.conf import app_settings
from django_attachments.exceptions import ObjectMissing
from django_attachments.models import Blob, RenderState, ScanState, Variant, VariantRender
from django_attachments.processing.renderers import ImageRenderer, RenderError, VariantSpec
from django_attachments.registry import OwnerSpec, attachment_registry
from django_attachments.services import variants
from django_attachments.stores import get_store
from tests.apitools import body, detail, upload
from tests.testapp.owners import resolve_note

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]

THUMB = {"operation": "fit", "width": 64, "height": 64, "format": "webp"}
PREVIEW = {"operation": "fit", "width": 160, "height": 160, "format": "jpeg", "quality": 85}
DUMMY_TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


def variant_url(pk, name) -> str:
    return f"/api/attachments/{pk}/variants/{name}/"


def jpeg_bytes(width=320, height=200, color=(200, 30, 30), **save) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG", **save)
    return out.getvalue()


def decode(data: bytes):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture
def declared(settings):
    """A global lazy "thumb" and an eager "preview"."""
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "VARIANTS": {"thumb": THUMB, "preview": {**PREVIEW, "eager": True}},
    }


def upload_jpeg(client, owners, **kwargs):
    response = upload(client, "note", owners.alice_note.pk, jpeg_bytes(**kwargs), filename="photo.jpg")
    assert response.status_code == 201, response.content
    return response.json()


# -- declaring variants --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "thumb",
        {"thumb": {"operation": "stretch", "width": 1, "height": 1, "format": "webp"}},
        {"thumb": {**THUMB, "width": 0}},
        {"thumb": {**THUMB, "width": True}},
        {"thumb": {**THUMB, "format": "svg"}},
        {"thumb": {**THUMB, "colour": "red"}},
        {"Thumb/../x": THUMB},
        {"thumb": "fit 64x64"},
    ],
)
def test_a_wrong_variants_setting_names_the_key(settings, value):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": value}
    with pytest.raises(ImproperlyConfigured, match="VARIANTS"):
        app_settings.VARIANTS


def test_a_wrong_owner_variant_is_refused_at_registration():
    with pytest.raises(ValueError, match="'xray'.*thumb"):
        OwnerSpec(owner_type="xray", resolver=resolve_note, variants={"thumb": {**THUMB, "height": 9999}})


def test_an_owner_type_adds_overrides_and_turns_off_global_variants(settings, declared):
    bigger = {**THUMB, "width": 128, "height": 128}
    spec = OwnerSpec(owner_type="note", resolver=resolve_note, variants={"thumb": bigger, "preview": None, "x": THUMB})
    with attachment_registry.override(spec):
        specs = variants.declared_specs("note")
        assert set(specs) == {"thumb", "x"}
        assert specs["thumb"].width == 128
        assert set(variants.declared_specs("patient")) == {"thumb", "preview"}
        assert set(variants.declared_specs("gone")) == {"thumb", "preview"}


def test_the_digest_follows_the_output_and_the_renderer_not_eagerness():
    renderer = ImageRenderer()
    base = VariantSpec.from_value("a", THUMB)
    assert base.digest(renderer) == VariantSpec.from_value("b", {**THUMB, "eager": True}).digest(renderer)
    assert base.digest(renderer) != VariantSpec.from_value("a", {**THUMB, "width": 65}).digest(renderer)
    assert base.digest(renderer) != VariantSpec.from_value("a", {**THUMB, "quality": 81}).digest(renderer)

    class Newer(ImageRenderer):
        version = "99"

    assert base.digest(renderer) != base.digest(Newer())


# -- serving -------------------------------------------------------------------------------


def test_a_lazy_variant_is_made_on_first_request_and_served_like_the_original(
    staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners, width=320, height=200)
    blob = Blob.objects.get(pk=created["blob_id"])
    assert not Variant.objects.filter(blob=blob, name="thumb").exists()  # lazy: not made by the pipeline

    with django_capture_on_commit_callbacks(execute=True):
        response = staff["a"].get(variant_url(created["id"], "thumb"))
    assert response.status_code == 200, getattr(response, "content", b"")
    data = body(response)
    image = decode(data)
    assert (image.format, image.size) == ("WEBP", (64, 40))
    assert response["Content-Type"] == "image/webp"
    assert response["Content-Length"] == str(len(data))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, no-store"
    assert (
        response["Content-Disposition"].startswith("inline;") and "photo-thumb.webp" in response["Content-Disposition"]
    )
    variant = Variant.objects.get(blob=blob, name="thumb")
    assert response["ETag"] == f'"{variant.checksum}"'
    assert (variant.width, variant.height, variant.size) == (64, 40, len(data))
    assert not VariantRender.objects.exists()  # the claim went with the variant's row

    again = staff["a"].get(variant_url(created["id"], "thumb"), HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    ranged = staff["a"].get(variant_url(created["id"], "thumb"), HTTP_RANGE="bytes=0-9")
    assert ranged.status_code == 206 and body(ranged) == data[:10]
    assert Variant.objects.filter(blob=blob).count() == 2  # thumb, and the eager preview


def test_the_attachment_json_lists_its_variants(
    staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners, width=320, height=200)
    shown = staff["a"].get(detail(created["id"])).json()
    assert set(shown["variants"]) == {"thumb", "preview"}
    assert shown["variants"]["preview"]["ready"] is True
    assert (shown["variants"]["preview"]["width"], shown["variants"]["preview"]["height"]) == (160, 100)
    assert shown["variants"]["thumb"] == {
        "url": f"http://testserver{variant_url(created['id'], 'thumb')}",
        "width": None,
        "height": None,
        "ready": False,
    }
    listed = staff["a"].get("/api/attachments/").json()["results"]
    assert listed[0]["variants"]["preview"]["ready"] is True


def test_unknown_names_unsupported_types_and_refused_files_are_404_with_their_codes(
    staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        photo = upload_jpeg(staff["a"], owners)
        text = upload(staff["a"], "note", owners.alice_note.pk, b"just some words\n" * 20, filename="a.txt").json()
        # A JPEG cut short after its header: sniffed as JPEG, refused by the renderer.
        broken_bytes = jpeg_bytes(width=800, height=600)[:700]
        broken = upload(staff["a"], "note", owners.alice_note.pk, broken_bytes, filename="cut.jpg").json()
    unknown = staff["a"].get(variant_url(photo["id"], "poster"))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "variant_not_found")
    unsupported = staff["a"].get(variant_url(text["id"], "thumb"))
    assert (unsupported.status_code, unsupported.json()["code"]) == (404, "no_preview")
    assert "text/plain" in unsupported.json()["detail"]
    assert staff["a"].get(detail(text["id"])).json()["variants"] == {}

    with django_capture_on_commit_callbacks(execute=True):
        refused = staff["a"].get(variant_url(broken["id"], "thumb"))
    assert (refused.status_code, refused.json()["code"]) == (404, "no_preview")
    render = VariantRender.objects.get(blob_id=broken["blob_id"], name="thumb")
    assert render.state == RenderState.FAILED and render.error_code == "render_failed"
    # Remembered: asked again, the renderer is not run again.
    render_calls = []
    original = ImageRenderer.render
    ImageRenderer.render = lambda self, *a, **k: render_calls.append(1) or original(self, *a, **k)
    try:
        again = staff["a"].get(variant_url(broken["id"], "thumb"))
    finally:
        ImageRenderer.render = original
    assert (again.status_code, again.json()["code"], render_calls) == (404, "no_preview", [])
    assert "thumb" not in staff["a"].get(detail(broken["id"])).json()["variants"]


def test_another_tenants_variant_is_not_found_like_a_missing_one(
    staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
        made = staff["a"].get(variant_url(created["id"], "thumb"))
    assert made.status_code == 200
    theirs = staff["b"].get(variant_url(created["id"], "thumb"))
    missing = staff["b"].get(variant_url("00000000-0000-0000-0000-000000000000", "thumb"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert staff["b"].get(variant_url(created["id"], "poster")).json() == missing.json()


def test_a_denied_viewer_gets_404_for_variants_too(
    staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
    hidden = OwnerSpec(owner_type="note", resolver=resolve_note, can_view=lambda request, owner: False)
    with attachment_registry.override(hidden):
        response = staff["a"].get(variant_url(created["id"], "thumb"))
    assert response.status_code == 404
    assert not Variant.objects.filter(blob_id=created["blob_id"], name="thumb").exists()


@pytest.mark.parametrize("serve_pending", [False, True])
def test_no_variant_is_made_of_a_file_the_scanner_has_not_passed(
    settings, staff, owners, disk_store, declared, dead_scanner, serve_pending, django_capture_on_commit_callbacks
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SERVE_PENDING_SCANS": serve_pending}
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
        response = staff["a"].get(variant_url(created["id"], "thumb"))
    blob = Blob.objects.get(pk=created["blob_id"])
    assert blob.scan_state == ScanState.FAILED  # the scanner is down
    assert (response.status_code, response.json()["code"]) == (409, "scan_pending")
    assert not Variant.objects.filter(blob=blob).exists()  # the eager one neither
    assert staff["a"].get(detail(created["id"])).json()["variants"] == {}


def test_an_infected_files_variants_are_quarantined(
    staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
        assert staff["a"].get(variant_url(created["id"], "thumb")).status_code == 200
    Blob.objects.filter(pk=created["blob_id"]).update(scan_state=ScanState.INFECTED)
    response = staff["a"].get(variant_url(created["id"], "thumb"))
    assert (response.status_code, response.json()["code"]) == (409, "quarantined")


def test_a_worker_backend_answers_202_and_the_task_makes_it_once(
    settings, staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    settings.TASKS = DUMMY_TASKS
    from django_attachments import tasks

    backend = tasks.make_variant.using(backend="default").get_backend()
    backend.clear()
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
    first = staff["a"].get(variant_url(created["id"], "thumb"))
    second = staff["a"].get(variant_url(created["id"], "thumb"))
    for response in (first, second):
        assert response.status_code == 202
        assert response["Retry-After"] == "1"
        assert response.json()["code"] == "variant_pending"
    queued = [result for result in backend.results if result.task.func is tasks.make_variant.func]
    assert len(queued) == 1  # the second request found the claim
    assert VariantRender.objects.get(blob_id=created["blob_id"]).state == RenderState.QUEUED

    outcome = tasks.make_variant.call(*queued[0].args, **queued[0].kwargs)
    assert outcome["state"] == "made"
    assert staff["a"].get(variant_url(created["id"], "thumb")).status_code == 200


def test_a_claim_whose_renderer_died_is_taken_over_after_the_lease(
    settings, staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    settings.TASKS = DUMMY_TASKS
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
    assert staff["a"].get(variant_url(created["id"], "thumb")).status_code == 202
    blob = Blob.objects.get(pk=created["blob_id"])
    assert variants.make(blob.pk, "thumb", owner_type="note").state == "made"  # a task takes a queued claim at once
    Variant.objects.filter(blob=blob, name="thumb").delete()
    VariantRender.objects.create(
        blob=blob,
        digest=variants.resolve(blob, "thumb", owner_type="note").digest,
        name="thumb",
        state=RenderState.RENDERING,
        claimed_at=timezone.now() - timedelta(minutes=1),
    )
    assert variants.make(blob.pk, "thumb", owner_type="note").state == "busy"
    VariantRender.objects.update(claimed_at=timezone.now() - variants.RENDER_LEASE - timedelta(seconds=1))
    assert variants.make(blob.pk, "thumb", owner_type="note").state == "made"


def test_a_storage_failure_is_retried_later_with_a_growing_wait_and_clients_are_told_when(
    settings, staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
    blob = Blob.objects.get(pk=created["blob_id"])
    get_store(blob.storage).delete(blob.storage_identifiers)  # the bytes lost: reading them fails
    with pytest.raises(ObjectMissing):
        variants.make(blob.pk, "thumb", owner_type="note")
    render = VariantRender.objects.get(blob=blob)
    assert (render.state, render.attempts, render.error_code) == (RenderState.RETRY, 1, "storage_unavailable")
    assert not Variant.objects.filter(blob=blob, name="thumb").exists()

    # Asked meanwhile: 503 with the wait, and nothing rendered again.
    response = staff["a"].get(variant_url(created["id"], "thumb"))
    assert (response.status_code, response.json()["code"]) == (503, "preview_unavailable")
    assert 1 <= int(response["Retry-After"]) <= 5
    # Once the wait is over, the next request tries again (inline here): it fails again, and waits longer.
    VariantRender.objects.update(retry_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        again = staff["a"].get(variant_url(created["id"], "thumb"))
    assert (again.status_code, again.json()["code"]) == (503, "preview_unavailable")
    render.refresh_from_db()
    assert (render.state, render.attempts) == (RenderState.RETRY, 2)
    assert 5 < int(again["Retry-After"]) <= 10


# -- the pipeline and the stores -----------------------------------------------------------


@pytest.mark.all_s3_servers
def test_eager_variants_are_made_by_the_pipeline_on_every_store(
    staff, owners, store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners, width=1200, height=800)
    variant = Variant.objects.get(blob_id=created["blob_id"])
    assert (variant.name, variant.width, variant.height, variant.content_type) == ("preview", 160, 107, "image/jpeg")
    assert variant.storage == store.alias
    with store.open(variant.storage_identifiers) as stream:
        data = b"".join(stream.chunks())
    assert decode(data).size == (160, 107)
    import hashlib

    assert hashlib.sha256(data).hexdigest() == variant.checksum


def test_an_owner_types_eager_variant_is_made_for_its_files_only(
    settings, staff, owners, disk_store, django_capture_on_commit_callbacks
):
    spec = OwnerSpec(owner_type="note", resolver=resolve_note, variants={"xray": {**THUMB, "eager": True}})
    with attachment_registry.override(spec), django_capture_on_commit_callbacks(execute=True):
        note = upload_jpeg(staff["a"], owners)
        patient = upload(staff["a"], "patient", owners.adam.pk, jpeg_bytes(color=(1, 2, 3)), filename="p.jpg").json()
    assert list(Variant.objects.filter(blob_id=note["blob_id"]).values_list("name", flat=True)) == ["xray"]
    assert not Variant.objects.filter(blob_id=patient["blob_id"]).exists()


def test_a_changed_spec_makes_a_new_variant_never_serves_the_stale_one(
    settings, staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners, width=320, height=200)
        first = staff["a"].get(variant_url(created["id"], "thumb"))
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "VARIANTS": {"thumb": {**THUMB, "width": 32, "height": 32}},
    }
    with django_capture_on_commit_callbacks(execute=True):
        second = staff["a"].get(variant_url(created["id"], "thumb"))
    assert decode(body(first)).size == (64, 40)
    assert decode(body(second)).size == (32, 20)


@pytest.mark.all_s3_servers
def test_redirect_mode_sends_a_signed_url_to_the_variant(
    settings, staff, owners, store, store_server, declared, django_capture_on_commit_callbacks
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "DOWNLOAD_MODE": "redirect"}
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
        response = staff["a"].get(variant_url(created["id"], "thumb"))
    if store_server is None:  # local disk cannot sign: proxied
        assert response.status_code == 200
        return
    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    import urllib.request

    with urllib.request.urlopen(response["Location"]) as fetched:
        data = fetched.read()
        assert "inline" in fetched.headers["Content-Disposition"]
    assert decode(data).size == (64, 40)


# -- purge, sweep, verify ------------------------------------------------------------------


def test_purging_a_source_removes_its_variants_rows_then_bytes(
    staff, owners, store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
        staff["a"].get(variant_url(created["id"], "thumb"))
    made = list(Variant.objects.filter(blob_id=created["blob_id"]))
    assert len(made) == 2
    assert staff["a"].delete(detail(created["id"])).status_code == 204
    result = services.purge_orphans(older_than=timedelta(0))
    assert (result.removed, result.variants) == (1, 2)
    assert not Variant.objects.exists() and not VariantRender.objects.exists()
    for variant in made:
        assert not store.exists(variant.storage_identifiers)


def test_the_stray_sweep_keeps_variant_objects_and_verify_checks_them(
    staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
    variant = Variant.objects.get(blob_id=created["blob_id"])
    swept = services.purge_strays(older_than=timedelta(0), allow_young=True)
    assert swept.removed == 0 and disk_store.exists(variant.storage_identifiers)
    assert services.verify_blobs().ok
    disk_store.delete(variant.storage_identifiers)
    result = services.verify_blobs()
    assert [item["id"] for item in result.missing] == [str(variant.pk)]
    assert result.missing[0]["kind"] == "variant" and result.missing[0]["blob"] == created["blob_id"]


# -- races -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not os.environ.get("DJANGO_ATTACHMENTS_TEST_PG"), reason="needs PostgreSQL (tests.pgcluster)")
def test_concurrent_makers_render_once_and_record_one_variant(settings, owners, store, declared):
    """Many threads ask for one lazy variant at once: one render, one row, one object; the rest busy or exists."""
    from django.db import connection

    renders = []
    lock = threading.Lock()
    original = ImageRenderer.render

    def counted(self, stream, spec):
        with lock:
            renders.append(1)
        return original(self, stream, spec)

    for round_ in range(20):
        blob = services.attach(
            io.BytesIO(jpeg_bytes(color=(round_ * 12, 255 - round_ * 12, 7))),
            owner_type="note",
            owner_id=str(owners.alice_note.pk),
            filename=f"r{round_}.jpg",
        ).blob
        renders.clear()
        barrier = threading.Barrier(12)
        outcomes = []

        def make(blob=blob, barrier=barrier, outcomes=outcomes):
            try:
                barrier.wait()
                outcomes.append(variants.make(blob.pk, "thumb", owner_type="note").state)
            finally:
                connection.close()

        ImageRenderer.render = counted
        try:
            threads = [threading.Thread(target=make) for _ in range(12)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            ImageRenderer.render = original
        assert len(renders) == 1, outcomes
        assert set(outcomes) <= {"busy", "exists", "made"} and outcomes.count("made") == 1
        assert Variant.objects.filter(blob=blob, name="thumb").count() == 1
    names = {obj.name for obj in store.list()}
    recorded = {v.storage_identifiers["name"] for v in Variant.objects.all()} | {
        b.storage_identifiers["name"] for b in Blob.objects.all()
    }
    assert names == recorded  # no render left bytes behind


def test_a_render_that_finds_its_source_purged_deletes_its_own_bytes(
    settings, staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
    blob = Blob.objects.get(pk=created["blob_id"])
    declared_thumb = variants.resolve(blob, "thumb", owner_type="note")
    original = ImageRenderer.render

    def purge_meanwhile(self, stream, spec):
        rendered = original(self, stream, spec)
        staff["a"].delete(detail(created["id"]))
        services.purge_orphans(older_than=timedelta(0))
        return rendered

    ImageRenderer.render = purge_meanwhile
    try:
        outcome = variants.make_declared(blob, declared_thumb)
    finally:
        ImageRenderer.render = original
    assert outcome.state == "unavailable"
    assert not Variant.objects.exists()
    assert list(disk_store.list()) == []


def test_render_errors_are_attachment_errors_with_stable_codes():
    assert RenderError.code == "render_failed" and issubclass(RenderError, ValueError)


# -- the command ---------------------------------------------------------------------------------


def run_command(*args):
    import json

    from django.core.management import call_command

    out = io.StringIO()
    try:
        call_command("process_attachments", *args, "--json", stdout=out, stderr=io.StringIO())
    except SystemExit as exc:  # CommandError with a return code, as from the command line
        code = exc.code
    else:
        code = 0
    return code, json.loads(out.getvalue() or "null")


def test_the_command_makes_a_named_variant_where_missing_and_again_when_forced(
    staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        photo = upload_jpeg(staff["a"], owners)
        upload(staff["a"], "note", owners.alice_note.pk, b"words\n" * 40, filename="a.txt")
        broken = upload(staff["a"], "note", owners.alice_note.pk, jpeg_bytes(800, 600)[:700], filename="x.jpg")
    assert broken.status_code == 201
    code, summary = run_command("--variants", "thumb")
    assert code == 0, summary
    assert summary["counts"] == {**summary["counts"], "blobs": 2, "made": 1, "refused": 1}
    assert summary["refused"] == [{"id": broken.json()["blob_id"], "variant": "thumb", "code": "render_failed"}]
    first = Variant.objects.get(blob_id=photo["blob_id"], name="thumb")

    code, again = run_command("--variants", "thumb")
    assert again["counts"] == {**again["counts"], "blobs": 2, "made": 0, "existed": 1, "refused": 1}
    with django_capture_on_commit_callbacks(execute=True):
        code, forced = run_command("--all", "--variants", "thumb")
    assert forced["counts"] == {**forced["counts"], "made": 1, "refused": 1}
    rebuilt = Variant.objects.get(blob_id=photo["blob_id"], name="thumb")
    assert rebuilt.pk == first.pk and rebuilt.storage_identifiers != first.storage_identifiers
    assert disk_store.exists(rebuilt.storage_identifiers)
    # The old object stays for downloads and signed URLs in flight, unreferenced: the stray sweep's, later.
    assert disk_store.exists(first.storage_identifiers)
    swept = services.purge_strays(older_than=timedelta(0), allow_young=True)
    assert swept.removed == 1 and not disk_store.exists(first.storage_identifiers)
    assert disk_store.exists(rebuilt.storage_identifiers)


def test_the_command_refuses_an_unknown_variant_name(owners, disk_store, declared):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="no variant named poster"):
        call_command("process_attachments", "--variants", "poster", stdout=io.StringIO())
    with pytest.raises(CommandError, match="runs alone"):
        call_command("process_attachments", "--variants", "thumb", "--scan", stdout=io.StringIO())


# -- system checks ---------------------------------------------------------------------------------


def test_a_listed_renderer_that_cannot_run_is_w006(settings):
    from django_attachments.checks import check_settings

    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "RENDERERS": [
            {
                "BACKEND": "django_attachments.processing.renderers.VideoRenderer",
                "OPTIONS": {"ffmpeg": "no-such-ffmpeg"},
            }
        ],
        "VARIANTS": {"thumb": THUMB},
    }
    ids = [message.id for message in check_settings()]
    assert "django_attachments.W006" in ids
    assert "django_attachments.W007" in ids  # and no renderer is left to make the declared variant


def test_declared_variants_with_a_working_renderer_raise_no_warning(settings, declared):
    from django_attachments.checks import check_settings

    assert not [m.id for m in check_settings() if m.id in ("django_attachments.W006", "django_attachments.W007")]


# -- every kind of file, on every store ---------------------------------------------------------


def _sample(kind: str, tmp_path) -> tuple[str, bytes]:
    from tests import samples

    if kind == "jpeg":
        return "photo.jpg", samples.encode(samples.quadrants((800, 600)), "JPEG", quality=90)
    if kind == "png":
        return "scan.png", samples.encode(samples.quadrants((600, 800)), "PNG")
    if kind == "pdf":
        return "letter.pdf", samples.pdf(pages=3, size=(595, 842))
    if kind == "dicom":
        import numpy

        ramp = numpy.tile(numpy.linspace(0, 4000, 512, dtype="uint16"), (512, 1))
        return "xray.dcm", samples.dicom(ramp, WindowCenter=2000, WindowWidth=4000)
    if not samples.ffmpeg_path():
        pytest.skip("ffmpeg is not installed")
    path = tmp_path / "clip.mp4"
    samples.halves_video(path)
    return "clip.mp4", path.read_bytes()


@pytest.mark.all_s3_servers
@pytest.mark.parametrize("kind", ["jpeg", "png", "pdf", "dicom", "video"])
def test_each_kind_of_file_gets_its_thumbnail_on_every_store(
    settings, staff, owners, store, kind, tmp_path, django_capture_on_commit_callbacks
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": {**THUMB, "eager": True}}}
    filename, data = _sample(kind, tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff["a"], "note", owners.alice_note.pk, data, filename=filename)
    assert response.status_code == 201, response.content
    created = response.json()
    variant = Variant.objects.get(blob_id=created["blob_id"], name="thumb")  # made by the pipeline
    served = staff["a"].get(variant_url(created["id"], "thumb"))
    assert served.status_code == 200
    image = decode(body(served))
    assert image.format == "WEBP" and max(image.size) == 64 and image.size == (variant.width, variant.height)
    extrema = image.convert("L").getextrema()
    assert extrema[1] - extrema[0] > 40, f"{kind}: a flat picture {extrema}"  # a picture, not a blank
    assert variant.storage == store.alias and store.exists(variant.storage_identifiers)


# -- stale variants ------------------------------------------------------------------------------------


def test_variants_of_a_changed_or_dropped_spec_are_purged_on_request_the_current_ones_kept(
    settings, staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
        assert staff["a"].get(variant_url(created["id"], "thumb")).status_code == 200
        orphan = upload_jpeg(staff["a"], owners, color=(1, 200, 3))
    old = {v.name: v for v in Variant.objects.filter(blob_id=created["blob_id"])}
    assert set(old) == {"thumb", "preview"}
    assert staff["a"].delete(detail(orphan["id"])).status_code == 204  # its variants: the orphan purge's
    # "thumb" changes its size, "preview" is dropped: both old pictures are stale now.
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": {**THUMB, "width": 32}}}
    with django_capture_on_commit_callbacks(execute=True):
        assert staff["a"].get(variant_url(created["id"], "thumb")).status_code == 200
    current = Variant.objects.get(blob_id=created["blob_id"], name="thumb", width=32)

    dry = services.purge_stale_variants(dry_run=True)
    assert (dry.found, dry.removed) == (2, 0) and Variant.objects.count() == 4  # 3 of the photo, 1 of the orphan
    result = services.purge_stale_variants()
    assert (result.found, result.removed, result.bytes) == (2, 2, old["thumb"].size + old["preview"].size)
    left = set(Variant.objects.values_list("pk", flat=True))
    assert current.pk in left and not {v.pk for v in old.values()} & left
    assert Variant.objects.filter(blob_id=orphan["blob_id"]).count() == 1  # an orphan's are not touched here
    for variant in old.values():
        assert not disk_store.exists(variant.storage_identifiers)
    assert disk_store.exists(current.storage_identifiers)
    assert services.purge_stale_variants().found == 0


def test_the_purge_command_removes_stale_variants_when_asked(
    settings, staff, owners, disk_store, declared, django_capture_on_commit_callbacks
):
    from django.core.management import call_command

    with django_capture_on_commit_callbacks(execute=True):
        upload_jpeg(staff["a"], owners)
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {}}
    out = io.StringIO()
    call_command("purge_orphan_attachments", "--stale-variants", "--json", stdout=out)
    import json

    summary = json.loads(out.getvalue())
    assert summary["stale_variants"]["removed"] == 1 and not Variant.objects.exists()


def test_the_stale_purge_leaves_what_it_cannot_judge(
    settings, staff, owners, disk_store, django_capture_on_commit_callbacks
):
    """A machine without a renderer, or a link to an owner type nobody registers now: not stale, kept."""
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": {**THUMB, "eager": True}}}
    with django_capture_on_commit_callbacks(execute=True):
        created = upload_jpeg(staff["a"], owners)
    variant = Variant.objects.get(blob_id=created["blob_id"])
    # The purging process cannot render images (a cron host without Pillow's renderer configured).
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "RENDERERS": []}
    assert services.purge_stale_variants().found == 0
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "RENDERERS": None}
    # Its owner type unregistered for now (its app may come back, with its own variants).
    spec = attachment_registry.get("note")
    attachment_registry.unregister("note")
    try:
        assert services.purge_stale_variants().found == 0
    finally:
        attachment_registry.register(spec)
    assert Variant.objects.filter(pk=variant.pk).exists() and disk_store.exists(variant.storage_identifiers)
    assert services.purge_stale_variants().found == 0  # and current, once all is back
