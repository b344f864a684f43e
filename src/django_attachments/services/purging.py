"""Removing what nothing needs any more, safely while uploads and links go on.

- **Orphans**: blobs with no attachment, created more than the grace period
  ago. Each batch locks its candidate rows (``SELECT … FOR UPDATE SKIP LOCKED``
  on PostgreSQL, so two purges share the work instead of colliding),
  re-checks "no attachments" under the lock, deletes the rows and commits;
  only then are the bytes deleted, in one batched call per storage. ``attach``
  and ``link`` lock the blob they reuse, so a link either wins (the blob is no
  orphan any more) or waits and finds the blob gone. A failed byte delete
  leaves a stray object, never a row without bytes.
- **Strays**: objects under the key prefix that no blob references, older than
  the grace period: what a crash between writing bytes and committing a row
  leaves. Found by listing each storage and checking the names in batches.
  A fresh upload's object is younger than the grace period, and each batch is
  checked against the table right before it is deleted.
- **Direct uploads**: tickets still pending after they expired lose their row,
  then their object (unless a blob references it); completed and failed
  tickets are kept for the grace period, so that a repeated completion is
  answered from the record, then removed. A pending ticket's object is not
  stray, whatever its age.
  An expired multipart upload's parts are dropped with it (``AbortMultipartUpload``),
  and so is one still ``verifying`` long after its expiry whose task is lost.
- **Incomplete multipart uploads** no ticket knows, older than the grace period
  (at least :data:`STRAY_MIN_AGE`): what a crash between beginning one and
  recording its ticket leaves. On S3 they cost storage and appear in no
  listing of objects.
- **Dangling links**: attachments whose owner no longer resolves (deleted by
  a bulk query or a cascade that sent no signal). Reported; removed on request.

Every function returns a :class:`PurgeResult`, and with ``dry_run=True``
reports what a real run would remove and changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, ForeignObjectRel, Lookup, ProtectedError, Q, signals
from django.utils import timezone as django_timezone

from ..conf import app_settings
from ..exceptions import AttachmentsImproperlyConfigured, StorageError, UnsafePurge
from ..models import Attachment, Blob, DirectUpload, Replica, Variant, VariantRender
from ..registry import OwnerSpec, attachment_registry
from ..signals import blob_purged
from ..stores import StoredObject, get_store
from ..stores.storage_api import multipart_prefix
from .attaching import unlink_all_for_owner
from .holders import referenced
from .multipart import VERIFY_LEASE

logger = logging.getLogger(__name__)

#: Called once per item found (removed, or to remove on a dry run), for progress and verbose output.
OnItem = Callable[[str, dict[str, Any]], None]


@dataclass
class PurgeResult:
    """What one kind of purge found and removed."""

    kind: str
    dry_run: bool = False
    found: int = 0
    removed: int = 0
    bytes: int = 0
    failures: list[str] = field(default_factory=list)
    #: Orphans only: the variants (thumbnails, previews) removed with their blobs; their bytes are in ``bytes``.
    variants: int = 0
    #: Orphans and stale variants: the copies in other storages (mirrors', or kept by a migration) removed
    #: with them; their bytes are not in ``bytes``.
    copies: int = 0
    #: Dangling check only: links of owner types nobody registers (never removed).
    unregistered: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The youngest objects the stray sweep deletes unless told otherwise: an
#: upload in flight writes its bytes before its row, and must not be taken for
#: a stray. Enforced here, for every caller (the command, a task, a shell).
STRAY_MIN_AGE = timedelta(hours=1)
#: How long after it began a multipart upload no ticket knows is kept while parts still arrive (an API
#: upload streamed to the storage); past it, it is aborted like any other. S3 lifecycle rules that abort
#: incomplete uploads count from the start too (docs/recipes/s3.md).
ARRIVING_UPLOAD_MAX_AGE = timedelta(days=2)
#: The storage alias of static files (Django's), never swept.
STATICFILES = "staticfiles"


def _grace(older_than: timedelta | None) -> timedelta:
    return app_settings.ORPHAN_GRACE_PERIOD if older_than is None else older_than


def _cutoff(older_than: timedelta | None) -> datetime:
    return django_timezone.now() - _grace(older_than)


def check_stray_grace(older_than: timedelta | None = None, *, allow_young: bool = False) -> None:
    """UnsafePurge when the stray sweep's grace period (``older_than`` or the setting) is below the floor.

    ``allow_young`` lifts the floor, for when no upload can be in flight
    (uploads stopped, a test, a maintenance window).
    """
    grace = _grace(older_than)
    if grace < STRAY_MIN_AGE and not allow_young:
        raise UnsafePurge(
            f"Sweeping strays with a grace period of {grace} could delete the bytes of uploads still in flight; "
            f"use at least {STRAY_MIN_AGE}, or allow young strays with uploads stopped."
        )


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- orphans -------------------------------------------------------------------


def purge_orphans(
    *,
    older_than: timedelta | None = None,
    dry_run: bool = False,
    batch_size: int = 500,
    limit: int | None = None,
    blob_ids: Iterable[Any] | None = None,
    on_item: OnItem | None = None,
) -> PurgeResult:
    """Remove blobs without attachments created before the grace period (``older_than`` overrides it).

    ``blob_ids`` narrows the purge to those blobs (the admin action).

    Batches of ``batch_size`` blobs, oldest first: each batch is locked
    (``SKIP LOCKED`` where the database has it), checked again for links
    under the lock, and its rows deleted (blobs, variants, renders, copies)
    in one transaction; then its bytes go, one batched call per storage.
    The next batch starts after the last blob of this one, on the
    ``(created_at, id)`` index, rather than at the start again.
    """
    result = PurgeResult("orphans", dry_run=dry_run)
    candidates = Blob.objects.orphans().filter(created_at__lt=_cutoff(older_than)).order_by("created_at", "pk")
    if blob_ids is not None:
        candidates = candidates.filter(pk__in=list(blob_ids))
    if dry_run:
        for blob in (candidates[:limit] if limit else candidates).iterator(chunk_size=batch_size):
            _count(result, blob, on_item)
            for size in Variant.objects.filter(blob=blob).values_list("size", flat=True):
                result.variants += 1  # what a real run would remove with it
                result.bytes += size
        return result
    lock = connection.features.has_select_for_update_skip_locked
    fast = _rows_go_by_plain_deletes()
    if not blob_purged.has_listeners(Blob):
        # Nobody is handed the purged rows: read only what the purge and on_item use (the JSON metadata
        # and the dates of every row cost more to read than the rest of the purge's work on them).
        candidates = candidates.only(*_PURGE_FIELDS)
    after: tuple[datetime, Any] | None = None
    taken = 0
    # A batch's objects are deleted in a thread while the next batch's rows go; what the deletes did is
    # recorded (counts, failures, blob_purged, on_item) here, in this thread, batch after batch.
    pending: _Pending | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="attachments-purge") as deleting:
        try:
            while limit is None or taken < limit:
                size = batch_size if limit is None else min(batch_size, limit - taken)
                page = candidates
                if after is not None:
                    page = page.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], pk__gt=after[1]))
                try:
                    with transaction.atomic():
                        batch = list((page.select_for_update(skip_locked=True) if lock else page)[:size])
                        if not batch:
                            break
                        # Re-check under the lock: a link committed since the query is kept.
                        ids = [blob.pk for blob in batch]
                        linked = set(
                            Attachment.objects.filter(_among("blob_id", ids)).values_list("blob_id", flat=True)
                        )
                        doomed = [blob for blob in batch if blob.pk not in linked]
                        ids = [blob.pk for blob in doomed]
                        # Their variants go with them, rows first (a render recording one now waits for the
                        # blob's lock, then finds the blob gone and deletes its own bytes).
                        derived = list(Variant.objects.filter(_among("blob_id", ids))) if ids else []
                        # Their copies in other storages too (read under the blobs' locks, which a copy is
                        # recorded under).
                        copies = list(Replica.objects.held().filter(_among("blob_id", ids))) if ids else []
                        if fast:
                            _delete_rows(ids)
                        else:
                            Variant.objects.filter(pk__in=[variant.pk for variant in derived]).delete()
                            Blob.objects.filter(pk__in=[blob.pk for blob in doomed]).delete()
                except (ProtectedError, _LinkedMeanwhile):
                    continue  # a link slipped in on a database without row locks: its blob is no orphan; go again
                after, taken = (batch[-1].created_at, batch[-1].pk), taken + len(doomed)
                # This batch's objects are handed over first: if recording the last one fails, they go all the
                # same (the thread deletes them one batch after the other, in order).
                settled, pending = pending, _Pending(deleting, doomed, derived, copies)
                if settled is not None:
                    settled.record(result, on_item)
        except BaseException:
            if pending is not None and not pending.recorded:  # its rows are gone: its objects go too, counted
                try:
                    pending.record(result, on_item)
                except Exception:
                    logger.exception("Could not record the objects deleted for the last batch of orphans.")
            raise
        if pending is not None:
            pending.record(result, on_item)
    return result


class _Pending:
    """One batch of purged orphans whose objects are being deleted in the purge's thread (store calls only:
    no database, no signal); :meth:`record` waits for them and counts, reports and signals in the caller's."""

    def __init__(
        self, executor: ThreadPoolExecutor, blobs: list[Blob], variants: list[Variant], copies: list[Replica]
    ) -> None:
        self.blobs, self.variants, self.copies = blobs, variants, copies
        groups = [
            (what, alias, [row.storage_identifiers for row in group])
            for what, rows in (("purged blobs", blobs), ("variants", variants), ("copies", copies))
            for alias, group in _by_storage(rows).items()
        ]
        self.future: Future[dict[tuple[str, str], tuple[set[str], list[str]]]] = executor.submit(
            lambda: {(what, alias): _try_delete(alias, identifiers, what) for what, alias, identifiers in groups}
        )
        self.recorded = False

    def record(self, result: PurgeResult, on_item: OnItem | None) -> None:
        self.recorded = True  # once, even if a receiver fails
        outcome = self.future.result()

        def deleted(alias: str, identifiers: list[dict], what: str) -> set[str]:
            failed, lines = outcome[(what, alias)]
            result.failures += lines
            return failed

        _delete_bytes(self.blobs, result, on_item, deleter=deleted)
        _delete_variant_bytes(self.variants, result, deleter=deleted)
        _delete_copies(self.copies, result, deleter=deleted)


