"""Variants: thumbnails and previews derived from a blob, made once, stored beside it, served like it.

A project names its variants in ``DJANGO_ATTACHMENTS["VARIANTS"]``, and an
owner type adds or overrides names with ``OwnerSpec(variants=...)``. Each is a
:class:`~django_attachments.processing.renderers.VariantSpec` (operation, size,
format, quality; eager or lazy). The renderer that reads the blob's type
(image, PDF, DICOM, video) makes it; the spec's digest with the renderer's
name and version identifies the result, so a changed spec or renderer makes a
new variant, never serves a stale one::

    declared = variants.resolve(blob, "thumb", owner_type="xray")   # VariantNotFound, NoPreview
    variant = variants.find(blob, declared)                         # made already? (a Variant or None)
    outcome = variants.make(blob.pk, "thumb", owner_type="xray")    # render now (a task, the command)

How it stays correct when many ask at once:

- **Made once.** Before rendering, a maker claims the variant: it inserts a
  :class:`~django_attachments.models.VariantRender` row, unique on (source,
  digest), or takes over one whose renderer died (older than
  :data:`RENDER_LEASE`). Whoever does not get the claim renders nothing: a
  request answers 202 and comes back, a task leaves it to the claim's holder.
- **Row after bytes.** The bytes are written under a fresh random name first;
  the :class:`~django_attachments.models.Variant` row is inserted afterwards,
  in a transaction that holds the source blob's row (so the purge, which
  deletes the blob with its variants, waits or goes first) and removes the
  claim. A render that loses anyway (a second maker after a lease ran out)
  deletes its own bytes; a crash in between leaves at most a stray object.
- **Never of an unscanned file.** A blob the scanner has not passed is not
  rendered (:func:`~django_attachments.policy.check_renderable`); the
  pipeline makes its eager variants once the scan passed.
- **A refusal is remembered.** A file the renderer refuses (malformed, a
  decompression bomb, a compressed DICOM with no decoder) records the reason
  on the claim row, and requests get 404 ``no_preview`` with it instead of a
  render each time; ``process_attachments --variants NAME --all`` tries again.
- **A failure is retried, later.** A variant that could not be made now (the
  storage failing, the renderer timing out, a worker without the renderer)
  waits for a retry after a growing delay (state ``retry``); requests get
  503 ``preview_unavailable`` with ``Retry-After`` meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..conf import app_settings
from ..exceptions import NoPreview, PreviewUnavailable, VariantNotFound
from ..models import Attachment, Blob, RenderState, Replica, Variant, VariantRender
from ..policy import check_renderable, parseable_scans
from ..processing.renderers import Renderer, RenderError, RenderTimeout, VariantSpec
from ..registry import attachment_registry
from ..stores import SeekableReader, get_store
from .replicas import locate

logger = logging.getLogger(__name__)

#: How long a claim on making a variant holds without its variant being recorded; past it, the
#: renderer is taken for dead and the next request or task claims the variant again.
RENDER_LEASE = timedelta(minutes=5)

#: The first wait before a variant that could not be made now (state ``retry``) is tried again; each next
#: wait is twice as long, up to :data:`MAX_RETRY_DELAY`.
RETRY_DELAY = timedelta(seconds=5)
MAX_RETRY_DELAY = timedelta(hours=1)


@dataclass(frozen=True)
class Declared:
    """One named variant of one blob: its spec, the renderer that reads the blob's type, and the digest."""

    name: str
    spec: VariantSpec
    renderer: Renderer
    digest: str


@dataclass
class MakeOutcome:
    """What one :func:`make` call did."""

    name: str
    #: "made" (rendered and recorded now), "exists" (made before), "busy" (another maker holds the claim),
    #: "failed" (the renderer refused the file: ``error_code``, ``error``), "unsupported" (no renderer reads
    #: the blob's type), "unavailable" (the blob is gone, or not scanned clean), "unknown" (no such variant).
    state: str
    variant: Variant | None = field(default=None, repr=False)
    error_code: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["variant"] = str(self.variant.pk) if self.variant is not None else None
        return values


# -- what is declared ---------------------------------------------------------------------


def declared_specs(owner_type: str | None = None) -> dict[str, VariantSpec]:
    """The variants of an owner type's files: the global ones, with the owner type's added or overriding.

    An owner type that maps a global name to ``None`` has no variant of that
    name; one nobody registers (any more) has the global ones.
    """
    specs: dict[str, VariantSpec] = dict(app_settings.VARIANTS)
    if owner_type is not None and owner_type in attachment_registry:
        for name, spec in (attachment_registry.get(owner_type).variants or {}).items():
            if spec is None:
                specs.pop(name, None)
            else:
                specs[name] = spec
    return specs


