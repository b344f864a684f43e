"""Copies of stored bytes in other storages: made and verified, and read when the primary fails.

A blob (or a variant) has one *primary* object, named by its row's
``storage`` and ``storage_identifiers``, and may have copies elsewhere, each a
:class:`~django_attachments.models.Replica` row: a mirror's copy, or the
object a migration moved it away from. This module holds what moving
(:mod:`.migrating`) and mirroring (:mod:`.mirroring`) share::

    copied = replicas.copy_row(blob, "s3")        # a verified copy in "s3" (no row written)
    copied.identifiers, copied.verified_by        # "checksum" (the store's own) or "read" (read back)

    with replicas.open_row(blob) as stream:       # the primary, else a copy (logged, signalled)
        ...

A copy is verified before anything points at it: its size, and its SHA-256
as the target store reports it (S3 computes it from the bytes it received,
checked against the one sent) or else as read back. A copy that does not
match is deleted and :class:`~django_attachments.exceptions.CopyMismatch`
raised; a failure part way leaves at most a stray object, for the sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..conf import app_settings
from ..exceptions import AttachmentsImproperlyConfigured, CopyMismatch, ObjectMissing, StorageError
from ..ingest import Hasher
from ..models import Blob, Replica, Variant
from ..signals import read_fell_back
from ..stores import get_store
from ..stores.base import BaseStore, Identifiers, RangeReader

logger = logging.getLogger(__name__)

#: What a read may fail with for a reason a copy elsewhere can make up for.
READ_FAILURES = (ObjectMissing, StorageError, AttachmentsImproperlyConfigured)

Row = Blob | Variant


@dataclass(frozen=True)
class Copied:
    """A verified copy of a row's bytes, not yet recorded anywhere."""

    storage: str
    identifiers: Identifiers
    #: "checksum" when the target store reported the copy's SHA-256, "read" when it was read back and hashed.
    verified_by: str
    #: The storage the bytes were read from (the primary, or a copy where the primary failed).
    source: str
    #: Bytes copied.
    size: int


def content_type_of(row: Row) -> str:
    return row.content_type


def replicas_of(row: Row) -> Any:
    """The copies of ``row`` that hold bytes (a blob's own, not its variants')."""
    if isinstance(row, Variant):
        return Replica.objects.held().filter(variant=row)
    return Replica.objects.held().of_blobs().filter(blob=row)


def sources_of(row: Row, *, besides: str | None = None) -> Iterator[tuple[str, Identifiers]]:
    """Where ``row``'s bytes may be read: its primary, then each copy (mirrors in ``MIRRORS`` order first).

    ``besides`` (an alias) is left out: a copy is never made from the storage it is made to.
    """
    if row.storage != besides:
        yield row.storage, row.storage_identifiers
    order = {alias: index for index, alias in enumerate(app_settings.MIRRORS)}
    copies = sorted(replicas_of(row), key=lambda replica: (order.get(replica.storage, len(order)), replica.storage))
    for replica in copies:
        if replica.storage not in (besides, row.storage):
            yield replica.storage, replica.storage_identifiers


def copy_row(row: Row, target: str) -> Copied:
    """Copy ``row``'s bytes to storage ``target`` under a fresh name and verify the copy; record nothing.

    The bytes are read from the primary, or from a copy where the primary
    fails or lacks them. Raises
    :class:`~django_attachments.exceptions.CopyMismatch` when the copy is
    not the row's bytes (it is deleted), a
    :class:`~django_attachments.exceptions.StorageError` (an
    :class:`~django_attachments.exceptions.ObjectMissing` when no storage
    has the bytes) when no source could be copied.
    """
    try:
        return _copy_from_sources(row, target)
    except CopyMismatch:
        raise
    except READ_FAILURES:
        # The row may be stale: a migration may have moved it (and deleted the object it named) meanwhile.
        if not _reload(row) or row.storage == target:
            raise
    return _copy_from_sources(row, target)


def _reload(row: Row) -> bool:
    """Read the row's storage and identifiers again; whether they changed."""
    fresh = type(row).objects.filter(pk=row.pk).values("storage", "storage_identifiers").first()
    if fresh is None or (fresh["storage"], fresh["storage_identifiers"]) == (row.storage, row.storage_identifiers):
        return False
    row.storage, row.storage_identifiers = fresh["storage"], fresh["storage_identifiers"]
    return True


def _copy_from_sources(row: Row, target: str) -> Copied:
    store = get_store(target)
    error: Exception | None = None
    for alias, identifiers in sources_of(row, besides=target):
        try:
            source = get_store(alias)
            written = store.copy_from(
                source, identifiers, size=row.size, checksum=row.checksum, content_type=content_type_of(row)
            )
            copy = written.identifiers
        except CopyMismatch:
            raise
        except READ_FAILURES as exc:
            # The target refusing the bytes' checksum is a read failure too: the source's bytes are bad.
            logger.warning("Could not copy %s %s from storage %r to %r: %s", _kind(row), row.pk, alias, target, exc)
            error = exc
            continue
        try:
            if written.checksum is not None and written.checksum == row.checksum and written.size == row.size:
                # The target reported the SHA-256 of the bytes it wrote (it checked them against ours): that is
                # the store's own checksum, no need to ask it again.
                verified_by = "checksum"
            else:
                verified_by = verify_copy(store, copy, size=row.size, checksum=row.checksum)
        except BaseException:
            delete_quietly(target, copy)
            raise
        return Copied(target, copy, verified_by, alias, row.size)
    if error is None:
        raise ObjectMissing(f"{_kind(row).capitalize()} {row.pk} has no copy to read but in storage {target!r}.")
    raise error