#: The blob fields the orphan purge reads (its ordering, deleting the bytes, counting, ``on_item``).
_PURGE_FIELDS = ("id", "created_at", "size", "filename", "storage", "storage_identifiers")


class _LinkedMeanwhile(Exception):
    """A blob of the batch got an attachment between the re-check and its delete (no row locks): roll back."""


#: What points at a blob, or at a blob's variant: the rows the orphan purge deletes with the blob.
_PURGED_WITH_BLOBS = {
    (Attachment, "blob"),
    (Variant, "blob"),
    (VariantRender, "blob"),
    (Replica, "blob"),
    (Replica, "variant"),
}


class _AnyOf(Lookup):
    """``column = ANY(%s::uuid[])``: a batch's UUID keys as one array literal (PostgreSQL).

    One parameter instead of a thousand placeholders, and one string to
    quote instead of a thousand values to adapt: building, sending and
    parsing the keys cost more than running the statement.
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        literal = "{" + ",".join(str(uuid.UUID(str(key))) for key in self.rhs) + "}"
        return f"{lhs} = ANY(%s::uuid[])", (*lhs_params, literal)


def _among(column: str, ids: list[Any]) -> Q | _AnyOf:
    """``column IN ids`` for a batch's UUID keys: on PostgreSQL ``column = ANY(%s::uuid[])`` (:class:`_AnyOf`)."""
    if connection.vendor == "postgresql":
        return _AnyOf(F(column), ids)
    return Q(**{f"{column}__in": ids})