def any_declared() -> bool:
    """Whether any variant is declared, globally or by a registered owner type."""
    return bool(app_settings.VARIANTS) or any(spec.variants for spec in attachment_registry)


def renderer_for(content_type: str) -> Renderer | None:
    """The first configured renderer that reads ``content_type`` and can run here; None when none does."""
    for renderer in app_settings.RENDERERS:
        if renderer.accepts(content_type) and renderer.unavailable_reason() is None:
            return renderer
    return None


def declare(blob: Blob, name: str, spec: VariantSpec) -> Declared:
    """``spec`` for ``blob``: with the renderer of its type and the digest; NoPreview when no renderer reads it."""
    renderer = renderer_for(blob.content_type)
    if renderer is None:
        raise NoPreview(f"No preview is made of {blob.content_type.split(';', 1)[0]} files.")
    return Declared(name=name, spec=spec, renderer=renderer, digest=spec.digest(renderer))


def resolve(blob: Blob, name: str, *, owner_type: str | None = None) -> Declared:
    """The variant ``name`` of ``blob`` as linked to ``owner_type``.

    VariantNotFound when no variant of that name is declared there;
    NoPreview when no renderer reads the blob's type.
    """
    spec = declared_specs(owner_type).get(name)
    if spec is None:
        raise VariantNotFound(f"No variant named {name[:40]!r} is declared for these files.")
    return declare(blob, name, spec)


def eager_declared(blob: Blob) -> list[Declared]:
    """The eager variants of ``blob``: those of the owner types it is linked to, one per digest."""
    if not any_declared():
        return []  # no variants anywhere: no query
    owner_types = sorted(set(Attachment.objects.filter(blob=blob).values_list("owner_type", flat=True)))
    found: dict[str, Declared] = {}
    for owner_type in owner_types:
        for name, spec in sorted(declared_specs(owner_type).items()):
            if not spec.eager:
                continue
            try:
                declared = declare(blob, name, spec)
            except NoPreview:
                return []  # no renderer reads the type: no variant at all
            found.setdefault(declared.digest, declared)
    return list(found.values())


def find(blob: Blob, declared: Declared) -> Variant | None:
    """The variant recorded for ``declared``, or None when it is not made (yet)."""
    return Variant.objects.filter(blob=blob, digest=declared.digest).first()


def failure(blob: Blob, declared: Declared) -> VariantRender | None:
    """The recorded refusal of the renderer to make ``declared``, if any."""
    return VariantRender.objects.filter(blob=blob, digest=declared.digest, state=RenderState.FAILED).first()


def postponed(blob: Blob, declared: Declared) -> VariantRender | None:
    """The record of ``declared`` not made for now (state ``retry``) while its ``retry_at`` is to come."""
    return VariantRender.objects.filter(
        blob=blob, digest=declared.digest, state=RenderState.RETRY, retry_at__gt=timezone.now()
    ).first()


def check_not_postponed(blob: Blob, declared: Declared) -> None:
    """PreviewUnavailable (503, with the seconds to wait) while ``declared`` waits for its next try."""
    waiting = postponed(blob, declared)
    if waiting is not None and waiting.retry_at is not None:
        seconds = math.ceil((waiting.retry_at - timezone.now()).total_seconds())
        raise PreviewUnavailable(
            f"The preview could not be made just now ({waiting.error_code or 'unavailable'}); try again later.",
            retry_after=seconds,
        )


# -- asking for a variant (the API's lazy path) ------------------------------------------------


@dataclass
class Requested:
    """What :func:`request` found: the variant, or that it is being made (and whether this call claimed it)."""

    declared: Declared
    variant: Variant | None = None
    #: True when this call claimed the making: the caller enqueues the render task.
    claimed: bool = False


def request(blob: Blob, name: str, *, owner_type: str | None = None) -> Requested:
    """The variant ``name`` of ``blob``, or a claim on making it.

    Raises VariantNotFound (no such name), NoPreview (no renderer, or the
    renderer refused the file before), the scan's BlobUnavailable errors
    (once the name is known to exist: a wrong name is a 404 at once), and
    PreviewUnavailable while a failed attempt waits for its retry.
    When the variant is not made and nobody is making it, the call claims it
    (``claimed``): the caller hands it to a worker
    (:func:`django_attachments.tasks.enqueue_variant`), so that the request
    never renders.
    """
    declared = resolve(blob, name, owner_type=owner_type)
    check_renderable(blob)
    variant = find(blob, declared)
    if variant is not None:
        return Requested(declared, variant)
    refused = failure(blob, declared)
    if refused is not None:
        raise NoPreview(refused.error or "No preview can be made of this file.")
    check_not_postponed(blob, declared)
    token = _claim(blob, declared, str(RenderState.QUEUED))
    if token is None:
        return Requested(declared)
    variant = find(blob, declared)  # recorded (and its claim dropped) since we looked?
    if variant is not None:
        _release(blob, declared, token)
        return Requested(declared, variant)
    return Requested(declared, claimed=True)


