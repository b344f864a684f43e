"""The processing pipeline's entry points on Django's Tasks framework: ids in, services called.

``django.tasks`` on Django 6.0+, the ``django-tasks`` backport before it; the
import below is the only difference. The task goes to the backend aliased
``DJANGO_ATTACHMENTS["TASK_BACKEND"]`` in ``settings.TASKS`` (the project's
default backend unless set), on the queue ``TASK_QUEUE``::

    # settings.py: run the pipeline inline, right after each upload commits (the default)
    TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}

    # or on workers: django-tasks-db's database backend, `manage.py db_worker`
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

Each new blob is handed to :data:`process_blob` once its row commits
(:func:`enqueue_new_blob`, a receiver of ``blob_created``); the request never
waits for a worker. The task is idempotent (see
:mod:`django_attachments.services.processing`): a task run twice, or two at
once, leaves the blob as one run would. A scan that could not run is enqueued
again after a growing delay where the backend can defer tasks; elsewhere, and
after a worker died, ``manage.py process_attachments --pending`` finishes the
backlog.

With ``MIRRORS`` set, each new blob is also handed to :data:`mirror_blob`
once it commits, and again once a variant of it is made (by the pipeline or
:data:`make_variant`): the task copies what a mirror lacks, verified. A
mirror that is down never fails the upload: the copy is recorded as failed
and tried again after a growing delay where the backend can defer, up to
``SCAN_MAX_ATTEMPTS`` times; ``process_attachments`` makes the copies still
missing after that, or where a task was lost.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from .conf import app_settings
from .exceptions import NoPreview, VariantNotFound
from .models import Blob
from .policy import parseable_scans
from .services import migrating, mirroring, multipart, processing, variants

try:  # Django 6.0+
    from django.tasks import task  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # Django 4.2-5.2: the backport
    from django_tasks import task  # type: ignore[no-redef,unused-ignore]

logger = logging.getLogger(__name__)


# Declared on the backend and queue the pipeline uses (a project's TASKS need not have a "default"
# alias, nor its default backend take the "default" queue), as they are when this module is first
# imported; enqueue() reads them again on each call, so a settings change (a test's override) is honoured.
@task(backend=app_settings.TASK_BACKEND, queue_name=app_settings.TASK_QUEUE)
def process_blob(blob_id: str, stages: list[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Run the pipeline's stages still due for one blob; the outcome as a dict (the task's result).

    A failed scan with attempts left is enqueued again, deferred, when the
    backend can defer; the outcome's ``retry_in`` says after how long.
    """
    outcome = processing.process(blob_id, stages=processing.STAGES if stages is None else stages, force=force)
    if outcome.retry_in is not None:
        enqueue(blob_id, stages=stages, delay=timedelta(seconds=outcome.retry_in))
    if "made" in outcome.variants.values():
        mirror_new_variant(blob_id)
    return outcome.as_dict()


def enqueue(
    blob_id: Any,
    *,
    stages: Sequence[str] | None = None,
    force: bool = False,
    delay: timedelta | None = None,
) -> Any:
    """Hand one blob to :data:`process_blob` on the configured backend and queue; the TaskResult, or None.

    A ``delay`` is honoured where the backend can defer tasks; elsewhere a
    retry is left to ``process_attachments``. A backend that refuses the task
    is logged and the blob stays as it is (pending), for the command to find:
    the caller -- an upload that has committed -- is never failed by it.
    """
    try:
        configured = _configured(process_blob, blob_id, delay, "retries it")
        if configured is None:
            return None
        return configured.enqueue(str(blob_id), list(stages) if stages is not None else None, force)
    except Exception:
        logger.exception("Could not enqueue the processing of blob %s; process_attachments will.", blob_id)
        return None