def _rows_go_by_plain_deletes() -> bool:
    """Whether the orphan purge may delete rows with plain ``DELETE`` statements, without Django's collector.

    The collector fetches every row again (for the attachments' ``PROTECT``
    and the cascades) and deletes in statements of 100 ids: most of a large
    purge's database time. It is only needed when something else points at
    a blob or a variant (a project's own foreign key), or listens to their
    deletion (``pre_delete``/``post_delete`` receivers): then it is used.
    """
    models = (Blob, Variant, VariantRender, Replica)
    if any(signals.pre_delete.has_listeners(model) or signals.post_delete.has_listeners(model) for model in models):
        return False
    # Every relation pointing at them, hidden ones too (a foreign key with related_name="+", a many-to-many's
    # table), as Django's collector sees them.
    pointing = {
        (relation.related_model, relation.field.name)
        for model in models
        for relation in model._meta.get_fields(include_hidden=True)
        if isinstance(relation, ForeignObjectRel)
    }
    return pointing <= _PURGED_WITH_BLOBS


def _delete_rows(ids: list[Any]) -> None:
    """Delete these blobs' rows and what points at them, one statement a table (inside the batch's transaction).

    A blob linked since the re-check (on a database without row locks) is
    not deleted (``NOT EXISTS`` in the same statement), and the batch rolls
    back to be taken again.
    """
    using = connection.alias
    if not ids:
        return
    # Children first: the database checks the foreign keys at the latest at the commit.
    Replica.objects.filter(_among("blob_id", ids))._raw_delete(using)
    VariantRender.objects.filter(_among("blob_id", ids))._raw_delete(using)
    Variant.objects.filter(_among("blob_id", ids))._raw_delete(using)
    deleted = Blob.objects.orphans().filter(_among("id", ids))._raw_delete(using)
    if deleted != len(ids):
        raise _LinkedMeanwhile