def verify_copy(store: BaseStore, identifiers: Identifiers, *, size: int, checksum: str) -> str:
    """Check that the object is ``size`` bytes with SHA-256 ``checksum``: "checksum" or "read" (how it was known).

    The store's own SHA-256 where it reports one (it computed it from the
    bytes it received); else the object is read back and hashed, in chunks.
    Raises :class:`~django_attachments.exceptions.CopyMismatch` otherwise.
    """
    name = identifiers.get("name")
    if store.can_stat:
        stat = store.stat(identifiers)
        if stat.size != size:
            raise CopyMismatch(f"The copy {name!r} in storage {store.alias!r} has {stat.size} bytes, not {size}.")
        if stat.checksum is not None:
            if stat.checksum != checksum:
                raise CopyMismatch(
                    f"The copy {name!r} in storage {store.alias!r} has SHA-256 {stat.checksum}, not {checksum}."
                )
            return "checksum"
    hasher = Hasher()
    with store.open(identifiers) as stream:
        for chunk in stream.chunks(app_settings.CHUNK_SIZE):
            hasher.update(chunk)
    digest = hasher.digest()
    if digest.size != size or digest.checksum != checksum:
        raise CopyMismatch(
            f"The copy {name!r} in storage {store.alias!r} read back as {digest.size} bytes with SHA-256 "
            f"{digest.checksum}, not {size} bytes with {checksum}."
        )
    return "read"


def delete_quietly(alias: str, identifiers: Identifiers) -> bool:
    """Delete an object nothing references; a failure is logged and leaves a stray, for the sweep."""
    try:
        get_store(alias).delete(identifiers)
    except Exception:
        logger.exception("Could not delete object %r of storage %r; it is stray now", identifiers.get("name"), alias)
        return False
    return True


def open_row(row: Row, *, start: int = 0, end: int | None = None, fallback: bool = True) -> RangeReader:
    """Stream ``row``'s bytes from its storage; where that fails, from a copy (``fallback``).

    Before any copy, the row is read again: a migration may have moved it
    since it was loaded (and deleted the object it named). A read served by
    a copy is logged and :data:`~django_attachments.signals.read_fell_back`
    is sent. Without a copy that answers, the primary's error is raised.
    """
    try:
        return get_store(row.storage).open(row.storage_identifiers, start=start, end=end)
    except READ_FAILURES as exc:
        if not fallback or row.pk is None:
            raise
        error: Exception = exc
    if _reload(row):
        try:
            return get_store(row.storage).open(row.storage_identifiers, start=start, end=end)
        except READ_FAILURES as exc:
            error = exc
    for alias, identifiers in list(sources_of(row, besides=row.storage)):
        try:
            stream = get_store(alias).open(identifiers, start=start, end=end)
        except READ_FAILURES as exc:
            logger.warning("The copy of %s %s in storage %r failed too: %s", _kind(row), row.pk, alias, exc)
            continue
        logger.warning(
            "Read %s %s from its copy in storage %r: its storage %r failed: %s",
            _kind(row),
            row.pk,
            alias,
            row.storage,
            error,
        )
        read_fell_back.send(sender=type(row), row=row, storage=alias, error=error)
        return stream
    raise error


def locate(row: Row) -> tuple[BaseStore, Identifiers]:
    """The store and identifiers to read ``row``'s bytes from with ranged reads (analyzers, renderers).

    Its storage, if it has the object; else, as :func:`open_row` does, the
    row read again (a migration may have moved it) and then each copy (the
    fallback is logged and signalled). Raises what the primary raised when
    nothing has the bytes.
    """
    error: Exception
    try:
        store = get_store(row.storage)
        if store.exists(row.storage_identifiers):
            return store, row.storage_identifiers
        error = ObjectMissing(f"Storage {row.storage!r} has no object {row.storage_identifiers.get('name')!r}.")
    except READ_FAILURES as exc:
        error = exc
    if row.pk is None:
        raise error
    if _reload(row):
        try:
            store = get_store(row.storage)
            if store.exists(row.storage_identifiers):
                return store, row.storage_identifiers
        except READ_FAILURES as exc:
            error = exc
    for alias, identifiers in list(sources_of(row, besides=row.storage)):
        try:
            store = get_store(alias)
            if not store.exists(identifiers):
                continue
        except READ_FAILURES:
            continue
        logger.warning("Reading %s %s from its copy in storage %r: %s", _kind(row), row.pk, alias, error)
        read_fell_back.send(sender=type(row), row=row, storage=alias, error=error)
        return store, identifiers
    raise error


def _kind(row: Row) -> str:
    return "variant" if isinstance(row, Variant) else "blob"
