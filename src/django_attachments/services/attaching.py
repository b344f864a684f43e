"""Putting files in and taking links out: attach, link, update, unlink, and reading bytes back.

Bytes are read once, in chunks; identical bytes are stored once per (tenant,
subject). Bytes are written *before* the row that references them and deleted
if that row cannot be committed, so a failure leaves at most a stray object
(which ``purge_orphan_attachments --stray`` sweeps), never a row without bytes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.http import content_disposition_header

from .. import ingest, policy
from ..conf import app_settings
from ..exceptions import BlobNotFound, InvalidSlot, SlotTaken, TryAgain
from ..filenames import sanitize_filename
from ..models import Attachment, Blob, Variant
from ..registry import Owner, OwnerSpec, attachment_registry, validate_owner_type
from ..signals import attachment_created, attachment_deleted, blob_created
from ..stores import BaseStore, Identifiers, RangeReader, get_store
from . import processing

logger = logging.getLogger(__name__)

#: How often attach() retries when a concurrent upload or purge changes the
#: blob it is about to reuse or create.
_MAX_ATTEMPTS = 5


def _user_or_none(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _answer(attachment: Attachment, created: bool) -> Attachment:
    """The public verbs' return value: the attachment, with ``was_created`` telling which happened."""
    attachment.was_created = created
    return attachment


@dataclass(frozen=True)
class NewBlob:
    """The row of bytes about to be recorded: what was computed from them, and whose they are."""

    checksum: str
    size: int
    content_type: str
    tenant: str
    subject: str
    filename: str
    metadata: dict[str, Any]

    def same_bytes(self) -> dict[str, str]:
        """The look-up of a blob holding these bytes already (unique per tenant and subject)."""
        return {"tenant": self.tenant, "subject": self.subject, "checksum": self.checksum}


@dataclass(frozen=True)
class NewLink:
    """The attachment to make: to which owner, in which slot, under which filename, by whom."""

    owner_type: str
    owner_id: str
    name: str
    description: str
    user: Any
    filename: str = ""


def prepare_link(
    owner_type: str, owner_id: Any, name: Any, description: Any, *, tenant: Any, user: Any
) -> tuple[OwnerSpec, Owner, NewLink]:
    """Resolve the owner (as seen from ``tenant``) and check the slot and description: the link to make."""
    spec, owner = policy.resolve_owner(owner_type, owner_id, tenant=tenant)
    name, description = policy.clean_text(spec, name, description)
    # owner.id is the canonical id: see policy.resolve_owner.
    return spec, owner, NewLink(owner_type, str(owner.id), name, description, _user_or_none(user))


# -- attach and link -----------------------------------------------------------


def attach(
    file: Any,
    *,
    owner_type: str,
    owner_id: Any,
    name: str = "",
    description: str = "",
    tenant: Any = None,
    user: Any = None,
    filename: str | None = None,
    content_type: str | None = None,
) -> Attachment:
    """Store ``file`` (deduplicated) and link it to the owner; return the attachment.

    ``file`` is a Django ``File``/``UploadedFile``, a binary file object or
    bytes. ``filename`` and ``content_type`` default to the file's own; the
    content type is only recorded as declared: the stored one is sniffed.
    Attaching the same bytes to the same owner and slot twice returns the
    existing attachment; ``attachment.was_created`` tells which happened.
    """
    spec, owner, new_link = prepare_link(owner_type, owner_id, name, description, tenant=tenant, user=user)
    blob_tenant, blob_subject = policy.blob_keys(owner_type, owner)
    source = ingest.as_file(file)
    declared = ingest.declared_size(source)
    if declared is not None:
        policy.check_size(spec, declared)  # refuse before reading a byte
    safe_name = sanitize_filename(filename or source.name)
    new_link = replace(new_link, filename=safe_name)  # this upload's name, even when the bytes are known
    metadata = {"declared_content_type": content_type or getattr(source, "content_type", None)}

    with ingest.inspect(source, max_size=policy.size_limit(spec)) as inspected:
        policy.check_file(spec, size=inspected.size, content_type=inspected.content_type)
        write: Callable[[], Identifiers]
        if inspected.streamed is not None:
            # Sent on to the store while the request arrived: joined only if no blob holds these bytes
            # (else inspect() aborts it, and nothing is kept).
            store, write = inspected.streamed.store, inspected.streamed.complete
        else:
            store = get_store(app_settings.STORAGE)
            write = functools.partial(
                store.save,
                inspected.file,
                size=inspected.size,
                checksum=inspected.checksum,
                content_type=inspected.content_type,
            )
        attachment, created = store_and_link(
            store,
            write,
            NewBlob(
                checksum=inspected.checksum,
                size=inspected.size,
                content_type=inspected.content_type,
                tenant=blob_tenant,
                subject=blob_subject,
                filename=safe_name,
                metadata=metadata,
            ),
            new_link,
        )
    return _answer(attachment, created)