# -- making a variant (a task, the pipeline, the command) ---------------------------------------


def make(
    blob_id: UUID | str,
    name: str,
    *,
    owner_type: str | None = None,
    spec: VariantSpec | None = None,
    force: bool = False,
) -> MakeOutcome:
    """Render the variant ``name`` of a blob and record it, unless it is made already or being made.

    ``spec`` gives the spec directly (else it is looked up for
    ``owner_type``). ``force`` renders again a variant made already (its
    new bytes replace the old in its row; the old object is left to the
    stray sweep, so that a download or a signed URL handed out just before
    still finds it) or refused before. Safe to call many times at once:
    one call renders, the others find it made or busy.
    """
    blob = Blob.objects.filter(pk=blob_id).first()
    if blob is None:
        return MakeOutcome(name, "unavailable", error="The blob is gone.")
    try:
        declared = declare(blob, name, spec) if spec is not None else resolve(blob, name, owner_type=owner_type)
    except VariantNotFound as exc:
        return MakeOutcome(name, "unknown", error_code=exc.code, error=str(exc))
    except NoPreview as exc:
        return MakeOutcome(name, "unsupported", error_code=exc.code, error=str(exc))
    return make_declared(blob, declared, force=force)


def make_declared(blob: Blob, declared: Declared, *, force: bool = False) -> MakeOutcome:
    """:func:`make` for a variant already resolved."""
    name = declared.name
    if blob.scan_state not in parseable_scans():
        return MakeOutcome(name, "unavailable", error="The file is not scanned clean.")
    if not force:
        variant = find(blob, declared)
        if variant is not None:
            return MakeOutcome(name, "exists", variant)
    token = _claim(blob, declared, str(RenderState.RENDERING), force=force)
    if token is not None and not force:
        # The claim may come right after another maker recorded the variant and dropped its claim.
        variant = find(blob, declared)
        if variant is not None:
            _release(blob, declared, token)
            return MakeOutcome(name, "exists", variant)
    if token is None:
        refused = failure(blob, declared)
        if refused is not None:
            return MakeOutcome(name, "failed", error_code=refused.error_code, error=refused.error)
        variant = find(blob, declared)
        return MakeOutcome(name, "exists", variant) if variant is not None else MakeOutcome(name, "busy")
    logger.info("Rendering the %r variant of blob %s with %r.", name, blob.pk, declared.renderer)
    try:
        rendered = _render(blob, declared)
        return _record(blob, declared, rendered, force=force)
    except RenderTimeout as exc:  # a busy machine, or a hostile file: tried again later, not remembered
        logger.warning("The %r variant of blob %s timed out: %s", name, blob.pk, exc)
        _postpone(blob, declared, token, exc)
        return MakeOutcome(name, "retry", error_code=exc.code, error=str(exc))
    except RenderError as exc:
        logger.info("No %r variant of blob %s: %s", name, blob.pk, exc)
        _settle_claim(blob, declared, token, state=str(RenderState.FAILED), exc=exc)
        return MakeOutcome(name, "failed", error_code=exc.code, error=str(exc))
    except Exception as exc:
        # The storage failing (reading the file, or storing the picture), the renderer's program missing
        # (RenderUnavailable): no verdict on the file. Recorded to retry after a growing wait, so that
        # polling clients are told when, rather than each setting off a render that fails again.
        _postpone(blob, declared, token, exc)
        raise
    except BaseException:  # a worker stopped: the claim goes, for the next request or run
        _release(blob, declared, token)
        raise


def _render(blob: Blob, declared: Declared) -> Any:
    # Its storage; the row again if a migration moved it meanwhile; else a copy elsewhere.
    store, identifiers = locate(blob)
    stream = SeekableReader.buffered(store, identifiers, blob.size)
    try:
        return declared.renderer.render(stream, declared.spec)
    finally:
        stream.close()


