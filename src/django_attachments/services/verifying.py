"""Checking that every blob's (and variant's) bytes are there and are still the bytes that were stored.

``verify_blobs()`` streams each blob's object back through SHA-256 and compares
checksum and size with the row: a missing object or a corrupted one (bit rot,
a bad restore, someone writing over a key) is reported, never silently served
forever. Memory stays at one chunk; blobs are read in primary-key batches so
no cursor is held open across a long run::

    result = services.verify_blobs()
    result.missing, result.mismatched, result.errors

Variants (thumbnails, previews) are checked after the blobs, the same way;
their entries say ``"kind": "variant"`` and name their source blob. Then
every copy in another storage (a mirror's, or one a migration kept): its
entries say ``"kind": "copy"``, name the storage and object of the bad copy,
and the blob (and variant) it copies. A blob's own check never falls back
to a copy: each object is judged by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..conf import app_settings
from ..exceptions import AttachmentsImproperlyConfigured, ObjectMissing, StorageError
from ..ingest import Hasher, read_ahead
from ..models import Blob, Replica, Variant
from ..stores import get_store
from ..stores.base import RangeReader


@dataclass
class VerifyResult:
    checked: int = 0
    bytes: int = 0
    #: {"id", "storage", "name"} of blobs whose object is gone.
    missing: list[dict[str, Any]] = field(default_factory=list)
    #: {"id", "storage", "name", "expected", "actual", "expected_size", "actual_size"}.
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    #: {"id", "storage", "error"} where the storage could not be read.
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def verify_blobs(
    *,
    storage: str | None = None,
    batch_size: int = 500,
    limit: int | None = None,
    on_item: Callable[[str, dict[str, Any]], None] | None = None,
) -> VerifyResult:
    """Re-hash every blob's bytes, then every variant's, then every copy's (of one storage alias, if given);
    report what does not match.

    ``limit`` caps the objects checked, blobs first.
    """
    result = VerifyResult()
    for model in (Blob, Variant, Replica):
        queryset = model.objects.order_by("pk")
        if model is Replica:
            queryset = Replica.objects.held().select_related("blob", "variant").order_by("pk")
        if storage is not None:
            queryset = queryset.filter(storage=storage)
        last = None
        while limit is None or result.checked < limit:
            page = queryset if last is None else queryset.filter(pk__gt=last)
            size = batch_size if limit is None else min(batch_size, limit - result.checked)
            batch = list(page[:size])
            if not batch:
                break
            for row in batch:
                _verify(row, result, on_item)
            last = batch[-1].pk
    return result


def _verify(
    row: Blob | Variant | Replica, result: VerifyResult, on_item: Callable[[str, dict[str, Any]], None] | None
) -> None:
    result.checked += 1
    where = {"id": str(row.pk), "storage": row.storage, "name": row.storage_identifiers.get("name")}
    blob: Blob | Variant
    if isinstance(row, Replica):
        blob = row.copy_of
        where.update(kind="copy", blob=str(row.blob_id))
        if row.variant_id:
            where.update(variant=str(row.variant_id))
    else:
        blob = row
        if isinstance(row, Variant):
            where.update(kind="variant", blob=str(row.blob_id))
    hasher = Hasher()
    try:
        with _open(row) as stream, read_ahead(stream.chunks(app_settings.CHUNK_SIZE)) as chunks:
            for chunk in chunks:  # the next chunk arrives while this one is hashed
                hasher.update(chunk)
    except ObjectMissing:
        if _moved(row):  # moved by a migration (which may have deleted the object) since it was listed
            result.checked -= 1
            if row.pk is not None:
                _verify(row, result, on_item)
            return
        result.missing.append(where)
        kind = "missing"
    except (StorageError, AttachmentsImproperlyConfigured) as exc:
        result.errors.append({**where, "error": str(exc)})
        kind = "error"
    else:
        digest = hasher.digest()
        result.bytes += digest.size
        if digest.checksum == blob.checksum and digest.size == blob.size:
            kind = "ok"
        else:
            kind = "mismatch"
            result.mismatched.append(
                {
                    **where,
                    "expected": blob.checksum,
                    "actual": digest.checksum,
                    "expected_size": blob.size,
                    "actual_size": digest.size,
                }
            )
    if on_item:
        on_item(kind, where)


def _open(row: Blob | Variant | Replica) -> RangeReader:
    """The object the row names itself, never a copy in its place."""
    return get_store(row.storage).open(row.storage_identifiers)


def _moved(row: Blob | Variant | Replica) -> bool:
    """Whether the row names another object now, or is gone (a copy dropped); read again if so."""
    fresh = type(row).objects.filter(pk=row.pk).values("storage", "storage_identifiers").first()
    if fresh is None:
        row.pk = None
        return True
    if (fresh["storage"], fresh["storage_identifiers"]) == (row.storage, row.storage_identifiers):
        return False
    row.storage, row.storage_identifiers = fresh["storage"], fresh["storage_identifiers"]
    return True