def store_and_link(
    store: BaseStore, write: Callable[[], Identifiers], blob: NewBlob, link: NewLink
) -> tuple[Attachment, bool]:
    """Link the blob holding these bytes, or ``write()`` them and record a new blob; (attachment, created).

    ``write`` puts the bytes in ``store`` and returns their identifiers; it is
    called only when no blob holds them, and at most once. Should the rows
    not commit, the written object is deleted (the caller still has the file).
    """
    return _deduplicate(store, blob, link, write=write, written=None, discard_on_error=True)


def adopt_and_link(store: BaseStore, written: Identifiers, blob: NewBlob, link: NewLink) -> tuple[Attachment, bool]:
    """Record bytes already in ``store`` (a direct upload's object) as a blob, and link it; (attachment, created).

    When a blob holds the same bytes already, that blob is linked and the
    object, surplus, is deleted once the link commits. Should the rows not
    commit, the object stays, so that the client can complete again.
    """
    return _deduplicate(store, blob, link, write=lambda: written, written=written, discard_on_error=False)


def _deduplicate(
    store: BaseStore,
    new_blob: NewBlob,
    link: NewLink,
    *,
    write: Callable[[], Identifiers],
    written: Identifiers | None,
    discard_on_error: bool,
) -> tuple[Attachment, bool]:
    """Reuse the blob with these bytes, or write and record them; retried when a race moved them.

    When a blob with the checksum exists (found at once, or committed first
    by a concurrent upload of the same bytes), it is linked and our object,
    if any, is deleted once the link commits.
    """
    try:
        for _attempt in range(_MAX_ATTEMPTS):
            # Reuse: lock the existing blob so a concurrent purge cannot delete it
            # between this check and the new attachment's commit.
            with transaction.atomic():
                blob = Blob.objects.select_for_update().filter(**new_blob.same_bytes()).first()
                if blob is not None:
                    policy.check_available(blob)  # bytes held back are not taken again
                    linked = _link_locked(blob, link)
            if blob is not None:
                if written is not None and not _same_object(blob, written):
                    transaction.on_commit(functools.partial(_discard, store, written))
                return linked
            if written is None:
                written = write()
            recorded = _record_blob(store, written, new_blob, link)
            if recorded is not None:
                return recorded
        raise TryAgain("Could not store the file: the blob kept changing under concurrent updates; retry.")
    except BaseException:
        if written is not None and discard_on_error:
            # The rows did not commit: the bytes must not outlive them.
            _discard(store, written)
        raise


def _same_object(blob: Blob, identifiers: Identifiers) -> bool:
    return blob.storage == identifiers.get("storage") and blob.storage_identifiers.get("name") == identifiers.get(
        "name"
    )