def _record(blob: Blob, declared: Declared, rendered: Any, *, force: bool) -> MakeOutcome:
    """Store the rendered bytes, then record the variant (the row after its bytes), releasing the claim."""
    from .processing import lock_blob

    data: bytes = rendered.data
    checksum = hashlib.sha256(data).hexdigest()
    store = get_store(blob.storage)
    identifiers = store.save(ContentFile(data), size=len(data), checksum=checksum, content_type=rendered.content_type)
    obsolete: dict[str, Any] | None = identifiers  # the bytes to delete once the transaction is over
    outcome: MakeOutcome
    try:
        with transaction.atomic():
            locked = lock_blob(blob.pk)
            if locked is None or locked.scan_state not in parseable_scans():
                # Purged, or found infected, while we rendered: nothing to record.
                VariantRender.objects.filter(blob_id=blob.pk, digest=declared.digest).delete()
                outcome = MakeOutcome(declared.name, "unavailable", error="The blob is gone or not scanned clean.")
            else:
                values = {
                    "name": declared.name,
                    "spec": {
                        **declared.spec.output(),
                        "renderer": declared.renderer.name,
                        "version": declared.renderer.version,
                    },
                    "checksum": checksum,
                    "size": len(data),
                    "content_type": rendered.content_type,
                    "width": rendered.width,
                    "height": rendered.height,
                    "storage": store.alias,
                    "storage_identifiers": identifiers,
                }
                existing = Variant.objects.select_for_update().filter(blob=locked, digest=declared.digest).first()
                if existing is None:
                    variant = Variant.objects.create(blob=locked, digest=declared.digest, **values)
                    obsolete = None
                    outcome = MakeOutcome(declared.name, "made", variant)
                elif force:
                    # Rebuilt: the new bytes replace the old in the row. The old object is not deleted here: a
                    # download that read the row a moment ago, or a signed URL handed out, may still be on its
                    # way to it. Nothing references it now; the stray sweep removes it past its grace period.
                    for key, value in values.items():
                        setattr(existing, key, value)
                    existing.save()
                    # Its copies elsewhere hold the old bytes: dropped (their objects to the stray sweep, as the
                    # old one is), so that the mirror task copies the new ones.
                    Replica.objects.filter(variant=existing).delete()
                    obsolete = None
                    outcome = MakeOutcome(declared.name, "made", existing)
                else:
                    outcome = MakeOutcome(declared.name, "exists", existing)  # another maker was first
                VariantRender.objects.filter(blob=locked, digest=declared.digest).delete()
    except BaseException:
        _delete_quietly(store.alias, identifiers)
        raise
    if obsolete is not None:
        _delete_quietly(store.alias, obsolete)
    return outcome


def _delete_quietly(alias: str, identifiers: dict[str, Any]) -> None:
    """Delete an object no row references; a failure leaves a stray, for the sweep."""
    try:
        get_store(alias).delete(identifiers)
    except Exception:
        logger.exception("Could not delete the variant object %r of storage %r", identifiers.get("name"), alias)


# -- the claim -----------------------------------------------------------------------------------


def _claim(blob: Blob, declared: Declared, state: str, *, force: bool = False) -> UUID | None:
    """Claim the making of ``declared``; the claim's token, or None when someone else holds it.

    The first claim inserts the row (unique on source and digest). A task
    (``state`` rendering) takes over a claim a request queued; anyone takes
    over a claim older than :data:`RENDER_LEASE`; ``force`` takes over a
    recorded refusal.
    """
    now = timezone.now()
    token = uuid.uuid4()
    try:
        with transaction.atomic():
            VariantRender.objects.create(
                blob=blob, digest=declared.digest, name=declared.name, state=state, token=token, claimed_at=now
            )
        return token
    except IntegrityError:
        pass  # claimed already (or the blob is gone: the update below finds nothing either)
    stale = Q(state__in=(RenderState.QUEUED, RenderState.RENDERING), claimed_at__lt=now - RENDER_LEASE)
    stale |= Q(state=RenderState.RETRY, retry_at__lte=now)
    if state == RenderState.RENDERING:
        stale |= Q(state=RenderState.QUEUED)
    if force:
        stale |= Q(state=RenderState.FAILED)
    # A retry keeps its count of attempts (its wait grows); a recorded success or refusal ends it.
    taken = VariantRender.objects.filter(stale, blob=blob, digest=declared.digest).update(
        state=state, token=token, claimed_at=now
    )
    return token if taken else None


def _release(blob: Blob, declared: Declared, token: UUID) -> None:
    VariantRender.objects.filter(blob=blob, digest=declared.digest, token=token).delete()


def _text(value: str, limit: int | None = None) -> str:
    """Text as the database always stores it: no NUL (PostgreSQL refuses one), cut to ``limit``."""
    value = value.replace("\x00", "")
    return value if limit is None else value[:limit]


