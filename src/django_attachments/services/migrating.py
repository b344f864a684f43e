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

from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, connections, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Sum
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
    return move_blobs([blob_id], target, source=source, delete_source=delete_source)[blob_id]


@dataclass
class _Pending:
    """A row copied (or a copy to take over) and verified, waiting for its switch."""

    row: Blob | Variant
    copied: replicas.Copied
    taken: Replica | None
    old_storage: str
    old_identifiers: dict[str, Any]
    #: When its copy began (``time.monotonic()``): a copy that waited long for its switch is looked at again.
    started: float
    result: MigrationResult
    outcome: str = ""
    #: The identifiers the row points at once switched (the copy, or one taken over instead).
    use: dict[str, Any] | None = None
    unused: dict[str, Any] | None = None

    @property
    def blob_id(self) -> Any:
        return self.row.blob_id if isinstance(self.row, Variant) else self.row.pk

    @property
    def variant(self) -> Variant | None:
        return self.row if isinstance(self.row, Variant) else None


def move_blobs(
    blob_ids: list[Any],
    target: str,
    *,
    source: str | None = None,
    delete_source: bool = False,
    stop: threading.Event | None = None,
) -> dict[Any, MigrationResult]:
    """Move blobs and their variants to storage ``target``: each copied and verified, then all switched in one
    transaction (each re-checked under its row lock there), then the old objects dropped; per blob, its outcome.

    One transaction for the lot, not one per blob: the commit (an fsync on
    SQLite) costs more than the statements. A batch whose switch fails
    otherwise than by a lock conflict is switched again one row at a time,
    so that one bad row fails alone. Once ``stop`` is set no other blob is
    copied (those copied are switched); the blobs not started have no
    outcome.
    """
    # Each blob once, whatever form its id is given in (a UUID, its text, its hex); the outcomes keyed as given.
    keys: dict[Any, Any] = {}
    for blob_id in blob_ids:
        try:
            keys[blob_id] = Blob._meta.pk.to_python(blob_id)
        except ValidationError:
            keys[blob_id] = None  # no blob has such an id
    ordered = list(dict.fromkeys(key for key in keys.values() if key is not None))
    outcomes = {key: MigrationResult([target], delete_source=delete_source) for key in ordered}
    blobs = Blob.objects.in_bulk(ordered)
    variants = Variant.objects.filter(blob_id__in=list(blobs)).exclude(storage=target).select_related("blob")
    if source is not None:
        variants = variants.filter(storage=source)
    by_blob: dict[Any, list[Variant]] = {}
    for variant in variants.order_by("pk"):
        by_blob.setdefault(variant.blob_id, []).append(variant)
    in_target = {
        (replica.blob_id, replica.variant_id): replica
        for replica in Replica.objects.held().filter(blob_id__in=list(blobs), storage=target)
    }
    pending: list[_Pending] = []
    for position, key in enumerate(ordered):
        if stop is not None and stop.is_set():
            for later in ordered[position:]:
                del outcomes[later]  # not started: no outcome
            break
        blob = blobs.get(key)
        if blob is None:
            outcomes[key].skipped += 1  # purged since it was listed
            continue
        rows: list[Blob | Variant] = []
        if blob.storage != target and (source is None or blob.storage == source):
            rows.append(blob)
        rows += by_blob.get(key, [])
        for row in rows:
            variant_id = row.pk if isinstance(row, Variant) else None
            prepared = _prepare(row, target, in_target.get((key, variant_id)), outcomes[key])
            if prepared is not None:
                pending.append(prepared)
    if pending:
        _switch_all(pending)
    for item in pending:
        if item.unused is not None:
            replicas.delete_quietly(target, item.unused)
        if item.outcome == "failed":
            continue  # reported in failed
        if item.outcome != "moved":
            item.result.skipped += 1
            continue
        item.result.moved += 1
        item.result.taken_over += item.taken is not None or item.unused is not None
        if not delete_source or item.old_storage in app_settings.MIRRORS:
            item.result.sources_kept += 1  # else dropped below, with the copies earlier runs kept
        # Switched and committed: a receiver's failure is its own, logged, and fails neither this move nor
        # the others of the chunk.
        for receiver, error in row_moved.send_robust(
            sender=type(item.row),
            row=item.row,
            source=item.old_storage,
            copied=item.taken is None and item.unused is None,
        ):
            if isinstance(error, Exception):
                logger.error("A row_moved receiver (%r) failed for %s", receiver, item.row.pk, exc_info=error)
    if delete_source:
        retained = (
            Replica.objects.held()
            .filter(blob_id__in=[key for key in outcomes if key in blobs])
            .exclude(storage__in=[*app_settings.MIRRORS, target])
        )
        if source is not None:
            retained = retained.filter(storage=source)
        for replica in retained:
            result = outcomes[replica.blob_id]
            try:
                _drop_copy(replica, result)
            except Exception as exc:  # a lock timeout, a database error: this copy's, not the chunk's
                logger.exception("Could not drop copy %s of blob %s", replica.pk, replica.blob_id)
                result.failed.append(_failure(replica, "delete_failed", f"Could not drop the old object: {exc}"))
    given: dict[Any, MigrationResult] = {}
    for blob_id, key in keys.items():
        if key is None:
            given[blob_id] = MigrationResult([target], delete_source=delete_source, skipped=1)
        elif key in outcomes:
            given[blob_id] = outcomes[key]  # the same outcome for the same blob given twice
    return given