def enqueue_eager_variants(sender: Any, attachment: Any, **kwargs: Any) -> None:
    """``attachment_created`` receiver: a link of an existing blob (scanned already) to an owner type with
    eager variants the blob lacks enqueues the variants stage, once the link commits. A new blob's own
    pipeline (``blob_created``) makes them: its link enqueues nothing more."""
    if kwargs.get("new_blob"):
        return
    owner_type = attachment.owner_type

    def check() -> None:
        blob = Blob.objects.filter(pk=attachment.blob_id).first()
        if blob is None or blob.scan_state not in parseable_scans():
            return  # gone, or its scan is still to come (its completion runs the stage)
        if variants.renderer_for(blob.content_type) is None:
            return
        eager = [name for name, spec in variants.declared_specs(owner_type).items() if spec.eager]
        if any(variants.find(blob, variants.resolve(blob, name, owner_type=owner_type)) is None for name in eager):
            enqueue(blob.pk, stages=["variants"])

    if any(spec.eager for spec in variants.declared_specs(owner_type).values()):
        transaction.on_commit(check)


def enqueue_new_blob(sender: Any, blob: Any, **kwargs: Any) -> None:
    """``blob_created`` receiver: enqueue the pipeline for a new blob with a stage due, and its copies to the
    mirrors, if any (sent on commit).

    The pipeline first: on an inline backend, the variants it makes are
    copied with the blob by the one task their making enqueues, and the
    blob's own task then finds nothing due; on workers, both wait in the queue
    at once, and the copy does not wait for the scan.
    """
    if (
        blob.scan_state in processing.SCAN_DUE
        or blob.analysis_state == processing.AnalysisState.PENDING
        or variants.eager_declared(blob)
    ):
        enqueue(blob.pk)
    if mirroring.enabled():
        enqueue_mirror(blob.pk)