#: Deletes objects of one storage, ``(alias, identifiers, what)``; the names it could not delete.
Deleter = Callable[[str, list[dict], str], set[str]]


def _deleting_now(result: PurgeResult) -> Deleter:
    return lambda alias, identifiers, what: _delete_objects(alias, identifiers, result, what)


def _delete_copies(copies: list[Replica], result: PurgeResult, *, deleter: Deleter | None = None) -> None:
    """Their rows are gone with their blobs' (or variants'); delete the copies' bytes, batched per storage."""
    delete = deleter or _deleting_now(result)
    for alias, group in _by_storage(copies).items():
        failed = delete(alias, [copy.storage_identifiers for copy in group], "copies")
        result.copies += sum(1 for copy in group if copy.storage_identifiers.get("name") not in failed)


def _delete_variant_bytes(variants: list[Variant], result: PurgeResult, *, deleter: Deleter | None = None) -> None:
    """The variants' rows are gone with their sources'; delete their bytes, batched per storage."""
    delete = deleter or _deleting_now(result)
    for alias, group in _by_storage(variants).items():
        failed = delete(alias, [variant.storage_identifiers for variant in group], "variants")
        for variant in group:
            if variant.storage_identifiers.get("name") not in failed:
                result.variants += 1
                result.bytes += variant.size


def _count(result: PurgeResult, blob: Blob, on_item: OnItem | None) -> None:
    result.found += 1
    result.bytes += blob.size
    if on_item:
        on_item("orphan", {"id": str(blob.pk), "size": blob.size, "filename": blob.filename, "storage": blob.storage})


def _delete_bytes(
    blobs: list[Blob], result: PurgeResult, on_item: OnItem | None, *, deleter: Deleter | None = None
) -> None:
    """The rows are gone and committed; delete the bytes, one batched call per storage."""
    delete = deleter or _deleting_now(result)
    for alias, group in _by_storage(blobs).items():
        failed = delete(alias, [blob.storage_identifiers for blob in group], "purged blobs")
        for blob in group:
            deleted = blob.storage_identifiers.get("name") not in failed
            _count(result, blob, on_item)
            if deleted:
                result.removed += 1
            else:
                result.bytes -= blob.size
            blob_purged.send(sender=Blob, blob=blob, bytes_deleted=deleted)


def _by_storage(rows: list[Any]) -> dict[str, list[Any]]:
    """Blobs or tickets grouped by their storage alias."""
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(row.storage, []).append(row)
    return groups