def _failure(replica: Replica, code: str, error: str) -> dict[str, Any]:
    """A ``failed`` entry for a copy (retained or mirrored) of a blob or variant."""
    return {
        "id": str(replica.variant_id or replica.blob_id),
        "kind": "variant" if replica.variant_id else "blob",
        "blob": str(replica.blob_id),
        "storage": replica.storage,
        "target": None,
        "code": code,
        "error": error,
    }


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


def _prepare(row: Blob | Variant, target: str, taken: Replica | None, result: MigrationResult) -> _Pending | None:
    """Copy ``row`` to ``target`` and verify the copy, or take over the copy held there (``taken``) once verified
    again; what its switch needs, or None (failed, or purged meanwhile: counted in ``result``)."""
    kind = "variant" if isinstance(row, Variant) else "blob"
    store = get_store(target)
    copied: replicas.Copied | None = None
    if taken is not None:
        # A copy there already (a mirror's, or one a move kept): take it over if it still holds the bytes.
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
                return None
            _fail(result, row, target, exc)
            return None
        _count_copy(result, copied)
    else:
        result.verified += 1
    # A copy that took long to make and verify is old enough for a stray sweep (which knows nothing of
    # it until the switch commits) to have deleted it: make sure it is there before pointing at it.
    return _Pending(row, copied, taken, row.storage, row.storage_identifiers, started, result)


def _switch_all(pending: list[_Pending]) -> None:
    """Switch every pending row in one transaction (retried on a lock conflict); where that fails otherwise, one
    row at a time, each in its own."""
    for attempt in range(SWITCH_ATTEMPTS):
        try:
            with transaction.atomic():
                # The blobs' locks first (in key order, as every batch takes them), the variants' after them.
                ids = sorted({item.blob_id for item in pending}, key=str)
                if not connection.features.has_select_for_update:
                    Blob.objects.filter(pk__in=ids).update(analysis_state=F("analysis_state"))  # SQLite: write now
                blobs = Blob.objects.select_for_update().in_bulk(ids)
                variant_ids = sorted((item.row.pk for item in pending if isinstance(item.row, Variant)), key=str)
                variants = Variant.objects.select_for_update().in_bulk(variant_ids) if variant_ids else {}
                # The copies of these blobs in the storages concerned, read once under the locks.
                storages = {item.copied.storage for item in pending} | {item.old_storage for item in pending}
                copies = {
                    (str(replica.blob_id), str(replica.variant_id), replica.storage): replica
                    for replica in Replica.objects.filter(blob_id__in=ids, storage__in=storages)
                }
                moot: list[Any] = []
                for item in pending:
                    item.outcome, item.unused = "", None
                    locked = variants.get(item.row.pk) if item.variant is not None else blobs.get(item.blob_id)
                    if item.variant is not None and item.blob_id not in blobs:
                        locked = None
                    _switch_locked(item, locked, copies, moot)
                Replica.objects.filter(pk__in=moot).delete()
                _record_copies([item for item in pending if item.outcome == "moved"], copies)
            break
        except Exception as exc:
            if isinstance(exc, OperationalError) and attempt < SWITCH_ATTEMPTS - 1:
                time.sleep(0.1 * (attempt + 1))  # a lock conflict: again
                continue
            if len(pending) > 1:
                logger.exception("Could not switch %d rows at once; switching them one at a time", len(pending))
                for item in pending:
                    _switch_all([item])
                return
            (item,) = pending
            logger.exception("Could not switch %s %s", type(item.row).__name__.lower(), item.row.pk)
            # Nothing points at the copy: deleted by the caller (a copy taken over stays the copy it was).
            item.outcome, item.unused = "failed", None if item.taken else item.copied.identifiers
            _fail(item.result, item.row, item.copied.storage, exc, code="switch_failed")
            return
    for item in pending:
        if item.outcome == "moved":
            item.row.storage, item.row.storage_identifiers = item.copied.storage, item.use


