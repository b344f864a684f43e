"""Mirrors: which blobs have a mirror copy due, when a failed one is tried again, and which lack one.

Every new blob and variant is copied to each storage of ``MIRRORS`` by a task
(:data:`django_attachments.tasks.mirror_blob`, enqueued once the row commits),
which calls :func:`.migrating.mirror_blob`. That never fails an upload; a copy
that could not be made is a ``failed``
:class:`~django_attachments.models.Replica` row (no bytes) with its attempts,
error and ``retry_at``. This module answers the questions around it::

    mirroring.wanted(blob_id)         # a copy to make now? (the task's first question)
    mirroring.next_retry(blob_id)     # how long until the task tries a failed copy again (None: not again)
    mirroring.due()                   # blobs with a copy to make now: process_attachments makes them
    mirroring.missing("backup")       # blobs and variants without a copy there: verify_attachments reports them

A blob (or variant) younger than :data:`GRACE` without any row in a mirror is
neither due nor missing: its task may still be running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Window
from django.utils import timezone

from ..conf import app_settings
from ..models import Blob, Replica, Variant

#: How long a new blob (or variant) may lack a mirror copy before it counts as missing one: the task that
#: copies it runs after the upload commits, and may take that long with a large file or a busy worker.
GRACE = timedelta(minutes=1)

#: How early a deferred retry may find its failed copy's ``retry_at`` and still make it.
RETRY_SLACK = timedelta(seconds=5)

#: Blobs and variants listed by :func:`missing` per mirror (all are counted).
MISSING_LISTED = 100


def enabled() -> bool:
    """Whether any mirror is configured."""
    return bool(app_settings.MIRRORS)


def next_retry(blob_id: Any, aliases: Sequence[str] | None = None, *, now: datetime | None = None) -> timedelta | None:
    """How long until the failed mirror copies of one blob (or its variants) are due again; None if never.

    A failed copy is tried again by the task at most ``SCAN_MAX_ATTEMPTS``
    times (the limit of the scan's retries: both wait for a storage or a
    daemon to come back), after ``retry_at``; past that, ``process_attachments``
    tries it once per run, after its ``retry_at``.
    """
    now = now or timezone.now()
    moments = list(
        Replica.objects.filter(
            blob_id=blob_id,
            storage__in=list(app_settings.MIRRORS if aliases is None else aliases),
            state=Replica.FAILED,
            attempts__lt=app_settings.SCAN_MAX_ATTEMPTS,
        ).values_list("retry_at", flat=True)
    )
    if not moments:
        return None
    return max(min(moment or now for moment in moments) - now, timedelta(0))


def wanted(blob_id: Any, aliases: Sequence[str] | None = None, *, now: datetime | None = None) -> bool:
    """Whether one blob has a mirror copy to make now, however young: its task's question.

    A copy, of the blob or of a variant, with no row yet; or a failed one
    whose ``retry_at`` has come (a few seconds early counts: a deferred task
    may run on a machine whose clock is a little behind the one that set it).
    A few look-ups by the blob's id, whatever the number of blobs.
    """
    moment = (now or timezone.now()) + RETRY_SLACK
    aliases = list(app_settings.MIRRORS if aliases is None else aliases)
    blob = Blob.objects.filter(pk=blob_id).values_list("storage", flat=True).first()
    if blob is None or not aliases:
        return False
    # The blob's rows are few: read them all (by the blob's index), and judge here.
    rows = list(
        Replica.objects.filter(blob_id=blob_id, storage__in=aliases).values_list(
            "variant_id", "storage", "state", "retry_at"
        )
    )
    if any(state == Replica.FAILED and (retry is None or retry <= moment) for _, _, state, retry in rows):
        return True
    recorded = {(variant, storage) for variant, storage, _, _ in rows}
    objects = [(None, blob), *Variant.objects.filter(blob_id=blob_id).values_list("pk", "storage")]
    return any(
        alias != storage and (variant, alias) not in recorded for variant, storage in objects for alias in aliases
    )


def due(
    aliases: Sequence[str] | None = None, *, now: datetime | None = None, grace: timedelta = GRACE
) -> QuerySet[Blob]:
    """Blobs with a mirror copy to make now, of the blob or of a variant, in any of ``aliases`` (``MIRRORS``).

    A copy that failed and whose ``retry_at`` has passed (whatever its
    attempts: a run of the command is someone asking); a blob or variant
    older than ``grace`` with no row at all in a mirror (its task was lost:
    a worker died, the backend refused it). One query, whatever the count.
    """
    now = now or timezone.now()
    aliases = list(app_settings.MIRRORS if aliases is None else aliases)
    if not aliases:
        return Blob.objects.none()
    old = now - grace
    # The failed copies due: a list of their blobs (the retry index finds them), not a look-up per blob.
    condition: Any = Q(
        pk__in=Replica.objects.filter(state=Replica.FAILED, storage__in=aliases)
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .values("blob_id")
    )
    for alias in aliases:
        rows = Replica.objects.filter(storage=alias)
        blob_lacks = Q(created_at__lt=old) & ~Q(storage=alias) & ~Exists(rows.of_blobs().filter(blob=OuterRef("pk")))
        variant_lacks = Exists(
            Variant.objects.filter(blob=OuterRef("pk"), created_at__lt=old)
            .exclude(storage=alias)
            .exclude(Exists(rows.filter(variant=OuterRef("pk"))))
        )
        condition |= blob_lacks | variant_lacks
    return Blob.objects.filter(condition)


@dataclass
class Missing:
    """The blobs and variants without a copy in one mirror (a failed attempt's row holds no copy)."""

    storage: str
    blobs: int = 0
    variants: int = 0
    #: Up to the limit asked of each kind: {"kind", "id", "blob", "attempts", "code"} (the last two of a
    #: failed attempt; 0 and "" where none was recorded: its task was lost, or is late).
    listed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.blobs + self.variants

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing(
    alias: str, *, limit: int = MISSING_LISTED, now: datetime | None = None, grace: timedelta = GRACE
) -> Missing:
    """The blobs, and variants, older than ``grace`` that hold no copy in mirror ``alias``.

    Counted whole, listed up to ``limit`` of each kind (in id order), with
    the failed attempt recorded, if any: one query for the blobs and one for
    the variants, whatever their number (the count is a window over the
    same query).
    """
    old = (now or timezone.now()) - grace
    result = Missing(alias)
    held = Replica.objects.held().filter(storage=alias)
    failed = Replica.objects.filter(storage=alias, state=Replica.FAILED)
    kinds: list[tuple[str, QuerySet[Any], Any, str]] = [
        (
            "blob",
            Blob.objects.filter(created_at__lt=old)
            .exclude(storage=alias)
            .exclude(Exists(held.of_blobs().filter(blob=OuterRef("pk")))),
            failed.of_blobs().filter(blob=OuterRef("pk")),
            "pk",
        ),
        (
            "variant",
            Variant.objects.filter(created_at__lt=old)
            .exclude(storage=alias)
            .exclude(Exists(held.filter(variant=OuterRef("pk")))),
            failed.filter(variant=OuterRef("pk")),
            "blob_id",
        ),
    ]
    for kind, queryset, attempt, blob_field in kinds:
        rows = list(
            queryset.order_by("pk")
            .annotate(
                total=Window(expression=Count("pk")),
                attempts=Subquery(attempt.values("attempts")[:1]),
                code=Subquery(attempt.values("error_code")[:1]),
            )
            .values_list("pk", blob_field, "total", "attempts", "code")[:limit]
        )
        setattr(result, f"{kind}s", rows[0][2] if rows else 0)
        result.listed += [
            {"kind": kind, "id": str(pk), "blob": str(blob), "attempts": attempts or 0, "code": code or ""}
            for pk, blob, _, attempts, code in rows
        ]
    return result
