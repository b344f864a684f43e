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
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.http import content_disposition_header

from .. import ingest
from ..conf import app_settings
from ..exceptions import AttachmentError, BlobNotFound, EmptyFile, InvalidSlot, OwnerMismatch, SlotTaken
from ..filenames import sanitize_filename
from ..models import Attachment, Blob
from ..policy import clean_owner_id, clean_text, owner_key, resolve_owner, size_limit
from ..registry import attachment_registry, validate_owner_type
from ..signals import attachment_created, attachment_deleted, blob_created
from ..stores import RangeReader, get_store

logger = logging.getLogger(__name__)

#: How often attach() retries when a concurrent upload or purge changes the
#: blob it is about to reuse or create.
_MAX_ATTEMPTS = 5


def _user_or_none(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


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
    spec, owner = resolve_owner(owner_type, owner_id, tenant=tenant)
    owner_id = owner.id  # canonical: see policy.resolve_owner
    name, description = clean_text(spec, name, description)
    blob_tenant = owner_key(owner.tenant, "tenant", owner_type)
    blob_subject = owner_key(owner.subject, "subject", owner_type)
    source = ingest.as_file(file)
    limit = size_limit(spec)
    declared = ingest.declared_size(source)
    if declared is not None:
        ingest.check_size(declared, limit)  # refuse before reading a byte
    safe_name = sanitize_filename(filename or source.name)
    metadata = {"declared_content_type": content_type or getattr(source, "content_type", None)}

    with ingest.inspect(source, max_size=limit) as inspected:
        if inspected.size == 0 and not app_settings.ALLOW_EMPTY_FILES:
            raise EmptyFile("The file is empty.")
        if inspected.size:  # an empty file has no type to allow or refuse
            ingest.check_content_type(
                inspected.content_type, app_settings.ALLOWED_CONTENT_TYPES, spec.allowed_content_types
            )
        link_args = dict(
            owner_type=owner_type, owner_id=owner_id, name=name, description=description, user=_user_or_none(user)
        )
        store = get_store(app_settings.STORAGE)
        return store_deduplicated(
            store,
            lambda: store.save(
                inspected.file,
                size=inspected.size,
                checksum=inspected.checksum,
                content_type=inspected.content_type,
            ),
            blob_fields=dict(
                checksum=inspected.checksum,
                size=inspected.size,
                content_type=inspected.content_type,
                tenant=blob_tenant,
                subject=blob_subject,
                filename=safe_name,
                metadata=metadata,
            ),
            link_args=link_args,
            discard_on_error=True,
        )


def store_deduplicated(
    store: Any,
    write: Callable[[], dict] | None,
    *,
    written: dict | None = None,
    blob_fields: dict,
    link_args: dict,
    discard_on_error: bool,
) -> Attachment:
    """Link the blob of (tenant, subject) with these bytes, or ``write()`` them and record a new one.

    ``blob_fields`` are the new blob's (checksum, size, content_type, tenant,
    subject, filename, metadata); ``link_args`` the attachment's.

    ``write`` puts the bytes in ``store`` and returns their identifiers; it is
    called only when no blob has the checksum, and at most once. Bytes already
    in the store (a direct upload's) come as ``written`` instead. When a blob
    with the checksum exists (found at once, or committed first by a
    concurrent upload of the same bytes), that blob is linked and our object,
    surplus, is deleted once the link commits. ``discard_on_error`` deletes
    the written object when recording fails (``attach``: the caller still has
    the file; a direct upload keeps its object so the client can complete
    again).
    """
    same_bytes = {key: blob_fields[key] for key in ("tenant", "subject", "checksum")}
    try:
        for _attempt in range(_MAX_ATTEMPTS):
            # Reuse: lock the existing blob so a concurrent purge cannot delete it
            # between this check and the new attachment's commit.
            with transaction.atomic():
                blob = Blob.objects.select_for_update().filter(**same_bytes).first()
                if blob is not None:
                    attachment = _link_locked(blob, **link_args)
            if blob is not None:
                if written is not None and not _same_object(blob, written):
                    transaction.on_commit(functools.partial(_discard, store, written))
                return attachment
            if written is None:
                assert write is not None, "store_deduplicated() needs write() or written"
                written = write()
            attachment = _record_blob(store, written, blob_fields, link_args)
            if attachment is not None:
                return attachment
        raise AttachmentError("Could not store the file: the blob kept changing under concurrent updates; retry.")
    except BaseException:
        if written is not None and discard_on_error:
            # The rows did not commit: the bytes must not outlive them.
            _discard(store, written)
        raise


def _same_object(blob: Blob, identifiers: dict) -> bool:
    return blob.storage == identifiers.get("storage") and blob.storage_identifiers.get("name") == identifiers.get(
        "name"
    )


def _record_blob(store: Any, identifiers: dict, blob_fields: dict, link_args: dict) -> Attachment | None:
    """Insert the blob and its attachment; None if a concurrent upload of the same bytes won the race."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                blob = Blob.objects.create(**blob_fields, storage=store.alias, storage_identifiers=identifiers)
        except IntegrityError:
            keys = {name: blob_fields[name] for name in ("tenant", "subject", "checksum")}
            if not Blob.objects.filter(**keys).exists():
                raise
            return None  # the caller reuses the winner's blob
        blob_created.send(sender=Blob, blob=blob)
        return _link_locked(blob, **link_args)


def _discard(store: Any, identifiers: dict) -> None:
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
) -> Attachment:
    """Link an existing blob to another owner; idempotent.

    The owner must resolve (from ``tenant``, when given), be in the blob's
    tenant and share its subject (else OwnerMismatch), and the owner type's
    limits must accept the blob. ``attachment.was_created`` is False when the
    same link already existed.
    """
    spec, owner = resolve_owner(owner_type, owner_id, tenant=tenant)
    owner_id = owner.id  # canonical: see policy.resolve_owner
    name, description = clean_text(spec, name, description)
    blob_id = _blob_id(blob)
    with transaction.atomic():
        locked = Blob.objects.for_tenant(tenant).select_for_update().filter(pk=blob_id).first()
        if locked is None:
            raise BlobNotFound(f"No blob with id '{blob_id}'.")
        if owner_key(owner.tenant, "tenant", owner_type) != locked.tenant or (
            owner_key(owner.subject, "subject", owner_type) != locked.subject
        ):
            raise OwnerMismatch(f"The {owner_type} {owner_id!r} does not share this file's subject.")
        ingest.check_size(locked.size, size_limit(spec))
        if locked.size:
            ingest.check_content_type(
                locked.content_type, app_settings.ALLOWED_CONTENT_TYPES, spec.allowed_content_types
            )
        return _link_locked(
            locked,
            owner_type=owner_type,
            owner_id=owner_id,
            name=name,
            description=description,
            user=_user_or_none(user),
        )


def _blob_id(blob: Any) -> UUID:
    if isinstance(blob, Blob):
        return blob.pk
    try:
        return blob if isinstance(blob, UUID) else UUID(str(blob))
    except ValueError:
        raise BlobNotFound(f"No blob with id '{blob}'.") from None


def _link_locked(blob: Blob, *, owner_type: str, owner_id: str, name: str, description: str, user: Any) -> Attachment:
    """Get or create the attachment; the caller holds the blob's row lock."""
    lookup = dict(blob=blob, owner_type=owner_type, owner_id=owner_id, name=name)
    attachment = Attachment.objects.filter(**lookup).first()
    if attachment is None:
        try:
            with transaction.atomic():
                attachment = Attachment.objects.create(**lookup, description=description, created_by=user)
        except IntegrityError:
            attachment = Attachment.objects.filter(**lookup).first()
            if attachment is None:
                raise
            attachment.was_created = False
        else:
            attachment.was_created = True
            attachment_created.send(sender=Attachment, attachment=attachment, user=user)
    else:
        attachment.was_created = False
    attachment.blob = blob
    return attachment


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
    owner_id = clean_owner_id(owner_id)
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
        new_name, new_description = clean_text(
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


def open_blob(blob: Blob, *, start: int = 0, end: int | None = None) -> RangeReader:
    """Stream a blob's bytes (``start`` to ``end`` inclusive) from the storage that holds them."""
    return get_store(blob.storage).open(blob.storage_identifiers, start=start, end=end)


def blob_url(blob: Blob, *, as_attachment: bool = True, expires: int | None = None) -> str | None:
    """A signed, expiring download URL, or None where the blob's storage cannot sign one."""
    if expires is None:
        expires = int(app_settings.URL_EXPIRY.total_seconds())
    return get_store(blob.storage).url(
        blob.storage_identifiers,
        expires=expires,
        content_disposition=content_disposition_header(as_attachment, blob.filename),
        content_type=blob.content_type,
    )
