"""Variants when things go wrong: scans not passed, failures retried later, refusals, deploys, the command.

Each test here was first a failing reproduction of a bug found by review:
a file never scanned rendered once a scanner was configured; failures that
left clients on 202 forever; a refusal message PostgreSQL could not store; a
limit raised that never let a refused file be tried again; a rebuild that
deleted bytes a download was reading; eager variants missing on a
deduplicated link; a plain ``--all`` redrawing every picture.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_attachments import services
from django_attachments.models import AnalysisState, Blob, RenderState, ScanState, Variant, VariantRender
from django_attachments.processing.renderers import ImageRenderer, RenderError
from django_attachments.registry import OwnerSpec, attachment_registry
from django_attachments.services import variants
from tests.apitools import upload
from tests.test_variants import DUMMY_TASKS, THUMB, jpeg_bytes, variant_url
from tests.testapp.owners import resolve_patient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]

DEAD_SCANNER = {
    "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
    "OPTIONS": {"socket": "/nonexistent/clamd.sock", "timeout": 1},
}


@pytest.fixture
def thumb(settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": THUMB}}


def post(staff, owners, data=None, filename="p.jpg"):
    response = upload(staff["a"], "note", owners.alice_note.pk, data or jpeg_bytes(), filename=filename)
    assert response.status_code == 201, response.content
    return response.json()


def counting(monkeypatch):
    calls = []
    original = ImageRenderer.render
    monkeypatch.setattr(ImageRenderer, "render", lambda self, s, spec: calls.append(1) or original(self, s, spec))
    return calls


# -- the scan ------------------------------------------------------------------------------------


def test_a_file_stored_before_the_scanner_came_is_not_parsed_until_scanned(
    settings, staff, owners, disk_store, thumb, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners)
    blob = Blob.objects.get(pk=created["blob_id"])
    assert blob.scan_state == ScanState.NOT_SCANNED
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": DEAD_SCANNER}
    calls = counting(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff["a"].get(variant_url(created["id"], "thumb"))
    assert (response.status_code, response.json()["code"]) == (409, "scan_pending")
    # The backlog run with the scanner down: no verdict, so no renderer and no analyzer reads the file either.
    Blob.objects.filter(pk=blob.pk).update(analysis_state=AnalysisState.PENDING)
    services.processing.process(blob.pk)
    blob.refresh_from_db()
    assert (blob.scan_state, blob.analysis_state) == (ScanState.NOT_SCANNED, AnalysisState.PENDING)
    assert calls == [] and not Variant.objects.exists()
    assert staff["a"].get(f"/api/attachments/{created['id']}/").json()["variants"] == {}


def test_an_unknown_name_is_404_at_once_even_while_the_scan_is_pending(
    settings, staff, owners, disk_store, thumb, django_capture_on_commit_callbacks
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": DEAD_SCANNER}
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners)
    response = staff["a"].get(variant_url(created["id"], "poster"))
    assert (response.status_code, response.json()["code"]) == (404, "variant_not_found")


# -- failures: retried later, never a 202 for ever --------------------------------------------------


def test_a_renderer_crash_on_the_immediate_backend_is_503_with_a_wait_not_a_render_per_poll(
    staff, owners, disk_store, thumb, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners)
    calls = []

    def crash(self, stream, spec):
        calls.append(1)
        raise OSError("encoder error -2 when writing image file")

    monkeypatch.setattr(ImageRenderer, "render", crash)
    with django_capture_on_commit_callbacks(execute=True):
        answers = [staff["a"].get(variant_url(created["id"], "thumb")) for _ in range(4)]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(503, "preview_unavailable")] * 4
    assert all(int(a["Retry-After"]) >= 1 for a in answers)
    assert len(calls) == 1  # the others were told to wait, not rendered again
    assert VariantRender.objects.get().state == RenderState.RETRY


def test_a_worker_that_cannot_make_the_variant_as_declared_postpones_it(
    settings, staff, owners, disk_store, thumb, django_capture_on_commit_callbacks
):
    """The web has the renderer, the worker not (a missing extra, a rolling deploy): a growing wait, no loop."""
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners)
    settings.TASKS = DUMMY_TASKS
    from django_attachments import tasks

    backend = tasks.make_variant.using(backend="default").get_backend()
    backend.clear()
    web = settings.DJANGO_ATTACHMENTS
    assert staff["a"].get(variant_url(created["id"], "thumb")).status_code == 202
    (queued,) = [r for r in backend.results if r.task.func is tasks.make_variant.func]
    settings.DJANGO_ATTACHMENTS = {**web, "RENDERERS": []}  # the worker's settings
    assert tasks.make_variant.call(*queued.args, **queued.kwargs)["state"] == "unknown"
    settings.DJANGO_ATTACHMENTS = web
    render = VariantRender.objects.get()
    assert (render.state, render.attempts, render.error_code) == (RenderState.RETRY, 1, "variant_not_declared_here")
    backend.clear()
    answer = staff["a"].get(variant_url(created["id"], "thumb"))
    assert (answer.status_code, answer.json()["code"]) == (503, "preview_unavailable")
    assert not [r for r in backend.results if r.task.func is tasks.make_variant.func]  # not enqueued again


def test_a_task_backend_that_refuses_the_task_is_503_not_202(
    settings, staff, owners, disk_store, thumb, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners)
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": ["elsewhere"]}}
    answers = [staff["a"].get(variant_url(created["id"], "thumb")) for _ in range(2)]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(503, "preview_unavailable")] * 2
    assert not VariantRender.objects.exists()  # the claim went with the refusal: the next request tries again


def test_a_refusal_message_with_a_nul_is_recorded_without_it(
    staff, owners, disk_store, thumb, monkeypatch, django_capture_on_commit_callbacks
):
    """PostgreSQL refuses a NUL in text: the refusal must still be recorded, not leave the claim held."""
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners)

    def refuse(self, stream, spec):
        raise RenderError("PhotometricInterpretation 'MONO\x00X' is not one I know.")

    monkeypatch.setattr(ImageRenderer, "render", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff["a"].get(variant_url(created["id"], "thumb"))
    assert (response.status_code, response.json()["code"]) == (404, "no_preview")
    render = VariantRender.objects.get()
    assert render.state == RenderState.FAILED and render.error == "PhotometricInterpretation 'MONOX' is not one I know."


def test_a_failure_storing_the_picture_is_retried_later(
    staff, owners, disk_store, thumb, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners)
    blob = Blob.objects.get(pk=created["blob_id"])
    from django_attachments.exceptions import StorageError

    store_class = type(disk_store)

    def failing_save(self, *args, **kwargs):
        raise StorageError("the disk is full")

    monkeypatch.setattr(store_class, "save", failing_save)
    with pytest.raises(StorageError):
        variants.make(blob.pk, "thumb", owner_type="note")
    monkeypatch.undo()
    render = VariantRender.objects.get()
    assert render.state == RenderState.RETRY and render.retry_at > timezone.now()
    VariantRender.objects.update(retry_at=timezone.now() - timedelta(seconds=1))
    assert variants.make(blob.pk, "thumb", owner_type="note").state == "made"
    assert not VariantRender.objects.exists()


# -- what identifies a variant, and what is remembered ------------------------------------------------


def image_renderer(**options):
    return [{"BACKEND": "django_attachments.processing.renderers.ImageRenderer", "OPTIONS": options}]


def test_a_limit_raised_lets_a_refused_file_be_tried_again(
    settings, staff, owners, disk_store, thumb, django_capture_on_commit_callbacks
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "RENDERERS": image_renderer(max_pixels=1000)}
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners, jpeg_bytes(320, 200))
        first = staff["a"].get(variant_url(created["id"], "thumb"))
    assert (first.status_code, first.json()["code"]) == (404, "no_preview")
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "RENDERERS": image_renderer(max_pixels=10**8)}
    with django_capture_on_commit_callbacks(execute=True):
        again = staff["a"].get(variant_url(created["id"], "thumb"))
    assert again.status_code == 200


def test_a_timeout_is_retried_later_not_remembered_as_no_preview(
    settings, staff, owners, disk_store, thumb, tmp_path, django_capture_on_commit_callbacks
):
    from tests import samples

    if not samples.ffmpeg_path():
        pytest.skip("ffmpeg is not installed")
    renderer = {"BACKEND": "django_attachments.processing.renderers.VideoRenderer", "OPTIONS": {"timeout": 0.001}}
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "RENDERERS": [renderer]}
    clip = samples.halves_video(tmp_path / "clip.mp4").read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners, clip, filename="clip.mp4")
        response = staff["a"].get(variant_url(created["id"], "thumb"))
    assert (response.status_code, response.json()["code"]) == (503, "preview_unavailable")
    render = VariantRender.objects.get()
    assert (render.state, render.error_code) == (RenderState.RETRY, "render_timeout")


# -- linking, rebuilding, the command -------------------------------------------------------------------


def test_a_deduplicated_link_gets_its_owner_types_eager_variants(
    staff, owners, disk_store, django_capture_on_commit_callbacks
):
    spec = OwnerSpec(owner_type="patient", resolver=resolve_patient, variants={"xray": {**THUMB, "eager": True}})
    data = jpeg_bytes()
    with attachment_registry.override(spec):
        with django_capture_on_commit_callbacks(execute=True):
            first = post(staff, owners, data)
        assert not Variant.objects.exists()  # notes have no eager variant
        with django_capture_on_commit_callbacks(execute=True):
            second = upload(staff["a"], "patient", owners.alice.pk, data, filename="again.jpg").json()
    assert first["blob_id"] == second["blob_id"]
    assert list(Variant.objects.values_list("name", flat=True)) == ["xray"]


def run(*args):
    out = io.StringIO()
    try:
        call_command("process_attachments", *args, "--json", stdout=out, stderr=io.StringIO())
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue() or "null")


def test_a_plain_all_run_rescans_and_reanalyzes_but_does_not_redraw(
    settings, staff, owners, disk_store, django_capture_on_commit_callbacks
):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": {**THUMB, "eager": True}}}
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners)
    before = Variant.objects.get(blob_id=created["blob_id"]).storage_identifiers
    with django_capture_on_commit_callbacks(execute=True):
        code, summary = run("--all")
    assert code == 0 and summary["counts"]["made"] == 0
    assert Variant.objects.get(blob_id=created["blob_id"]).storage_identifiers == before


def test_an_abbreviated_option_is_refused_not_taken_for_another(owners, disk_store, thumb):
    with pytest.raises(CommandError, match="unrecognized arguments: --force"):
        call_command("process_attachments", "--variants", "thumb", "--force", stdout=io.StringIO())


def test_a_dry_run_purge_counts_the_variants_a_real_one_removes(
    staff, owners, disk_store, thumb, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = post(staff, owners)
        staff["a"].get(variant_url(created["id"], "thumb"))
    assert staff["a"].delete(f"/api/attachments/{created['id']}/").status_code == 204
    dry = services.purge_orphans(older_than=timedelta(0), dry_run=True)
    real = services.purge_orphans(older_than=timedelta(0))
    assert (dry.found, dry.variants, dry.bytes) == (real.found, real.variants, real.bytes) == (1, 1, dry.bytes)


def test_the_schema_describes_the_variant_endpoints_answers():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    (path,) = [p for p in schema["paths"] if p.endswith("/variants/{variant}/")]
    responses = schema["paths"][path]["get"]["responses"]
    assert {"200", "202", "206", "302", "304", "404", "409", "503"} <= set(responses)
    assert "image/*" in responses["200"]["content"]


def test_a_new_file_is_enqueued_once_and_a_link_of_a_stored_one_only_for_its_missing_eager_variants(
    settings, staff, owners, disk_store, django_capture_on_commit_callbacks
):
    """A new blob's pipeline makes its eager variants: its own link enqueues nothing more (it raced the
    pipeline's task before and could enqueue a second one)."""
    settings.TASKS = DUMMY_TASKS
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": {**THUMB, "eager": True}}}
    from django_attachments import tasks

    backend = tasks.process_blob.using(backend="default").get_backend()
    backend.clear()

    def enqueued():
        backend = tasks.process_blob.using(backend="default").get_backend()  # (a settings change makes a new one)
        return [(r.args[0], r.args[1]) for r in backend.results if r.task.func is tasks.process_blob.func]

    data = jpeg_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        first = post(staff, owners, data)
    assert enqueued() == [(first["blob_id"], None)]  # the pipeline, every stage, once
    tasks.process_blob.call(first["blob_id"])
    assert Variant.objects.filter(blob_id=first["blob_id"], name="thumb").exists()
    tasks.process_blob.using(backend="default").get_backend().clear()
    xray = {**THUMB, "width": 48, "eager": True}  # another picture than "thumb" (the same one would be made)
    spec = OwnerSpec(owner_type="patient", resolver=resolve_patient, variants={"xray": xray})
    with attachment_registry.override(spec), django_capture_on_commit_callbacks(execute=True):
        again = upload(staff["a"], "patient", owners.alice.pk, data, filename="again.jpg").json()
    assert again["blob_id"] == first["blob_id"]
    assert enqueued() == [(first["blob_id"], ["variants"])]  # the patient's "xray" is missing