def _delete_objects(alias: str, identifiers_list: list[dict], result: PurgeResult, what: str) -> set[str]:
    """Delete objects of one storage in a batched call; the names of those that could not be deleted.

    Failures are added to ``result``; objects left behind are stray, for the next ``--stray`` run.
    """
    failed, lines = _try_delete(alias, identifiers_list, what)
    result.failures += lines
    return failed


def _try_delete(alias: str, identifiers_list: list[dict], what: str) -> tuple[set[str], list[str]]:
    """Delete objects of one storage in a batched call: the names not deleted, and the failures to report."""
    if not identifiers_list:
        return set(), []
    try:
        failures = get_store(alias).delete_many(identifiers_list)
    except Exception as exc:  # the whole storage refused
        logger.exception("Could not delete the objects of %d %s from storage %r", len(identifiers_list), what, alias)
        return {str(identifiers.get("name")) for identifiers in identifiers_list}, [f"storage {alias!r}: {exc}"]
    return (
        {failure.name for failure in failures},
        [f"storage {alias!r}: could not delete {f.name}: {f.error}" for f in failures],
    )


# -- strays --------------------------------------------------------------------


def purge_strays(
    *,
    older_than: timedelta | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
    limit: int | None = None,
    on_item: OnItem | None = None,
    allow_young: bool = False,
) -> PurgeResult:
    """Delete objects under the key prefix that nothing holds, older than the grace period.

    Every storage alias of ``STORAGES`` is swept (under ``KEY_PREFIX``), but
    ``staticfiles``, and any other alias that blobs or their copies use. A
    grace period below :data:`STRAY_MIN_AGE` raises UnsafePurge unless
    ``allow_young`` (see :func:`check_stray_grace`); a dry run deletes
    nothing, so it may look at younger objects.
    """
    if not dry_run:
        check_stray_grace(older_than, allow_young=allow_young)
    result = PurgeResult("strays", dry_run=dry_run)
    cutoff = _cutoff(older_than)
    for alias, store in _stores_of(Blob, result):
        # Parts waiting to be joined are no blob's: the multipart purge judges them, by their ticket.
        parts = multipart_prefix()
        old_enough = (obj for obj in store.list() if _aware(obj.modified) < cutoff and not obj.name.startswith(parts))
        try:
            for batch in _batches(old_enough, batch_size):
                if limit is not None:
                    batch = batch[: limit - result.found]
                _sweep(store, batch, result, dry_run, on_item)
                if limit is not None and result.found >= limit:
                    return result
        except StorageError as exc:  # listing failed: nothing more is deleted from this storage
            result.failures.append(f"storage {alias!r}: {exc}")
    return result


def _stores_of(model: Any, result: PurgeResult) -> Iterator[tuple[str, Any]]:
    """Each storage alias ``model``'s rows use, and the configured one, with its store; a misconfigured
    alias is a failure of ``result``, and skipped."""
    aliases = set(model.objects.values_list("storage", flat=True).distinct()) | {app_settings.STORAGE}
    if model is Blob:
        # Every storage that holds copies of them or is to, and every other one configured: a migration
        # killed before its first switch, or that could not delete an old object, leaves objects in a
        # storage no row names (only under KEY_PREFIX, which is the app's own).
        aliases |= set(Replica.objects.values_list("storage", flat=True).distinct()) | set(app_settings.MIRRORS)
        aliases |= {alias for alias in getattr(settings, "STORAGES", {}) or {} if alias != STATICFILES}
    for alias in sorted(aliases):
        try:
            yield alias, get_store(alias)
        except AttachmentsImproperlyConfigured as exc:
            result.failures.append(str(exc))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _sweep(store: Any, batch: list[StoredObject], result: PurgeResult, dry_run: bool, on_item: OnItem | None) -> None:
    names = [obj.name for obj in batch]
    held = referenced(store.alias, names)
    strays = [obj for obj in batch if obj.name not in held]
    failed: set[str] = set()
    if strays and not dry_run:
        failures = store.delete_many([store.identifiers_for(obj.name) for obj in strays])
        failed = {failure.name for failure in failures}
        result.failures += [f"storage {store.alias!r}: could not delete {f.name}: {f.error}" for f in failures]
    for obj in strays:
        result.found += 1
        if obj.name in failed:
            continue
        result.bytes += obj.size
        result.removed += 0 if dry_run else 1
        if on_item:
            on_item("stray", {"storage": store.alias, "name": obj.name, "size": obj.size})