def _record_blob(
    store: BaseStore, identifiers: Identifiers, new_blob: NewBlob, link: NewLink
) -> tuple[Attachment, bool] | None:
    """Insert the blob and its attachment; None if a concurrent upload of the same bytes won the race."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                blob = Blob.objects.create(
                    **asdict(new_blob),
                    **processing.initial_states(new_blob.content_type),
                    storage=store.alias,
                    storage_identifiers=identifiers,
                )
        except IntegrityError:
            if not Blob.objects.filter(**new_blob.same_bytes()).exists():
                raise
            return None  # the caller reuses the winner's blob
        # After commit: a receiver that enqueues work (a scan, a preview) never sees a rolled-back blob.
        transaction.on_commit(functools.partial(_announce, blob))
        return _link_locked(blob, link, new_blob=True)


def _announce(blob: Blob) -> None:
    """Send blob_created for a committed blob; a receiver that fails is logged, and undoes nothing.

    The blob and its bytes are committed: an exception here would reach the
    upload's error handling, which deletes the bytes of a failed upload.
    """
    for receiver, outcome in blob_created.send_robust(sender=Blob, blob=blob):
        if isinstance(outcome, Exception):
            logger.error("A blob_created receiver (%r) failed for blob %s", receiver, blob.pk, exc_info=outcome)


def _discard(store: BaseStore, identifiers: Identifiers) -> None:
    try:
        store.delete(identifiers)
    except Exception:
        logger.exception("Could not delete object %r; it is stray until the next purge --stray.", identifiers)


def link(
    blob: Blob | UUID | str,
    *,
    owner_type: str,
    owner_id: Any,
    name: str = "",
    description: str = "",
    tenant: Any = None,
    user: Any = None,
    filename: str | None = None,
) -> Attachment:
    """Link an existing blob to another owner; idempotent.

    The owner must resolve (from ``tenant``, when given), be in the blob's
    tenant and share its subject (else OwnerMismatch), and the owner type's
    limits must accept the blob. The attachment's filename is ``filename``
    (sanitised) or the blob's. ``attachment.was_created`` is False when the
    same link already existed (it keeps its filename).
    """
    spec, owner, new_link = prepare_link(owner_type, owner_id, name, description, tenant=tenant, user=user)
    blob_id = _blob_id(blob)
    with transaction.atomic():
        locked = Blob.objects.for_tenant(tenant).select_for_update().filter(pk=blob_id).first()
        if locked is None:
            raise BlobNotFound(f"No blob with id '{blob_id}'.")
        policy.check_available(locked)
        policy.check_owner_holds(
            owner_type,
            owner,
            tenant=locked.tenant,
            subject=locked.subject,
            why=f"The {owner_type} {owner.id!r} does not share this file's subject.",
        )
        policy.check_file(spec, size=locked.size, content_type=locked.content_type, field="blob_id")
        link_filename = locked.filename if filename is None else sanitize_filename(filename)
        attachment, created = _link_locked(locked, replace(new_link, filename=link_filename))
    return _answer(attachment, created)


def _blob_id(blob: Any) -> UUID:
    if isinstance(blob, Blob):
        return blob.pk
    try:
        return blob if isinstance(blob, UUID) else UUID(str(blob))
    except ValueError:
        raise BlobNotFound(f"No blob with id '{blob}'.") from None


def _link_locked(blob: Blob, link: NewLink, *, new_blob: bool = False) -> tuple[Attachment, bool]:
    """Get or create the attachment; (attachment, created). The caller holds the blob's row lock.

    ``new_blob``: the blob was created in this transaction (said to ``attachment_created``'s receivers).
    """
    lookup = dict(blob=blob, owner_type=link.owner_type, owner_id=link.owner_id, name=link.name)
    attachment = Attachment.objects.filter(**lookup).first()
    created = False
    if attachment is None:
        try:
            with transaction.atomic():
                attachment = Attachment.objects.create(
                    **lookup, description=link.description, filename=link.filename, created_by=link.user
                )
        except IntegrityError:
            attachment = Attachment.objects.filter(**lookup).first()
            if attachment is None:
                raise
        else:
            created = True
            attachment_created.send(sender=Attachment, attachment=attachment, user=link.user, new_blob=new_blob)
    attachment.blob = blob
    return attachment, created


# -- unlink --------------------------------------------------------------------


def unlink(attachment: Attachment) -> None:
    """Remove one link. The blob stays; once it has no links the purge removes it."""
    with transaction.atomic():
        deleted, _ = Attachment.objects.filter(pk=attachment.pk).delete()
    if deleted:
        attachment_deleted.send(sender=Attachment, attachment=attachment)


def unlink_all_for_owner(owner_type: str, owner_id: Any) -> int:
    """Remove every link of one owner (e.g. from the owner's delete path); return how many.

    Works for owner types that are no longer registered, so consumers can
    clean up after themselves.
    """
    validate_owner_type(owner_type)
    owner_id = policy.clean_owner_id(owner_id)
    with transaction.atomic():
        attachments = list(
            Attachment.objects.select_for_update()
            .filter(owner_type=owner_type, owner_id=owner_id)
            .select_related("blob")
        )
        Attachment.objects.filter(pk__in=[a.pk for a in attachments]).delete()
    for attachment in attachments:
        attachment_deleted.send(sender=Attachment, attachment=attachment)
    return len(attachments)


def update_attachment(attachment: Attachment, *, name: str | None = None, description: str | None = None) -> Attachment:
    """Change an attachment's slot and/or description; the slot is checked against its owner type."""
    new_name = attachment.name if name is None else name
    new_description = attachment.description if description is None else description
    if attachment.owner_type in attachment_registry:
        new_name, new_description = policy.clean_text(
            attachment_registry.get(attachment.owner_type), new_name, new_description
        )
    elif new_name != attachment.name:
        raise InvalidSlot(f"Owner type {attachment.owner_type!r} is no longer registered; its slots cannot change.")
    attachment.name, attachment.description = new_name, new_description
    try:
        with transaction.atomic():
            attachment.save(update_fields=["name", "description"])
    except IntegrityError:
        raise SlotTaken(f"This owner already has this file in slot {new_name!r}.") from None
    return attachment


# -- queries -------------------------------------------------------------------


def attachments_for(tenant: Any) -> QuerySet[Attachment]:
    """Attachments whose blob is in ``tenant`` (every tenant for None), with their blobs."""
    queryset = Attachment.objects.select_related("blob")
    return queryset if tenant is None else queryset.filter(blob__tenant=str(tenant))


# -- reading -------------------------------------------------------------------


def open_blob(blob: Blob | Variant, *, start: int = 0, end: int | None = None, fallback: bool = True) -> RangeReader:
    """Stream a blob's (or a variant's) bytes (``start`` to ``end`` inclusive) from the storage that holds them.

    Where that storage fails or lacks the object, a copy is read instead (a
    mirror's, or one a migration kept; see :func:`.replicas.open_row`),
    unless ``fallback`` is False.
    """
    from .replicas import open_row

    return open_row(blob, start=start, end=end, fallback=fallback)


def blob_url(
    blob: Blob | Variant, *, as_attachment: bool = True, expires: int | None = None, filename: str | None = None
) -> str | None:
    """A signed, expiring download URL, or None where the blob's storage cannot sign one.

    ``filename`` (an attachment's) names the download; the blob's by default.
    """
    if expires is None:
        expires = int(app_settings.URL_EXPIRY.total_seconds())
    return get_store(blob.storage).url(
        blob.storage_identifiers,
        expires=expires,
        content_disposition=content_disposition_header(as_attachment, filename or blob.filename),
        content_type=blob.content_type,
    )
