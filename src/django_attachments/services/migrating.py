"""Moving blobs (with their variants) to another storage, and copying them to mirrors, beside live traffic.

``manage.py migrate_attachments`` calls :func:`migrate`; each blob is one unit
of work, :func:`move_blob` or :func:`mirror_blob`::

    result = migrating.migrate("s3", source="default", delete_source=True, concurrency=4)
    result.copied, result.bytes, result.failed

Moving a blob (or a variant) to storage T:

1. copy its bytes to T under a fresh name, streamed (server-side between
   two buckets of one S3 service), and verify the copy: its size, and its
   SHA-256 as T reports it or as read back (:func:`.replicas.copy_row`); a
   copy that a mirror holds in T already is taken over instead;
2. switch the row's storage and identifiers in one short transaction under
   its row lock: a purge that removed it meanwhile, or another run that
   moved it, is seen there, and the copy deleted (nothing is left behind);
   the object it leaves becomes a copy of the row (a
   :class:`~django_attachments.models.Replica`): a mirror's, or a retained
   one that reads fall back to and the purge removes with the blob;
3. with ``delete_source``, after the switch commits, that retained copy's
   row is deleted, then its bytes, unless another row references them.

A unit interrupted anywhere (even by ``kill -9``) leaves the row on its old
storage, or switched with the old object recorded, plus at most a stray copy
for the sweep; the next run copies only what is not switched yet, and
deletes the retained sources a killed run had not. A failure is reported
and the blob stays where it is, for the next run.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, OperationalError, connections, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from ..conf import app_settings
from ..exceptions import AttachmentsImproperlyConfigured, ObjectMissing, StorageError
from ..models import Attachment, Blob, Replica, Variant
from ..signals import row_moved
from ..stores import get_store
from . import replicas
from .holders import referenced
from .processing import lock_blob

logger = logging.getLogger(__name__)

#: Seconds after which a copy is checked to be still there before a blob is switched to it: half the
#: youngest age at which the stray sweep may delete an object it does not know (``STRAY_MIN_AGE``).
STRAY_RECHECK = 30 * 60
#: Times a switch is tried again when the database reports a lock conflict (SQLite's "database is locked").
SWITCH_ATTEMPTS = 3


@dataclass
class MigrationResult:
    """What one run of :func:`migrate` did (or, on a dry run, would do)."""

    target: list[str]
    mirror: bool = False
    dry_run: bool = False
    delete_source: bool = False
    #: Blobs looked at (those with something to do when the run started).
    blobs: int = 0
    #: Objects (blobs and variants) copied, and their bytes.
    copied: int = 0
    bytes: int = 0
    #: Copies verified by the target's own SHA-256, and by reading them back.
    verified: int = 0
    verified_by_checksum: int = 0
    verified_by_read: int = 0
    #: Objects switched to the target, and those of them that took over a mirror's copy already there.
    moved: int = 0
    taken_over: int = 0
    #: Objects with nothing left to do (already there, or moved or purged by someone else meanwhile).
    skipped: int = 0
    #: Objects in the old storage deleted (``delete_source``), and kept as retained copies.
    sources_deleted: int = 0
    sources_kept: int = 0
    #: Old objects ``delete_source`` leaves for a later run: their storage signs URLs, and one handed out
    #: before the switch may still be used (for ``URL_EXPIRY``).
    sources_waiting: int = 0
    #: Objects whose copy or switch failed: {"id", "kind", "blob", "storage", "target", "code", "error"}.
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def add(self, other: MigrationResult) -> None:
        for name in (
            "copied",
            "bytes",
            "verified",
            "verified_by_checksum",
            "verified_by_read",
            "moved",
            "taken_over",
            "skipped",
            "sources_deleted",
            "sources_kept",
            "sources_waiting",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += other.failed


OnBlob = Callable[[Any, int, MigrationResult], None]


# -- which blobs ---------------------------------------------------------------------------------


def candidates(
    target: str | list[str],
    *,
    mirror: bool = False,
    source: str | None = None,
    owner_type: str | None = None,
    tenant: str | None = None,
    delete_source: bool = False,
) -> QuerySet[Blob]:
    """The blobs with something to do: not in ``target`` yet, or a variant not, or (``delete_source``) a
    retained copy left to delete; for ``mirror``, a copy missing in one of the ``target`` aliases."""
    blobs = Blob.objects.all()
    if tenant is not None:
        blobs = blobs.filter(tenant=str(tenant))
    if owner_type is not None:
        blobs = blobs.filter(Exists(Attachment.objects.filter(blob=OuterRef("pk"), owner_type=owner_type)))
    if mirror:
        aliases = [target] if isinstance(target, str) else list(target)
        missing: Any = Q()
        for alias in aliases:
            copies = Replica.objects.held().filter(storage=alias)
            blob_missing = _blob_to_copy(alias, mirror=True, source=None)
            variant_missing = Exists(
                Variant.objects.filter(blob=OuterRef("pk"))
                .exclude(storage=alias)
                .exclude(Exists(copies.filter(variant=OuterRef("pk"))))
            )
            missing |= blob_missing | variant_missing
        if source is not None:
            blobs = blobs.filter(storage=source)
        return blobs.filter(missing)
    assert isinstance(target, str)
    elsewhere = Variant.objects.filter(blob=OuterRef("pk")).exclude(storage=target)
    todo = _blob_to_copy(target, mirror=False, source=source)
    if source is not None:
        elsewhere = elsewhere.filter(storage=source)
    todo |= Exists(elsewhere)
    if delete_source:
        retained = Replica.objects.held().filter(blob=OuterRef("pk")).exclude(storage__in=app_settings.MIRRORS)
        retained = retained.exclude(storage=target)
        if source is not None:
            retained = retained.filter(storage=source)
        todo |= Exists(retained)
    return blobs.filter(todo)


def _blob_to_copy(alias: str, *, mirror: bool, source: str | None) -> Any:
    """The blobs whose own bytes (not only their variants', or an old object to delete) go to ``alias``."""
    if mirror:
        copies = Replica.objects.held().of_blobs().filter(storage=alias)
        return ~Q(storage=alias) & ~Exists(copies.filter(blob=OuterRef("pk")))
    return ~Q(storage=alias) if source is None else Q(storage=source)


# -- one blob ------------------------------------------------------------------------------------


def move_blob(blob_id: Any, target: str, *, source: str | None = None, delete_source: bool = False) -> MigrationResult:
    """Move one blob and its variants to storage ``target`` (those in ``source`` only, if given)."""
    result = MigrationResult([target], delete_source=delete_source)
    blob = Blob.objects.filter(pk=blob_id).first()
    if blob is None:
        result.skipped += 1  # purged since it was listed
        return result
    if blob.storage != target and (source is None or blob.storage == source):
        _move(blob, target, result, delete_source=delete_source)
    variants = Variant.objects.filter(blob_id=blob_id).exclude(storage=target).select_related("blob")
    if source is not None:
        variants = variants.filter(storage=source)
    for variant in variants:
        _move(variant, target, result, delete_source=delete_source)
    if delete_source:
        retained = Replica.objects.held().filter(blob_id=blob_id).exclude(storage__in=[*app_settings.MIRRORS, target])
        if source is not None:
            retained = retained.filter(storage=source)
        for replica in retained:
            _drop_copy(replica, result)
    return result


def mirror_blob(
    blob_id: Any, aliases: list[str] | tuple[str, ...] | None = None, *, retry_early: bool = True
) -> MigrationResult:
    """Copy one blob and its variants to every mirror (``aliases``; ``MIRRORS`` by default) lacking a copy.

    Each copy is verified, then recorded under the blob's row lock; a blob
    purged meanwhile gets no copy (the one made is deleted). A failure is
    recorded on a ``failed`` replica row (attempts, error) and reported.
    Without ``retry_early`` (the task's retries), a copy that failed is not
    tried again before its ``retry_at``, so that another copy of the blob
    coming due does not spend its attempts early.
    """
    targets = list(app_settings.MIRRORS if aliases is None else aliases)
    result = MigrationResult(targets, mirror=True)
    blob = Blob.objects.filter(pk=blob_id).first()
    if blob is None:
        result.skipped += 1
        return result
    rows: list[Blob | Variant] = [blob, *Variant.objects.filter(blob=blob).select_related("blob")]
    waiting: set[tuple[Any, str]] = set()
    if not retry_early:
        later = Replica.objects.filter(blob=blob, state=Replica.FAILED, retry_at__gt=timezone.now())
        waiting = set(later.values_list("variant_id", "storage"))
    for row in rows:
        held = set(replicas.replicas_of(row).values_list("storage", flat=True))
        variant_id = row.pk if isinstance(row, Variant) else None
        for alias in targets:
            if alias == row.storage or alias in held or (variant_id, alias) in waiting:
                continue
            _mirror(row, alias, result)
    return result


def _mirror(row: Blob | Variant, alias: str, result: MigrationResult) -> None:
    try:
        copied = replicas.copy_row(row, alias)
    except (StorageError, AttachmentsImproperlyConfigured) as exc:
        _fail(result, row, alias, exc)
        _record_failure(row, alias, exc)
        return
    _count_copy(result, copied)
    blob_id = row.blob_id if isinstance(row, Variant) else row.pk
    variant = row if isinstance(row, Variant) else None
    try:
        with transaction.atomic():
            locked: Blob | Variant | None = lock_blob(blob_id)
            if locked is not None and variant is not None:
                locked = Variant.objects.filter(pk=variant.pk).first()
            # Recorded unless the row is gone, was moved into that very storage meanwhile, or another run
            # recorded its own copy there first.
            recorded = (
                locked is not None
                and locked.storage != alias
                and _record_copy(blob_id, variant, alias, copied.identifiers)
            )
    except IntegrityError:
        recorded = False  # the variant was deleted (a stale spec's) as the copy was recorded
    if not recorded:
        replicas.delete_quietly(alias, copied.identifiers)
        result.skipped += 1


def _record_copy(blob_id: Any, variant: Variant | None, alias: str, identifiers: dict[str, Any]) -> bool:
    """Record a verified copy (over a failed attempt's row, if any), under the blob's row lock.

    False when a copy is held there already (made at the same time by
    another run): it stays, and the caller deletes the object it made.
    """
    replica = Replica.objects.filter(blob_id=blob_id, variant=variant, storage=alias).first()
    if replica is None:
        Replica.objects.create(blob_id=blob_id, variant=variant, storage=alias, storage_identifiers=identifiers)
        return True
    if replica.state == Replica.COPIED:
        return replica.storage_identifiers == identifiers
    replica.storage_identifiers = identifiers
    replica.state = Replica.COPIED
    replica.attempts = 0
    replica.error_code = replica.error = ""
    replica.retry_at = None
    replica.save()
    return True


def _record_failure(row: Blob | Variant, alias: str, exc: Exception) -> None:
    """Keep why a mirror copy could not be made, on a ``failed`` replica row (no bytes), for the retries."""
    blob_id = row.blob_id if isinstance(row, Variant) else row.pk
    variant = row if isinstance(row, Variant) else None
    code = getattr(exc, "code", "storage_unavailable")
    with transaction.atomic():
        if lock_blob(blob_id) is None:
            return
        replica, _ = Replica.objects.get_or_create(
            blob_id=blob_id, variant=variant, storage=alias, defaults={"state": Replica.FAILED}
        )
        if replica.state == Replica.COPIED:
            return  # another run made it meanwhile
        replica.attempts += 1
        replica.error_code = str(code)[:64]
        replica.error = str(exc)
        replica.retry_at = timezone.now() + mirror_retry_delay(replica.attempts)
        replica.save()


def mirror_retry_delay(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failure a mirror copy is tried again: doubling, at most a day."""
    return min(app_settings.SCAN_RETRY_DELAY * 2 ** max(0, min(attempts - 1, 16)), timedelta(days=1))


def _move(row: Blob | Variant, target: str, result: MigrationResult, *, delete_source: bool) -> None:
    kind = "variant" if isinstance(row, Variant) else "blob"
    store = get_store(target)
    taken: Replica | None = replicas.replicas_of(row).filter(storage=target).first()
    copied: replicas.Copied | None = None
    if taken is not None:
        # A copy there already (a mirror's): take it over if it still holds the bytes.
        try:
            verified_by = replicas.verify_copy(store, taken.storage_identifiers, size=row.size, checksum=row.checksum)
        except (StorageError, AttachmentsImproperlyConfigured) as exc:
            logger.warning("The copy of %s %s in %r is not usable (%s); copying again", kind, row.pk, target, exc)
            taken = None
        else:
            copied = replicas.Copied(target, taken.storage_identifiers, verified_by, target, 0)
    started = time.monotonic()
    if copied is None:
        try:
            copied = replicas.copy_row(row, target)
        except (StorageError, AttachmentsImproperlyConfigured) as exc:
            if isinstance(exc, ObjectMissing) and not type(row).objects.filter(pk=row.pk).exists():
                result.skipped += 1  # purged since it was listed: its bytes went with it
                return
            _fail(result, row, target, exc)
            return
        _count_copy(result, copied)
    else:
        result.verified += 1
    old_storage, old_identifiers = row.storage, row.storage_identifiers
    # A copy that took long to make and verify is old enough for a stray sweep (which knows nothing of
    # it until the switch commits) to have deleted it: make sure it is there before pointing at it.
    recheck = time.monotonic() - started > STRAY_RECHECK
    outcome, unused = _switch(row, copied, taken, old_storage, old_identifiers, recheck=recheck)
    if unused is not None:
        replicas.delete_quietly(target, unused)
    if outcome != "moved":
        result.skipped += 1
        return
    result.moved += 1
    result.taken_over += taken is not None or unused is not None
    row_moved.send(sender=type(row), row=row, source=old_storage, copied=taken is None and unused is None)
    if not delete_source or old_storage in app_settings.MIRRORS:
        result.sources_kept += 1  # else dropped by move_blob, with the copies earlier runs kept


def _switch(
    row: Blob | Variant,
    copied: replicas.Copied,
    taken: Replica | None,
    old_storage: str,
    old_identifiers: dict[str, Any],
    *,
    recheck: bool = False,
) -> tuple[str, dict[str, Any] | None]:
    """Point ``row`` at the copy, keeping its old object as a copy, under the blob's row lock.

    Returns the outcome -- "moved"; "gone" when the row was purged
    meanwhile; "changed" when it no longer names the object copied, or the
    copy taken over was dropped meanwhile -- and the identifiers of an object
    of the target no row references now (our fresh copy, when a copy made
    there meanwhile, a mirror's, was taken over instead), for the caller to
    delete.
    """
    variant = row if isinstance(row, Variant) else None
    blob_id = row.blob_id if isinstance(row, Variant) else row.pk
    for attempt in range(SWITCH_ATTEMPTS):
        try:
            with transaction.atomic():
                # The blob's lock first, a variant's after it: the order the purge and the renders take them in.
                blob = lock_blob(blob_id)
                if blob is None:
                    return "gone", None if taken else copied.identifiers
                locked: Blob | Variant | None = blob
                if variant is not None:
                    locked = Variant.objects.select_for_update().filter(pk=variant.pk).first()
                    if locked is None:
                        return "gone", None if taken else copied.identifiers
                assert locked is not None
                if (locked.storage, locked.storage_identifiers) != (old_storage, old_identifiers):
                    return "changed", None if taken else copied.identifiers
                in_target = Replica.objects.filter(blob_id=blob_id, variant=variant, storage=copied.storage)
                held = in_target.filter(state=Replica.COPIED).first()
                # Decided afresh on each attempt: a retried transaction must not take what the one rolled
                # back chose (a copy taken over) for its own.
                use, unused = copied.identifiers, None
                if taken is not None:
                    if held is None or held.storage_identifiers != taken.storage_identifiers:
                        return "changed", None  # dropped (a --delete-source run) since it was verified
                elif held is not None:
                    # A copy was made there meanwhile (a mirror's): take it over, and drop ours.
                    use, unused = held.storage_identifiers, copied.identifiers
                if recheck and not get_store(copied.storage).exists(use):
                    return "changed", None  # swept meanwhile: nothing to point at (the next run copies again)
                in_target.delete()  # the copy taken over, or a failed attempt at one: moot now
                type(locked).objects.filter(pk=locked.pk).update(storage=copied.storage, storage_identifiers=use)
                _record_copy(blob_id, variant, old_storage, old_identifiers)
            row.storage, row.storage_identifiers = copied.storage, use
            return "moved", unused
        except OperationalError:
            if attempt == SWITCH_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _drop_copy(replica: Replica, result: MigrationResult) -> None:
    """Delete a retained copy: its row, then its bytes unless another row references them.

    Not yet where its storage signs URLs and the copy was its row's object
    less than ``URL_EXPIRY`` ago: a URL signed before the switch still leads
    there until it expires (a later run deletes it).
    """
    try:
        signs = get_store(replica.storage).can_sign_urls
    except AttachmentsImproperlyConfigured:
        signs = False  # an alias gone from STORAGES: nothing can be signed, nor deleted (reported below)
    if signs and replica.updated_at > timezone.now() - app_settings.URL_EXPIRY:
        result.sources_waiting += 1
        return
    with transaction.atomic():
        if lock_blob(replica.blob_id) is None:
            return  # purged meanwhile, with its copies
        if not Replica.objects.filter(pk=replica.pk).delete()[0]:
            return  # dropped by someone else
    name = str(replica.storage_identifiers.get("name"))
    if referenced(replica.storage, [name]):
        result.sources_kept += 1
        return
    if replicas.delete_quietly(replica.storage, replica.storage_identifiers):
        result.sources_deleted += 1
    else:
        # Still there: recorded again (the bytes exist, so the row points at something), for the next run.
        with transaction.atomic():
            if lock_blob(replica.blob_id) is not None and (
                replica.variant_id is None or Variant.objects.filter(pk=replica.variant_id).exists()
            ):
                _record_copy(replica.blob_id, replica.variant, replica.storage, replica.storage_identifiers)
        result.failed.append(
            {
                "id": str(replica.variant_id or replica.blob_id),
                "kind": "variant" if replica.variant_id else "blob",
                "blob": str(replica.blob_id),
                "storage": replica.storage,
                "target": None,
                "code": "delete_failed",
                "error": f"Could not delete the old object {name!r}; it is kept as a copy, for the next run.",
            }
        )


def _count_copy(result: MigrationResult, copied: replicas.Copied) -> None:
    result.copied += 1
    result.bytes += copied.size
    result.verified += 1
    if copied.verified_by == "checksum":
        result.verified_by_checksum += 1
    else:
        result.verified_by_read += 1


def _fail(result: MigrationResult, row: Blob | Variant, target: str, exc: Exception) -> None:
    kind = "variant" if isinstance(row, Variant) else "blob"
    code = getattr(exc, "code", "improperly_configured")
    if isinstance(exc, ObjectMissing):
        code = "source_missing"
    logger.warning("Could not copy %s %s to storage %r: %s", kind, row.pk, target, exc)
    result.failed.append(
        {
            "id": str(row.pk),
            "kind": kind,
            "blob": str(row.blob_id if isinstance(row, Variant) else row.pk),
            "storage": row.storage,
            "target": target,
            "code": code,
            "error": str(exc),
        }
    )


# -- a run ---------------------------------------------------------------------------------------


def migrate(
    target: str | None,
    *,
    mirror: bool = False,
    source: str | None = None,
    owner_type: str | None = None,
    tenant: str | None = None,
    limit: int | None = None,
    batch_size: int = 500,
    concurrency: int = 1,
    delete_source: bool = False,
    dry_run: bool = False,
    on_blob: OnBlob | None = None,
    on_start: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> MigrationResult:
    """Move every blob with something to do to ``target`` (or, ``mirror``, copy it to the mirrors).

    ``concurrency`` blobs are worked on at once, each in its own thread and
    database connection. ``on_start(blobs, bytes)`` is told what the run has
    ahead of it; ``on_blob(blob_id, size, outcome)`` after each blob. Once
    ``stop`` is set, no more blobs are started (those in hand finish).
    """
    if mirror:
        targets = list(app_settings.MIRRORS) if target is None else [target]
    else:
        if target is None:
            raise ValueError("A move needs a target storage.")
        if target in app_settings.MIRRORS:
            # Moved there, a blob's mirror copy would become its only object, and nothing would say so.
            raise ValueError(f"{target!r} is a mirror (MIRRORS): take it out of MIRRORS before moving blobs to it.")
        targets = [target]
    for alias in targets:
        get_store(alias)  # a misconfigured alias fails the run before anything is copied
    result = MigrationResult(targets, mirror=mirror, dry_run=dry_run, delete_source=delete_source)
    selected = candidates(
        targets if mirror else targets[0],
        mirror=mirror,
        source=source,
        owner_type=owner_type,
        tenant=tenant,
        delete_source=delete_source,
    ).order_by("pk")
    if on_start is not None:
        totals = selected.aggregate(total=Sum("size"))
        count = selected.count()
        if limit is not None:
            count = min(count, limit)
        on_start(count, totals["total"] or 0)
    if dry_run:
        # What a real run would copy: the blobs whose own bytes go (not those with only variants to move or
        # old objects to delete), each with its size; their variants are not counted.
        to_copy: Any = Q(pk__in=[])
        for alias in targets:
            to_copy |= _blob_to_copy(alias, mirror=mirror, source=source)
        for page in _batches(_pages(selected, batch_size, limit, stop), batch_size):
            listed = Blob.objects.filter(pk__in=[pk for pk, _ in page])
            copying = set(listed.filter(to_copy).values_list("pk", flat=True))
            for blob_id, size in page:
                result.blobs += 1
                outcome = MigrationResult(targets, dry_run=True)
                if blob_id in copying:
                    outcome.copied, outcome.bytes = 1, size
                    result.copied += 1
                    result.bytes += size
                if on_blob:
                    on_blob(blob_id, size, outcome)
        return result

    def work(blob_id: Any) -> MigrationResult:
        if mirror:
            return mirror_blob(blob_id, targets)
        return move_blob(blob_id, targets[0], source=source, delete_source=delete_source)

    lock = threading.Lock()

    def done(blob_id: Any, size: int, outcome: MigrationResult) -> None:
        with lock:
            result.blobs += 1
            result.add(outcome)
            if on_blob:
                on_blob(blob_id, size, outcome)

    pages = _pages(selected, batch_size, limit, stop)
    if concurrency <= 1:
        for blob_id, size in pages:
            done(blob_id, size, _guarded(work, blob_id, targets))
    else:
        _run_threads(pages, work, done, concurrency, targets)
    return result


def _batches(items: Iterator[tuple[Any, int]], size: int) -> Iterator[list[tuple[Any, int]]]:
    batch: list[tuple[Any, int]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _pages(
    selected: QuerySet[Blob], batch_size: int, limit: int | None, stop: threading.Event | None
) -> Iterator[tuple[Any, int]]:
    """(id, size) of the selected blobs in primary-key order, a page at a time (no cursor held open).

    A blob that fails is not listed again in the same run: the pages move past it.
    """
    last = None
    seen = 0
    while limit is None or seen < limit:
        page = selected if last is None else selected.filter(pk__gt=last)
        size = batch_size if limit is None else min(batch_size, limit - seen)
        rows = list(page.values_list("pk", "size")[:size])
        if not rows:
            return
        for row in rows:
            if stop is not None and stop.is_set():
                return
            yield row
        seen += len(rows)
        last = rows[-1][0]


def _guarded(work: Callable[[Any], MigrationResult], blob_id: Any, targets: list[str]) -> MigrationResult:
    """One blob's work; an unexpected error is that blob's failure, not the run's end."""
    try:
        return work(blob_id)
    except Exception as exc:
        logger.exception("Could not migrate blob %s", blob_id)
        outcome = MigrationResult(targets)
        outcome.failed.append(
            {
                "id": str(blob_id),
                "kind": "blob",
                "blob": str(blob_id),
                "storage": None,
                "target": targets[0] if len(targets) == 1 else None,
                "code": getattr(exc, "code", "error"),
                "error": str(exc),
            }
        )
        return outcome


def _run_threads(
    pages: Iterator[tuple[Any, int]],
    work: Callable[[Any], MigrationResult],
    done: Callable[[Any, int, MigrationResult], None],
    concurrency: int,
    targets: list[str],
) -> None:
    """``concurrency`` threads work on the blobs as the main thread lists them (a bounded hand-off)."""
    todo: queue.Queue[tuple[Any, int] | None] = queue.Queue(maxsize=concurrency * 2)

    def worker() -> None:
        try:
            while (item := todo.get()) is not None:
                blob_id, size = item
                done(blob_id, size, _guarded(work, blob_id, targets))
        finally:
            connections.close_all()  # this thread's connections

    threads = [threading.Thread(target=worker, name=f"migrate-{n}", daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    try:
        for item in pages:
            todo.put(item)
    finally:
        for _ in threads:
            todo.put(None)
        for thread in threads:
            thread.join()