# -- direct uploads --------------------------------------------------------------


def purge_uploads(
    *,
    older_than: timedelta | None = None,
    dry_run: bool = False,
    batch_size: int = 500,
    limit: int | None = None,
    on_item: OnItem | None = None,
) -> PurgeResult:
    """Remove expired pending direct uploads with their objects, and closed ones past the grace period.

    ``older_than`` overrides the grace period for closed tickets; a pending
    ticket goes as soon as it expired (it can no longer be completed).
    """
    result = PurgeResult("uploads", dry_run=dry_run)
    now = django_timezone.now()
    # Pending past expiry; or verifying past expiry with no live claim (its task is lost: nothing will finish it).
    stale = Q(status=DirectUpload.PENDING) | Q(status=DirectUpload.VERIFYING, claimed_at__lt=now - VERIFY_LEASE)
    expired = DirectUpload.objects.filter(stale, expires_at__lt=now).order_by("expires_at", "pk")
    closed = DirectUpload.objects.filter(status__in=[DirectUpload.COMPLETED, DirectUpload.FAILED]).filter(
        completed_at__lt=_cutoff(older_than)
    )
    if dry_run:
        for upload in (expired[:limit] if limit else expired).iterator(chunk_size=batch_size):
            _count_upload(result, upload, on_item)
        closed_count = closed.count()
        result.found += closed_count if limit is None else min(closed_count, max(0, limit - result.found))
        return result
    lock = connection.features.has_select_for_update_skip_locked
    while limit is None or result.found < limit:
        size = batch_size if limit is None else min(batch_size, limit - result.found)
        with transaction.atomic():
            # A completion in progress holds its ticket's lock: skipped, not waited for.
            batch = list((expired.select_for_update(skip_locked=True) if lock else expired)[:size])
            if not batch:
                break
            # Deleted only if still pending and expired: a completion committed meanwhile keeps its ticket.
            DirectUpload.objects.filter(stale, pk__in=[upload.pk for upload in batch], expires_at__lt=now).delete()
        _delete_upload_objects(batch, result, on_item)
    closed_ids = list(closed.values_list("pk", flat=True)[: None if limit is None else max(0, limit - result.found)])
    for ids in _batches(closed_ids, batch_size):
        deleted, _ = DirectUpload.objects.filter(pk__in=ids).delete()
        result.found += deleted
        result.removed += deleted
    return result


def _count_upload(result: PurgeResult, upload: DirectUpload, on_item: OnItem | None) -> None:
    result.found += 1
    if on_item:
        on_item(
            "upload",
            {"id": str(upload.pk), "size": upload.size, "filename": upload.filename, "storage": upload.storage},
        )


def _delete_upload_objects(uploads: list[DirectUpload], result: PurgeResult, on_item: OnItem | None) -> None:
    """The tickets are gone; delete their objects, except any a blob holds (never bytes under a row)."""
    for alias, group in _by_storage(uploads).items():
        held = referenced(alias, [upload.storage_identifiers.get("name") for upload in group])
        doomed = [upload.storage_identifiers for upload in group if upload.storage_identifiers.get("name") not in held]
        failed = _delete_objects(alias, doomed, result, "expired uploads")
        store = get_store(alias)
        for upload in group:
            if upload.is_multipart:
                try:
                    store.abort_multipart(upload.storage_identifiers, upload.multipart_id)
                except StorageError as exc:  # no ticket knows it now: the next run finds it as incomplete
                    result.failures.append(f"storage {alias!r}: parts of upload {upload.pk}: {exc}")
        for upload in group:
            _count_upload(result, upload, on_item)
            if upload.storage_identifiers.get("name") not in failed:
                result.removed += 1
                result.bytes += upload.size  # as declared: the object may hold fewer bytes, or none


