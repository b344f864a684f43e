"""What holds a stored object: the one answer to "may these bytes be deleted?".

Every kind of record that keeps an object in a storage registers a *holder*
here: a function that says which of some object names (of one storage
alias) it references. The stray sweep, the expiry purge and a failed direct
upload all ask :func:`referenced` before deleting, so a new kind of stored
object (a variant, a mirror copy, a multipart part) is never swept as stray
once its holder is registered::

    @register_holder
    def variants(alias, names, besides):
        return Variant.objects.filter(storage=alias).with_object_names(names).values_list("object_name", flat=True)

``besides`` is a record whose own hold is not counted (a ticket deleting its
own object); a holder ignores it unless it is one of its records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..models import Blob, DirectUpload, Replica, Variant

#: (storage alias, object names, a record not to count) -> the names it holds.
Holder = Callable[[str, list[str], Any], Iterable[str]]

_holders: list[Holder] = []


def register_holder(holder: Holder) -> Holder:
    """Count ``holder``'s objects as referenced from now on; usable as a decorator."""
    if holder in _holders:
        raise ValueError(f"{holder!r} is registered already.")
    _holders.append(holder)
    return holder


def unregister_holder(holder: Holder) -> None:
    _holders.remove(holder)


def referenced(alias: str, names: list[str], *, besides: Any = None) -> set[str]:
    """Which of ``names`` (objects of storage ``alias``) any holder references."""
    if not names:
        return set()
    held: set[str] = set()
    for holder in _holders:
        held.update(holder(alias, names, besides))
    return held


@register_holder
def blobs(alias: str, names: list[str], besides: Any) -> Iterable[str]:
    """Every blob holds its object."""
    queryset = Blob.objects.filter(storage=alias).with_object_names(names)
    if isinstance(besides, Blob):
        queryset = queryset.exclude(pk=besides.pk)
    return queryset.values_list("object_name", flat=True)


@register_holder
def pending_uploads(alias: str, names: list[str], besides: Any) -> Iterable[str]:
    """A pending direct upload holds its reserved object, whatever its age: its bytes may be arriving; so
    does one being verified (a multipart upload joined into it and read back)."""
    queryset = DirectUpload.objects.filter(
        storage=alias, status__in=[DirectUpload.PENDING, DirectUpload.VERIFYING]
    ).with_object_names(names)
    if isinstance(besides, DirectUpload):
        queryset = queryset.exclude(pk=besides.pk)
    return queryset.values_list("object_name", flat=True)


@register_holder
def variants(alias: str, names: list[str], besides: Any) -> Iterable[str]:
    """Every variant holds its object."""
    queryset = Variant.objects.filter(storage=alias).with_object_names(names)
    if isinstance(besides, Variant):
        queryset = queryset.exclude(pk=besides.pk)
    return queryset.values_list("object_name", flat=True)


@register_holder
def replicas(alias: str, names: list[str], besides: Any) -> Iterable[str]:
    """A copy in another storage (a mirror's, or one a migration kept) holds its object once it is copied."""
    queryset = Replica.objects.held().filter(storage=alias).with_object_names(names)
    if isinstance(besides, Replica):
        queryset = queryset.exclude(pk=besides.pk)
    return queryset.values_list("object_name", flat=True)