def _settle_claim(
    blob: Blob, declared: Declared, token: UUID, *, state: str, exc: BaseException, **values: Any
) -> None:
    """Record why the claim ended (a refusal, or a retry) while this maker still holds it.

    A message the database cannot store must not leave the claim held for
    the whole lease: on any error writing it, the claim is dropped instead.
    """
    code = getattr(exc, "code", None) or type(exc).__name__
    try:
        VariantRender.objects.filter(blob=blob, digest=declared.digest, token=token).update(
            state=state, error_code=_text(str(code), 64), error=_text(str(exc)), claimed_at=timezone.now(), **values
        )
    except Exception:
        logger.exception("Could not record why the %r variant of blob %s was not made", declared.name, blob.pk)
        _release(blob, declared, token)


def retry_delay(attempts: int) -> timedelta:
    """The wait before the next try after ``attempts`` failed ones in a row."""
    return min(RETRY_DELAY * (2 ** min(max(0, attempts - 1), 20)), MAX_RETRY_DELAY)


def _postpone(blob: Blob, declared: Declared, token: UUID, exc: BaseException) -> None:
    """The variant could not be made now: state ``retry``, tried again after a growing wait."""
    row = VariantRender.objects.filter(blob=blob, digest=declared.digest, token=token).first()
    attempts = (row.attempts if row is not None else 0) + 1
    _settle_claim(
        blob,
        declared,
        token,
        state=str(RenderState.RETRY),
        exc=exc,
        attempts=attempts,
        retry_at=timezone.now() + retry_delay(attempts),
    )


def postpone_queued(blob_id: Any, digest: str, *, code: str, message: str) -> int:
    """A queued claim its task cannot serve (this worker's settings or renderers differ): retry later, logged.

    The request side sees 503 with the wait, instead of claiming and
    enqueuing it again at once, over and over.
    """
    logger.warning("The variant %s of blob %s could not be made by this worker: %s", digest[:12], blob_id, message)
    rows = VariantRender.objects.filter(blob_id=blob_id, digest=digest, state=RenderState.QUEUED)
    row = rows.first()
    if row is None:
        return 0
    attempts = row.attempts + 1
    return rows.filter(token=row.token).update(
        state=RenderState.RETRY,
        attempts=attempts,
        retry_at=timezone.now() + retry_delay(attempts),
        error_code=_text(code, 64),
        error=_text(message),
        claimed_at=timezone.now(),
    )


def release_queued(blob_id: Any, digest: str) -> int:
    """Drop a queued claim that its task cannot serve (the variant is no longer declared as it was)."""
    return VariantRender.objects.filter(blob_id=blob_id, digest=digest, state=RenderState.QUEUED).delete()[0]


# -- the pipeline's stage, and the purge's part ---------------------------------------------------


def make_eager(blob: Blob, *, force: bool = False) -> list[MakeOutcome]:
    """Make the eager variants of ``blob`` (the pipeline's last stage); what each call did."""
    outcomes = []
    for declared in eager_declared(blob):
        try:
            outcomes.append(make_declared(blob, declared, force=force))
        except Exception as exc:  # the storage failing (recorded on the claim, to retry): the others may still be made
            logger.warning("Could not make the %r variant of blob %s: %s", declared.name, blob.pk, exc)
            code = getattr(exc, "code", None) or type(exc).__name__
            outcomes.append(MakeOutcome(declared.name, "error", error_code=str(code), error=str(exc)))
    return outcomes


def current_digests(blob: Blob) -> set[str] | None:
    """The digests of the variants the owner types ``blob`` is linked to declare now.

    None when this process cannot tell, and nothing may be judged stale: an
    orphan (the orphan purge's), a blob linked to an owner type nobody
    registers now (its app may come back, with its variants), or a type no
    renderer that can run here reads (a machine without ffmpeg or pypdfium2
    must not take every video's or PDF's variants for stale).
    """
    owner_types = sorted(set(Attachment.objects.filter(blob=blob).values_list("owner_type", flat=True)))
    if not owner_types or any(owner_type not in attachment_registry for owner_type in owner_types):
        return None
    renderer = renderer_for(blob.content_type)
    if renderer is None:
        return None
    return {spec.digest(renderer) for owner_type in owner_types for spec in declared_specs(owner_type).values()}


def renderable() -> QuerySet[Blob]:
    """Blobs a configured renderer reads and the scanner has passed: those that may have variants."""
    types = sorted({content_type for renderer in app_settings.RENDERERS for content_type in renderer.content_types})
    return Blob.objects.filter(scan_state__in=parseable_scans(), content_type__in=types)