def purge_incomplete_uploads(
    *,
    older_than: timedelta | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    on_item: OnItem | None = None,
    allow_young: bool = False,
    batch_size: int = 500,
) -> PurgeResult:
    """Abort multipart uploads under the key prefix that no open ticket knows, older than the grace period.

    The grace period is at least :data:`STRAY_MIN_AGE` unless ``allow_young``:
    an upload is begun a moment before its ticket is recorded. An upload that
    received a part within the grace period is still arriving and is kept, up
    to :data:`ARRIVING_UPLOAD_MAX_AGE` (or the grace period, if longer) after
    it began: an API upload streamed to the storage (``STREAM_UPLOADS``) has no
    ticket, and one over a slow link can take hours.
    """
    result = PurgeResult("multipart", dry_run=dry_run)
    grace = _grace(older_than)
    now = django_timezone.now()
    cutoff = now - (grace if allow_young else max(grace, STRAY_MIN_AGE))
    # Parts arriving keep an upload only this long from its start: no client keeps one forever.
    oldest_alive = now - max(grace, ARRIVING_UPLOAD_MAX_AGE)
    for alias, store in _stores_of(DirectUpload, result):
        if not store.can_multipart:
            continue
        try:
            candidates = [u for u in store.list_multipart() if _aware(u.started) < cutoff]
            for batch in _batches(candidates, batch_size):
                ids = [u.upload_id for u in batch]
                known = set(
                    DirectUpload.objects.filter(
                        storage=alias,
                        multipart_id__in=ids,
                        status__in=[DirectUpload.PENDING, DirectUpload.VERIFYING],
                    ).values_list("multipart_id", flat=True)
                )
                for upload in batch:
                    if upload.upload_id in known:
                        continue
                    if limit is not None and result.found >= limit:
                        return result
                    identifiers = store.identifiers_for(upload.name) if upload.name else {"storage": alias}
                    size, newest = _held_parts(store, identifiers, upload.upload_id)
                    if newest is not None and _aware(newest) >= cutoff and _aware(upload.started) >= oldest_alive:
                        # Begun long ago, but a part came within the grace period: an upload still
                        # arriving (an API upload streamed to the storage has no row to be known by).
                        continue
                    result.found += 1
                    result.bytes += size
                    if on_item:
                        on_item(
                            "incomplete upload",
                            {"storage": alias, "name": upload.name, "upload_id": upload.upload_id, "size": size},
                        )
                    if not dry_run:
                        store.abort_multipart(identifiers, upload.upload_id)
                        result.removed += 1
        except StorageError as exc:
            result.failures.append(f"storage {alias!r}: {exc}")
    return result


def _held_parts(store: Any, identifiers: dict[str, Any], upload_id: str) -> tuple[int, datetime | None]:
    """The bytes an incomplete upload holds, and when its newest part came (where the store says)."""
    try:
        parts = store.list_parts(identifiers, upload_id)
    except StorageError:
        return 0, None
    return sum(part.size for part in parts), max((p.modified for p in parts if p.modified), default=None)


# -- stale variants --------------------------------------------------------------