@task(backend=app_settings.TASK_BACKEND, queue_name=app_settings.TASK_QUEUE)
def make_variant(
    blob_id: str, name: str, owner_type: str | None = None, digest: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Make one variant of one blob (a lazy variant a request asked for); the outcome as a dict.

    ``digest`` is the one the request claimed. When this process does not
    declare the variant so (its settings or installed renderers differ from
    the web's: a rolling deploy, a missing extra), nothing is made and the
    claim waits for a retry after a growing delay (logged), rather than being
    claimed and enqueued again by the next request at once, over and over.
    """
    if digest is not None:
        blob = Blob.objects.filter(pk=blob_id).first()
        if blob is None:
            return variants.MakeOutcome(name, "unavailable", error="The blob is gone.").as_dict()
        try:
            current = variants.resolve(blob, name, owner_type=owner_type).digest
        except (VariantNotFound, NoPreview) as exc:
            current, why = None, str(exc)
        else:
            why = "its spec or renderer differs here from where it was asked for"
        if current != digest:
            variants.postpone_queued(blob_id, digest, code="variant_not_declared_here", message=why)
            return variants.MakeOutcome(name, "unknown", error=why).as_dict()
    made = variants.make(blob_id, name, owner_type=owner_type, force=force)
    if made.state == "made":
        mirror_new_variant(blob_id)
    return made.as_dict()


def enqueue_variant(
    blob_id: Any, name: str, *, owner_type: str | None, digest: str | None = None, force: bool = False
) -> Any:
    """Hand one variant to :data:`make_variant`; the TaskResult, or None when the backend refused it.

    A refusal drops the request's claim (logged); the request answers 503,
    and the next one claims and enqueues it again.
    """
    try:
        configured = make_variant.using(backend=app_settings.TASK_BACKEND, queue_name=app_settings.TASK_QUEUE)
        return configured.enqueue(str(blob_id), name, owner_type, digest, force)
    except Exception:
        logger.exception("Could not enqueue the %r variant of blob %s.", name, blob_id)
        if digest is not None:
            variants.release_queued(blob_id, digest)
        return None


@task(backend=app_settings.TASK_BACKEND, queue_name=app_settings.TASK_QUEUE)
def verify_upload(upload_id: str) -> dict[str, Any]:
    """Join a multipart direct upload's parts, read the object back and record it; the outcome as a dict.

    Safe twice or at once (the first run claims the ticket). After a storage
    failure the claim is released; the client's next completion, or
    ``process_attachments --pending``, announces it again.
    """
    return multipart.verify_upload(upload_id).as_dict()


def enqueue_upload_verification(sender: Any, upload: Any, **kwargs: Any) -> Any:
    """``upload_parts_received`` receiver (sent on commit): hand the ticket to :data:`verify_upload`.

    A backend that refuses the task is logged; the ticket stays ``verifying``
    and the client's next completion (or the command) announces it again once
    its lease has passed.
    """
    try:
        configured = verify_upload.using(backend=app_settings.TASK_BACKEND, queue_name=app_settings.TASK_QUEUE)
        return configured.enqueue(str(upload.pk))
    except Exception:
        logger.exception("Could not enqueue the verification of direct upload %s.", upload.pk)
        return None


@task(backend=app_settings.TASK_BACKEND, queue_name=app_settings.TASK_QUEUE)
def mirror_blob(blob_id: str) -> dict[str, Any]:
    """Copy one blob and its variants to each mirror (``MIRRORS``) that lacks a copy; the outcome as a dict.

    Each copy is verified, then recorded (:func:`.migrating.mirror_blob`).
    One that failed is recorded as failed and enqueued again, deferred, after
    its ``retry_at`` (:func:`.migrating.mirror_retry_delay`) while it has had
    fewer than ``SCAN_MAX_ATTEMPTS`` attempts and the backend can defer; past
    that, or elsewhere, ``process_attachments`` tries it again. A task with
    nothing due (a copy made by another run, a retry enqueued twice) copies
    nothing, and does not spend a failed copy's attempt before its time.
    """
    if not mirroring.wanted(blob_id):
        return {"blob": str(blob_id), "due": False, "copied": 0, "failed": [], "retry_in": None}
    result = migrating.mirror_blob(blob_id, retry_early=False)
    retry = mirroring.next_retry(blob_id) if result.failed else None
    if retry is not None:
        enqueue_mirror(blob_id, delay=retry)
    return {
        "blob": str(blob_id),
        "due": True,
        **result.as_dict(),
        "retry_in": None if retry is None else retry.total_seconds(),
    }


def enqueue_mirror(blob_id: Any, *, delay: timedelta | None = None) -> Any:
    """Hand one blob to :data:`mirror_blob` on the configured backend and queue; the TaskResult, or None.

    As :func:`enqueue`: a ``delay`` is honoured where the backend can defer
    tasks, else the retry is left to ``process_attachments``; a backend that
    refuses the task is logged, and the copy is left to the command too (the
    upload that committed never fails for it).
    """
    try:
        configured = _configured(mirror_blob, blob_id, delay, "copies it")
        return None if configured is None else configured.enqueue(str(blob_id))
    except Exception:
        logger.exception("Could not enqueue the mirror copies of blob %s; process_attachments will make them.", blob_id)
        return None


def _configured(task_: Any, blob_id: Any, delay: timedelta | None, fallback: str) -> Any:
    """``task_`` on the configured backend and queue, deferred by ``delay``; None where the backend cannot
    defer (logged: ``process_attachments`` then does what the task would, ``fallback``)."""
    configured = task_.using(backend=app_settings.TASK_BACKEND, queue_name=app_settings.TASK_QUEUE)
    if delay is None:
        return configured
    if not configured.get_backend().supports_defer:
        logger.info("Blob %s: the task backend cannot defer; process_attachments %s.", blob_id, fallback)
        return None
    return configured.using(run_after=timezone.now() + delay)


def mirror_new_variant(blob_id: Any) -> None:
    """A variant of ``blob_id`` was made: enqueue its copies to the mirrors, if any, once its row commits."""
    if mirroring.enabled():
        transaction.on_commit(functools.partial(enqueue_mirror, blob_id))