def _switch_locked(
    item: _Pending, locked: Blob | Variant | None, copies: dict[tuple[str, str, str], Replica], moot: list[Any]
) -> None:
    """Point one row at its copy, under its locks (taken by the caller); sets the item's outcome.

    "moved"; "gone" when the row was purged meanwhile; "changed" when it no
    longer names the object copied, or the copy taken over was dropped
    meanwhile. ``unused``: an object of the target no row references now
    (the fresh copy, when a copy made there meanwhile, a mirror's, was taken
    over instead, or when the row is gone or changed), for the caller to
    delete. ``copies`` are the blobs' copies read under the locks; the ids of
    the rows to delete are added to ``moot``.
    """
    copied, taken = item.copied, item.taken
    fresh = None if taken else copied.identifiers
    if locked is None:
        item.outcome, item.unused = "gone", fresh
        return
    if (locked.storage, locked.storage_identifiers) != (item.old_storage, item.old_identifiers):
        item.outcome, item.unused = "changed", fresh
        return
    in_target = copies.get((str(item.blob_id), str(item.variant.pk if item.variant else None), copied.storage))
    held = in_target if in_target is not None and in_target.state == Replica.COPIED else None
    # Decided afresh on each attempt: a retried transaction must not take what the one rolled back chose.
    use, unused = copied.identifiers, None
    if taken is not None:
        if held is None or held.storage_identifiers != taken.storage_identifiers:
            item.outcome = "changed"  # dropped (a --delete-source run) since it was verified
            return
    elif held is not None:
        # A copy was made there meanwhile (a mirror's): take it over, and drop ours.
        use, unused = held.storage_identifiers, copied.identifiers
    # A copy that took long to make, or waited long for the rest of its chunk, is old enough for a stray
    # sweep (which knows nothing of it until the switch commits) to have deleted it: make sure it is there
    # before pointing at it.
    if time.monotonic() - item.started > STRAY_RECHECK and not get_store(copied.storage).exists(use):
        item.outcome = "changed"  # swept meanwhile: nothing to point at (the next run copies again)
        return
    if in_target is not None:
        moot.append(in_target.pk)  # the copy taken over, or a failed attempt at one: moot now
    type(locked).objects.filter(pk=locked.pk).update(storage=copied.storage, storage_identifiers=use)
    item.outcome, item.use, item.unused = "moved", use, unused


def _record_copies(moved: list[_Pending], copies: dict[tuple[str, str, str], Replica]) -> None:
    """Record each switched row's old object as a copy of it (over a failed attempt's row there, if any)."""
    created = []
    for item in moved:
        replica = copies.get((str(item.blob_id), str(item.variant.pk if item.variant else None), item.old_storage))
        if replica is None:
            created.append(
                Replica(
                    blob_id=item.blob_id,
                    variant=item.variant,
                    storage=item.old_storage,
                    storage_identifiers=item.old_identifiers,
                )
            )
        elif replica.state != Replica.COPIED:
            _record_copy(item.blob_id, item.variant, item.old_storage, item.old_identifiers)
    Replica.objects.bulk_create(created)


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
            _failure(
                replica,
                "delete_failed",
                f"Could not delete the old object {name!r}; it is kept as a copy, for the next run.",
            )
        )