def purge_stale_variants(
    *,
    dry_run: bool = False,
    batch_size: int = 500,
    limit: int | None = None,
    on_item: OnItem | None = None,
) -> PurgeResult:
    """Remove variants no declared spec makes any more: rows first, then bytes.

    A variant is stale when its digest is none of those its file's owner
    types declare now (the spec changed, the name was dropped, the renderer's
    version or limits changed). Left alone: an orphan blob's variants (the
    orphan purge's), a blob linked to an owner type nobody registers now, and
    files whose type no renderer that can run in this process reads (see
    :func:`~.variants.current_digests`). Run it once every process has the
    new settings: a process still on the old ones would make the old
    variants again.
    """
    from .variants import current_digests

    result = PurgeResult("stale_variants", dry_run=dry_run)
    last = None
    while limit is None or result.found < limit:
        page = Variant.objects.select_related("blob").order_by("pk")
        batch = list((page if last is None else page.filter(pk__gt=last))[:batch_size])
        if not batch:
            break
        last = batch[-1].pk
        current: dict[Any, set[str] | None] = {}
        stale = []
        for variant in batch:
            if variant.blob_id not in current:
                current[variant.blob_id] = current_digests(variant.blob)
            digests = current[variant.blob_id]
            if digests is not None and variant.digest not in digests:
                stale.append(variant)
        if limit is not None:
            stale = stale[: limit - result.found]
        if not dry_run and stale:
            copies = list(Replica.objects.held().filter(variant__in=stale))
            # Deleted only as they were read: a variant rebuilt meanwhile keeps its (new) row and bytes.
            Variant.objects.filter(
                pk__in=[variant.pk for variant in stale], digest__in={variant.digest for variant in stale}
            ).delete()
            _delete_copies(copies, result)
        for alias, group in _by_storage(stale).items():
            failed = (
                set() if dry_run else _delete_objects(alias, [v.storage_identifiers for v in group], result, "variants")
            )
            for variant in group:
                result.found += 1
                if variant.storage_identifiers.get("name") in failed:
                    continue
                result.bytes += variant.size
                result.removed += 0 if dry_run else 1
                if on_item:
                    on_item(
                        "stale_variant",
                        {
                            "id": str(variant.pk),
                            "blob": str(variant.blob_id),
                            "name": variant.name,
                            "size": variant.size,
                        },
                    )
    return result


# -- dangling links ------------------------------------------------------------


def find_dangling(
    *,
    delete: bool = False,
    batch_size: int = 500,
    limit: int | None = None,
    on_item: OnItem | None = None,
) -> PurgeResult:
    """Find (and with ``delete=True`` remove) attachments whose owner no longer resolves.

    Owners are resolved in batches where the owner type has a
    ``batch_resolver``, one by one otherwise. Attachments of owner types that
    nobody registers are counted in ``unregistered`` and left alone: their app
    may come back.
    """
    result = PurgeResult("dangling", dry_run=not delete)
    specs = list(attachment_registry)
    for spec in specs:
        owner_ids = (
            Attachment.objects.filter(owner_type=spec.owner_type)
            .values_list("owner_id", flat=True)
            .distinct()
            .order_by("owner_id")
        )
        for batch in _batches(owner_ids.iterator(chunk_size=batch_size), batch_size):
            missing = sorted(set(batch) - _existing(spec, batch))
            if not missing:
                continue
            links = dict(
                Attachment.objects.filter(owner_type=spec.owner_type, owner_id__in=missing)
                .values_list("owner_id")
                .annotate(n=Count("id"))
            )
            for owner_id in missing:
                if limit is not None and result.found >= limit:
                    return result
                result.found += links.get(owner_id, 0)
                if delete:
                    result.removed += unlink_all_for_owner(spec.owner_type, owner_id)
                if on_item:
                    on_item(
                        "dangling",
                        {"owner_type": spec.owner_type, "owner_id": owner_id, "links": links.get(owner_id, 0)},
                    )
    registered = [spec.owner_type for spec in specs]
    result.unregistered = dict(
        Attachment.objects.exclude(owner_type__in=registered).values_list("owner_type").annotate(n=Count("id"))
    )
    return result


def _existing(spec: OwnerSpec, owner_ids: list[str]) -> set[str]:
    """The ids among ``owner_ids`` whose owner resolves."""
    if spec.batch_resolver is not None:
        try:
            owners = spec.batch_resolver(list(owner_ids))
        except (ValueError, TypeError, LookupError, ValidationError):
            owners = None  # one malformed id spoils the batch: ask one by one instead
        if owners is not None:
            return {owner_id for owner_id in owner_ids if owners.get(owner_id) is not None}
    existing = set()
    for owner_id in owner_ids:
        try:
            if spec.resolver(owner_id) is not None:
                existing.add(owner_id)
        except (ValueError, TypeError, LookupError, ValidationError):
            pass  # a malformed id resolves to nothing, as in resolve_owner()
    return existing