def _count_copy(result: MigrationResult, copied: replicas.Copied) -> None:
    result.copied += 1
    result.bytes += copied.size
    result.verified += 1
    if copied.verified_by == "checksum":
        result.verified_by_checksum += 1
    else:
        result.verified_by_read += 1


def _fail(result: MigrationResult, row: Blob | Variant, target: str, exc: Exception, *, code: str = "") -> None:
    kind = "variant" if isinstance(row, Variant) else "blob"
    code = code or getattr(exc, "code", "improperly_configured")
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

    def work(chunk: list[Any]) -> dict[Any, MigrationResult]:
        if not mirror:
            return move_blobs(chunk, targets[0], source=source, delete_source=delete_source, stop=stop)
        outcomes = {}
        for blob_id in chunk:
            if stop is not None and stop.is_set():
                break  # the blobs not started have no outcome
            outcomes[blob_id] = mirror_blob(blob_id, targets)
        return outcomes

    lock = threading.Lock()

    def done(blob_id: Any, size: int, outcome: MigrationResult) -> None:
        with lock:
            result.blobs += 1
            result.add(outcome)
            if on_blob:
                on_blob(blob_id, size, outcome)

    chunks = _chunks(_pages(selected, batch_size, limit, stop))
    if concurrency <= 1:
        for chunk in chunks:
            outcomes = _guarded(work, chunk, targets)
            for blob_id, size in chunk:
                if blob_id in outcomes:
                    done(blob_id, size, outcomes[blob_id])
    else:
        _run_threads(chunks, work, done, concurrency, targets)
    return result


#: Blobs switched in one transaction, at most (and at most ``CHUNK_BYTES`` of them): the commit costs more
#: than the statements, and a chunk's switch waits for its last copy.
CHUNK_BLOBS = 32
CHUNK_BYTES = 256 * 1024 * 1024


def _chunks(items: Iterator[tuple[Any, int]]) -> Iterator[list[tuple[Any, int]]]:
    """The listed blobs in chunks of at most ``CHUNK_BLOBS`` blobs and ``CHUNK_BYTES`` bytes (one blob at least)."""
    chunk: list[tuple[Any, int]] = []
    held = 0
    for item in items:
        if chunk and (len(chunk) == CHUNK_BLOBS or held + item[1] > CHUNK_BYTES):
            yield chunk
            chunk, held = [], 0
        chunk.append(item)
        held += item[1]
    if chunk:
        yield chunk


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


def _guarded(
    work: Callable[[list[Any]], dict[Any, MigrationResult]], chunk: list[tuple[Any, int]], targets: list[str]
) -> dict[Any, MigrationResult]:
    """A chunk's work; an unexpected error is its blobs' failure, not the run's end."""
    ids = [blob_id for blob_id, _ in chunk]
    try:
        return work(ids)
    except Exception as exc:
        logger.exception("Could not migrate blobs %s", ", ".join(map(str, ids)))
        outcomes = {}
        for blob_id in ids:
            outcome = outcomes[blob_id] = MigrationResult(targets)
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
        return outcomes


def _run_threads(
    chunks: Iterator[list[tuple[Any, int]]],
    work: Callable[[list[Any]], dict[Any, MigrationResult]],
    done: Callable[[Any, int, MigrationResult], None],
    concurrency: int,
    targets: list[str],
) -> None:
    """``concurrency`` threads work on the chunks as the main thread lists them (a bounded hand-off)."""
    todo: queue.Queue[list[tuple[Any, int]] | None] = queue.Queue(maxsize=concurrency)

    def worker() -> None:
        try:
            while (chunk := todo.get()) is not None:
                outcomes = _guarded(work, chunk, targets)
                for blob_id, size in chunk:
                    if blob_id in outcomes:
                        done(blob_id, size, outcomes[blob_id])
        finally:
            connections.close_all()  # this thread's connections

    threads = [threading.Thread(target=worker, name=f"migrate-{n}", daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    try:
        for chunk in chunks:
            todo.put(chunk)
    finally:
        for _ in threads:
            todo.put(None)
        for thread in threads:
            thread.join()
