"""Direct uploads: the client sends the bytes to the storage itself; the server verifies them.

1. :func:`start_upload` checks the owner and the declared size, checksum and
   type exactly as :func:`~.attaching.attach` would. If the tenant already
   holds those bytes for the owner's subject, the attachment is made at once
   and no upload is needed. Otherwise it records a :class:`DirectUpload`
   ticket with an object name the *server* chose; :func:`upload_target` signs
   a request for it (a presigned S3 PUT bound to that key, the exact size,
   the SHA-256 and no-overwrite) where the store can sign one.
2. The client sends the bytes there; where the store cannot sign (local
   disk), the API accepts them itself and hands them to :func:`receive_upload`,
   which streams them into the reserved object, hashing them on the way.
3. :func:`complete_upload` checks the object before any blob exists: it is
   there, has the declared size and SHA-256 (the store's own checksum where
   it computed one, else the object streamed through the hash), and its
   sniffed type (from a ranged read of its first bytes) is allowed. Then the
   usual deduplicated blob + attachment. On any mismatch the object is
   deleted and the ticket fails; completing again answers the same.

Objects of pending tickets are not stray; :func:`~.purging.purge_uploads`
removes tickets past their expiry with their objects.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import IO, Any
from uuid import UUID

from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import ingest, policy
from ..conf import app_settings
from ..exceptions import (
    AttachmentError,
    BlobUnavailable,
    ChecksumRequired,
    FileTooLarge,
    InvalidFile,
    InvalidValue,
    ObjectExists,
    ObjectMissing,
    StorageError,
    TryAgain,
    UploadCancelled,
    UploadClosed,
    UploadExpired,
    UploadFailed,
    UploadMismatch,
    UploadMissing,
    UploadNotFound,
    UploadVerifying,
)
from ..filenames import sanitize_filename
from ..models import Attachment, Blob, DirectUpload
from ..registry import OwnerSpec
from ..stores import BaseStore, Identifiers, UploadTarget, get_store
from . import multipart
from .attaching import NewBlob, NewLink, _answer, _discard, _link_locked, _user_or_none, adopt_and_link, prepare_link
from .holders import referenced

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
#: The largest size a bigint column holds.
_MAX_SIZE = 2**63 - 1


@dataclass(frozen=True)
class StartedUpload:
    """What :func:`start_upload` decided: an attachment made at once, or a ticket to send bytes for."""

    attachment: Attachment | None
    upload: DirectUpload | None


def _now() -> Any:
    return timezone.now()


# -- 1. start ------------------------------------------------------------------


def start_upload(
    *,
    owner_type: str,
    owner_id: Any,
    filename: str,
    size: int,
    checksum: str | None = None,
    name: str = "",
    description: str = "",
    content_type: str | None = None,
    tenant: Any = None,
    user: Any = None,
    may_use_known: Callable[[Blob], bool] | None = None,
) -> StartedUpload:
    """Check a direct upload before any byte is sent; attach known bytes at once, else open a ticket.

    Raises what :func:`~.attaching.attach` raises for the owner, slot, size
    (the declared one) and type (the declared one, when given: the sniffed
    type is checked again on completion), and UploadMismatch when known bytes
    with that checksum have another size.

    Known bytes (a blob of the owner's tenant and subject with that SHA-256)
    are linked at once only where ``may_use_known(blob)`` allows: a checksum
    is no proof of holding the file, and whoever learns a file's hash must not
    get its bytes attached to an owner they can see. The API allows it when
    the caller may already view an attachment of that blob; otherwise it asks
    for the bytes, and completion deduplicates once they are verified — and
    says nothing of the known blob meanwhile (its size or type), so the
    answer is no oracle either. ``None`` (Python callers, trusted) allows it.
    """
    spec, owner, link = prepare_link(owner_type, owner_id, name, description, tenant=tenant, user=user)
    blob_tenant, blob_subject = policy.blob_keys(owner_type, owner)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
        raise InvalidValue(f"size must be a whole number of bytes, not {size!r}.", field="size")
    in_parts = size > app_settings.MULTIPART_THRESHOLD
    if checksum is None or checksum == "":
        if not in_parts:
            raise ChecksumRequired(
                f"checksum (the file's SHA-256) is required for files up to {app_settings.MULTIPART_THRESHOLD} "
                "bytes, which are sent in one request.",
                threshold=app_settings.MULTIPART_THRESHOLD,
            )
        checksum = ""
    elif not isinstance(checksum, str) or not _SHA256.fullmatch(checksum):
        raise InvalidValue("checksum must be a SHA-256 digest in hexadecimal (64 characters).", field="checksum")
    checksum = checksum.lower()
    if not isinstance(filename, str):
        raise InvalidValue("filename must be a string.", field="filename")
    declared_type = (content_type or "").split(";", 1)[0].strip().lower()
    if declared_type and not _MIME_TYPE.fullmatch(declared_type):
        raise InvalidValue(
            f"content_type must be a MIME type such as 'application/pdf', not {content_type!r}.", field="content_type"
        )
    # Refuse early what the sniffed type will refuse anyway; there is no "file" field here to name.
    policy.check_file(spec, size=size, content_type=declared_type or None, field="size")

    with transaction.atomic():
        # Known bytes: link them now (locked, so a purge cannot take the blob meanwhile).
        blob = (
            Blob.objects.select_for_update().filter(tenant=blob_tenant, subject=blob_subject, checksum=checksum).first()
            if checksum
            else None
        )
        if blob is not None and (may_use_known is None or may_use_known(blob)):
            policy.check_available(blob)
            if blob.size != size:
                raise UploadMismatch(
                    f"A file with this checksum has {blob.size} bytes, not {size}.", code="size_mismatch"
                )
            policy.check_file(spec, size=blob.size, content_type=blob.content_type, field="size")
            attachment, created = _link_locked(blob, replace(link, filename=sanitize_filename(filename)))
            return StartedUpload(attachment=_answer(attachment, created), upload=None)

    store = get_store(app_settings.STORAGE)
    identifiers = store.reserve()
    multipart_id, part_size = "", None
    if in_parts and store.can_multipart:
        multipart_id, part_size = multipart.begin(store, identifiers, size)
    elif store.max_upload_target_size is not None and size > store.max_upload_target_size and store.can_sign_uploads:
        raise FileTooLarge(
            f"Direct uploads to this storage take at most {store.max_upload_target_size} bytes; "
            "upload larger files through the API.",
            limit=store.max_upload_target_size,
        )
    elif not checksum:
        raise ChecksumRequired("checksum (the file's SHA-256) is required by this storage.")
    upload = DirectUpload.objects.create(
        owner_type=link.owner_type,
        owner_id=link.owner_id,
        name=link.name,
        description=link.description,
        tenant=blob_tenant,
        subject=blob_subject,
        filename=sanitize_filename(filename),
        declared_content_type=declared_type,
        size=size,
        checksum=checksum,
        storage=store.alias,
        storage_identifiers=identifiers,
        multipart_id=multipart_id,
        part_size=part_size,
        created_by=link.user,
        expires_at=_now() + app_settings.UPLOAD_EXPIRY,
    )
    return StartedUpload(attachment=None, upload=upload)


def upload_target(upload: DirectUpload) -> UploadTarget | None:
    """The signed request the client sends the bytes with, or None where the store cannot sign.

    Valid until the ticket expires.
    """
    store = get_store(upload.storage)
    if not store.can_sign_uploads or upload.is_multipart:
        return None
    remaining = max(1, int((upload.expires_at - _now()).total_seconds()))
    return store.upload_target(
        upload.storage_identifiers, size=upload.size, checksum=upload.checksum, expires=remaining
    )


def get_upload(upload_id: Any, *, tenant: Any = None) -> DirectUpload:
    """The ticket, as seen from ``tenant``: UploadNotFound for another tenant's, as for none."""
    upload = DirectUpload.objects.for_tenant(tenant).filter(pk=_upload_id(upload_id)).first()
    if upload is None:
        raise UploadNotFound(f"No upload with id '{upload_id}'.")
    return upload


def _upload_id(upload_id: Any) -> UUID:
    try:
        return upload_id if isinstance(upload_id, UUID) else UUID(str(upload_id))
    except ValueError:
        raise UploadNotFound(f"No upload with id '{upload_id}'.") from None


# -- 2. receive (stores that cannot sign) --------------------------------------


def receive_upload(upload: DirectUpload, stream: IO[bytes], *, length: int) -> None:
    """Write ``length`` bytes from ``stream`` into the upload's reserved object, hashing them on the way.

    For stores that cannot sign an upload URL; the API's own upload URL calls
    this. Memory stays at one chunk: the bytes go through a temporary file,
    which local disk then moves into place. A body of another length than
    declared is refused before it is read, as S3 refuses a presigned PUT whose
    signed length differs; everything else is checked on completion, the same
    for every store.
    """
    if length < 0:
        raise InvalidValue(f"The length of the body must not be negative, not {length}.", field="length")
    if upload.status != DirectUpload.PENDING:
        raise UploadClosed(f"This upload is {upload.status}; it takes no more bytes.")
    if upload.expires_at <= _now():
        raise UploadExpired("This upload has expired; start a new one.")
    if upload.is_multipart:
        raise UploadClosed("This upload is sent in parts, each to its own URL; ask for them at its parts URL.")
    if length != upload.size:
        # As S3 refuses a presigned PUT whose signed Content-Length differs: the ticket stays usable.
        raise UploadMismatch(
            f"The body has {length} bytes; {upload.size} were declared. Send exactly the declared bytes.",
            code="size_mismatch",
        )
    store = get_store(upload.storage)
    if store.exists(upload.storage_identifiers):
        raise UploadClosed("The bytes of this upload were already received; complete it.", code="upload_exists")
    with spool_body(stream, length, "upload") as (spool, digest):
        # Putting the bytes in place and recording them is one step under the
        # ticket's lock, which completion takes too: it sees either no object, or
        # the object with its checksum, never our object before we recorded it. A
        # second PUT waits here, then finds the object and keeps nothing.
        with transaction.atomic():
            ticket = _lock_ticket(upload.pk)
            if ticket is None or ticket.status != DirectUpload.PENDING:
                raise UploadClosed("This upload was closed while its bytes arrived; nothing was kept.")
            if store.exists(ticket.storage_identifiers):
                raise UploadClosed("The bytes of this upload were already received; complete it.", code="upload_exists")
            try:
                store.save(
                    spool,
                    size=digest.size,
                    checksum=digest.checksum,
                    content_type="application/octet-stream",
                    name=store.name_of(ticket.storage_identifiers),
                )
            except ObjectExists:
                raise UploadClosed(
                    "The bytes of this upload were already received; complete it.", code="upload_exists"
                ) from None
            except StorageError:
                # Whatever the failed write left under the reserved name (a partial copy,
                # or all of it) is ours: the name was free a moment ago, under this lock.
                # Remove it, so that the ticket takes the bytes again.
                _discard_unreferenced(store, ticket)
                raise
            # Should this not commit, the object stays: completion then hashes it
            # (nothing unverified becomes a blob), and the expiry purge removes it.
            ticket.received_checksum = digest.checksum
            ticket.save(update_fields=["received_checksum"])


@contextmanager
def spool_body(stream: IO[bytes], length: int, name: str) -> Iterator[tuple[TemporaryUploadedFile, ingest.Digest]]:
    """``length`` bytes of a request body in a temporary file, hashed on the way: memory stays at one chunk.

    InvalidFile when the body cannot be read or ends early (nothing is kept).
    """
    hasher = ingest.Hasher()
    with TemporaryUploadedFile(name, "application/octet-stream", length, None) as spool:
        remaining = length
        while remaining:
            try:
                chunk = stream.read(min(app_settings.CHUNK_SIZE, remaining))
            except OSError as exc:
                raise InvalidFile(f"Could not read the body: {exc}") from exc
            if not chunk:
                break
            hasher.update(chunk)
            spool.write(chunk)
            remaining -= len(chunk)
        digest = hasher.digest()
        if digest.size != length:
            raise InvalidFile(f"The body ended after {digest.size} of its {length} bytes; nothing was kept.")
        spool.flush()
        yield spool, digest


def _lock_ticket(pk: Any, tenant: Any = None) -> DirectUpload | None:
    """Lock the ticket's row for this transaction and read it; None when there is none (for ``tenant``).

    The lock is taken by a write, not only ``SELECT ... FOR UPDATE``: SQLite
    ignores ``FOR UPDATE``, but a transaction whose first statement writes takes
    the database's write lock at once, so two of them wait for each other
    instead of one failing with "database is locked" when it upgrades a read.
    On other databases the write locks the row, as ``FOR UPDATE`` would.
    """
    if not DirectUpload.objects.filter(pk=pk).update(status=F("status")):
        return None
    return DirectUpload.objects.select_for_update().for_tenant(tenant).filter(pk=pk).first()


def _discard_unreferenced(store: BaseStore, ticket: DirectUpload) -> None:
    """Delete a ticket's object, unless something else holds it (a blob: then it is not the ticket's to delete)."""
    name = ticket.storage_identifiers.get("name")
    if name not in referenced(store.alias, [name], besides=ticket):
        _discard(store, ticket.storage_identifiers)
    multipart.abandon(store, ticket)


# -- 3. complete -----------------------------------------------------------------


@dataclass(frozen=True)
class _Verified:
    size: int
    checksum: str
    content_type: str
    identifiers: Identifiers


# The multipart uploads a verification run in this context recorded: upload id -> whether its attachment is
# new. A completion collects them while it runs, so that only the request whose own (inline) verification
# created the attachment answers "created"; a request racing it, and every poll, answers with the one made.
_RECORDED_HERE: ContextVar[dict[str, bool] | None] = ContextVar("django_attachments_recorded_here", default=None)


def complete_upload(upload_id: Any, *, tenant: Any = None, user: Any = None, checksum: str | None = None) -> Attachment:
    """Verify the upload's object and record it: the attachment (``was_created`` tells if new).

    Raises UploadNotFound; UploadMissing while no bytes have arrived (the
    ticket stays open; PartsMissing for a multipart upload lacking parts);
    UploadFailed when they are not what was declared, the type is refused,
    the owner is gone or the ticket expired (the object is deleted, the
    ticket closed, and completing again raises the same). A completed ticket
    answers its attachment again.

    A multipart upload (see :mod:`.multipart`) is verified by a task, which
    reads the object back: this raises UploadVerifying until it has run
    (at once, with an inline task backend). ``checksum``, the whole file's
    SHA-256, may be given here when it was not at the start.
    """
    recorded: dict[str, bool] = {}
    token = _RECORDED_HERE.set(recorded)
    try:
        return _complete(upload_id, tenant, user, checksum, recorded)
    finally:
        _RECORDED_HERE.reset(token)


def _complete(upload_id: Any, tenant: Any, user: Any, checksum: str | None, recorded: dict[str, bool]) -> Attachment:
    pk = _upload_id(upload_id)
    if checksum is not None and (not isinstance(checksum, str) or not _SHA256.fullmatch(checksum)):
        raise InvalidValue("checksum must be a SHA-256 digest in hexadecimal (64 characters).", field="checksum")
    declared = checksum.lower() if checksum else None
    failure: UploadFailed | None = None
    # A multipart upload's parts, asked of the storage before the ticket is locked (SQLite's lock is the
    # whole database's): a request to S3, or more for thousands of parts.
    peek = DirectUpload.objects.for_tenant(tenant).filter(pk=pk).first()
    listed = peek is not None and peek.is_multipart and peek.status == DirectUpload.PENDING
    held = multipart.list_held(peek) if listed and peek is not None else None
    with transaction.atomic():
        # The row lock makes a second completion of the same ticket, or a PUT of its
        # bytes (receive_upload), wait; a second completion then answers from the first.
        upload = _lock_ticket(pk, tenant)
        if upload is None:
            raise UploadNotFound(f"No upload with id '{upload_id}'.")
        if upload.status == DirectUpload.COMPLETED:
            attachment = _completed(upload)
            if declared and attachment.blob.checksum != declared:
                raise UploadMismatch(
                    f"This upload was completed with bytes of SHA-256 {attachment.blob.checksum}, not {declared}.",
                    code="checksum_mismatch",
                )
            return attachment
        if upload.status == DirectUpload.FAILED:
            raise UploadFailed(upload.error, code=upload.error_code)
        if upload.status == DirectUpload.VERIFYING:
            if declared and upload.checksum and declared != upload.checksum:
                raise InvalidValue(
                    f"The checksum {declared} differs from the {upload.checksum} declared before.", field="checksum"
                )
            if declared and not upload.checksum:  # checked when the verification records the upload
                upload.checksum = declared
                upload.save(update_fields=["checksum"])
            multipart.nudge(upload)
        else:
            store = get_store(upload.storage)
            if declared and upload.checksum and declared != upload.checksum and not upload.is_multipart:
                raise InvalidValue(
                    f"The checksum {declared} differs from the {upload.checksum} declared when the upload began.",
                    field="checksum",
                )
            try:
                if upload.expires_at <= _now():
                    raise UploadExpired("This upload expired before it was completed; start a new one.")
                spec = _check_owner(upload, tenant)
                if upload.is_multipart:
                    # Not pending a moment ago (a verification that found parts gone reopened it): ask now.
                    multipart.receive_all(upload, declared, held if listed else multipart.list_held(upload))
                else:
                    verified = _verify(store, upload, spec)
            except (UploadMissing, StorageError, InvalidValue):
                raise  # nothing to undo: the ticket stays open (a storage failure: the client may retry)
            except AttachmentError as exc:
                failure = _fail(store, upload, exc)
            else:
                if not upload.is_multipart:
                    try:
                        attachment, created = _record(store, upload, verified, user)
                    except BlobUnavailable as exc:  # the same bytes, held back: these are no better
                        failure = _fail(store, upload, exc)
                    else:
                        return _answer(attachment, created)
    if failure is not None:
        raise failure
    # A multipart upload: its verification was announced on commit; an inline task backend has run it.
    upload.refresh_from_db()
    if upload.status == DirectUpload.COMPLETED:
        attachment = _completed(upload)
        return _answer(attachment, recorded.get(str(upload.pk), False))
    if upload.status == DirectUpload.FAILED:
        raise UploadFailed(upload.error, code=upload.error_code)
    if upload.status == DirectUpload.PENDING:  # the verification found parts gone: send them again
        return complete_upload(pk, tenant=tenant, user=user)
    raise UploadVerifying(
        "All the parts are there; the file is being verified. Complete again in a moment.", upload=upload
    )


def _check_owner(upload: DirectUpload, tenant: Any) -> OwnerSpec:
    """The owner still resolves (for ``tenant``) and still holds the upload's tenant and subject; its spec."""
    spec, owner = policy.resolve_owner(upload.owner_type, upload.owner_id, tenant=tenant)
    policy.check_owner_holds(
        upload.owner_type,
        owner,
        tenant=upload.tenant,
        subject=upload.subject,
        why=f"The {upload.owner_type} {upload.owner_id!r} changed tenant or subject since the upload began.",
    )
    return spec


def _record(store: BaseStore, upload: DirectUpload, verified: _Verified, user: Any) -> tuple[Attachment, bool]:
    """Under the ticket's lock: the blob (deduplicated) and the attachment of verified bytes; the ticket completed."""
    new_blob = NewBlob(
        checksum=verified.checksum,
        size=verified.size,
        content_type=verified.content_type,
        tenant=upload.tenant,
        subject=upload.subject,
        filename=upload.filename,
        metadata={
            "declared_content_type": upload.declared_content_type or None,
            "direct_upload": str(upload.pk),
        },
    )
    link = NewLink(
        owner_type=upload.owner_type,
        owner_id=upload.owner_id,
        name=upload.name,
        description=upload.description,
        user=_user_or_none(user) or upload.created_by,
        filename=upload.filename,
    )
    attachment, created = adopt_and_link(store, verified.identifiers, new_blob, link)
    upload.status, upload.attachment, upload.completed_at = DirectUpload.COMPLETED, attachment, _now()
    upload.claim_token = ""
    upload.save(update_fields=["status", "attachment", "completed_at", "claim_token"])
    return attachment, created


def finish_verified(
    upload_id: Any,
    token: str,
    read: multipart.ReadBack | AttachmentError,
    *,
    on_retry: Callable[[], None] | None = None,
) -> multipart.VerifyOutcome:
    """Record a multipart upload read back by the verification holding claim ``token``, or fail its ticket.

    The same checks as a single upload's completion (the owner, the declared
    size and SHA-256, the sniffed type), then the same recording.
    """
    failure: AttachmentError | None = None
    retry: AttachmentError | None = None
    created = False
    with transaction.atomic():
        upload = _lock_ticket(upload_id)
        if upload is None or upload.status != DirectUpload.VERIFYING or upload.claim_token != token:
            return multipart.VerifyOutcome(str(upload_id), "busy")
        store = get_store(upload.storage)
        try:
            if isinstance(read, AttachmentError):
                raise read
            spec = _check_owner(upload, None)
            if read.size != upload.size:
                raise UploadMismatch(
                    f"The storage holds {read.size} bytes for this upload; {upload.size} were declared.",
                    code="size_mismatch",
                )
            if upload.checksum and read.checksum != upload.checksum:
                raise UploadMismatch(
                    f"The bytes received have SHA-256 {read.checksum}, not the {upload.checksum} declared.",
                    code="checksum_mismatch",
                )
            policy.check_file(spec, size=read.size, content_type=None)
            content_type = ingest.sniff(read.head)
            policy.check_content_type(spec, content_type, size=read.size)
            verified = _Verified(read.size, read.checksum, content_type, read.identifiers)
            with transaction.atomic():  # a savepoint: a failed recording leaves the ticket as it was
                _, created = _record(store, upload, verified, None)
        except (TryAgain, StorageError) as exc:  # for now (a concurrent upload of the same bytes): again later
            retry = exc
        except AttachmentError as exc:
            failure = exc
            _fail(store, upload, exc)
        else:
            transaction.on_commit(functools.partial(multipart.abandon, store, upload))
    if retry is not None:
        logger.warning("Recording direct upload %s failed for now; it will be retried: %s", upload_id, retry)
        if on_retry is not None:
            on_retry()
        return multipart.VerifyOutcome(str(upload_id), "retry", str(retry))
    if failure is not None:
        return multipart.VerifyOutcome(str(upload_id), "failed", f"{failure.code}: {failure}")
    here = _RECORDED_HERE.get()
    if here is not None:  # run inline by a completion (committed now): that request made the attachment
        here[str(upload.pk)] = created
    return multipart.VerifyOutcome(str(upload_id), "completed")


def cancel_upload(upload_id: Any, *, tenant: Any = None) -> DirectUpload:
    """Cancel a pending upload at its client's request: the ticket fails (``upload_cancelled``), its bytes go.

    UploadClosed for one that is verifying, completed or failed already.
    """
    with transaction.atomic():
        upload = _lock_ticket(_upload_id(upload_id), tenant)
        if upload is None:
            raise UploadNotFound(f"No upload with id '{upload_id}'.")
        if upload.status != DirectUpload.PENDING:
            state = {DirectUpload.VERIFYING: "being verified"}.get(upload.status, f"already {upload.status}")
            raise UploadClosed(f"This upload is {state}; it cannot be cancelled.")
        _fail(get_store(upload.storage), upload, UploadCancelled("The upload was cancelled by its client."))
    return upload


def _fail(store: BaseStore, upload: DirectUpload, exc: AttachmentError) -> UploadFailed:
    """Close the ticket as failed because of ``exc``; its object goes once that commits. The error to raise."""
    failure = UploadFailed.because(exc)
    upload.status, upload.error_code, upload.error = DirectUpload.FAILED, failure.code, str(exc)
    upload.completed_at = _now()
    upload.save(update_fields=["status", "error_code", "error", "completed_at"])
    transaction.on_commit(functools.partial(_discard_unreferenced, store, upload))
    return failure


def _completed(upload: DirectUpload) -> Attachment:
    attachment = upload.attachment
    if attachment is None:
        raise UploadClosed("This upload was completed, but its attachment has since been removed.")
    return _answer(attachment, False)


def _verify(store: BaseStore, upload: DirectUpload, spec: OwnerSpec) -> _Verified:
    """Check the object against the ticket: exists, size, SHA-256, sniffed type."""
    try:
        stat = store.stat(upload.storage_identifiers)
    except ObjectMissing:
        raise UploadMissing(
            "No bytes have arrived for this upload yet; send them to its URL, then complete it."
        ) from None
    if stat.size != upload.size:
        raise UploadMismatch(
            f"The storage holds {stat.size} bytes for this upload; {upload.size} were declared.", code="size_mismatch"
        )
    policy.check_file(spec, size=stat.size, content_type=None)  # before a byte is read
    # A checksum the backend computed itself (S3 checks the signed one against the
    # body), or the one taken while the API wrote the bytes: then only the head is read.
    known = stat.checksum or upload.received_checksum or None
    try:
        if known is not None:
            head = _read_head(store, stat.identifiers, stat.size)
            checksum, size = known, stat.size
        else:
            checksum, size, head = _hash_object(store, stat.identifiers)
    except ObjectMissing:
        raise UploadMissing("The bytes of this upload vanished while they were being checked.") from None
    if size != upload.size:
        raise UploadMismatch(
            f"The storage holds {size} bytes for this upload; {upload.size} were declared.", code="size_mismatch"
        )
    if checksum != upload.checksum:
        raise UploadMismatch(
            f"The bytes received have SHA-256 {checksum}, not the {upload.checksum} declared.",
            code="checksum_mismatch",
        )
    content_type = ingest.sniff(head)
    policy.check_content_type(spec, content_type, size=size)
    return _Verified(size=size, checksum=checksum, content_type=content_type, identifiers=stat.identifiers)


def _read_head(store: BaseStore, identifiers: Identifiers, size: int) -> bytes:
    if size == 0:
        return b""
    end = min(size, app_settings.SNIFF_BYTES) - 1
    head = bytearray()
    with store.open(identifiers, start=0, end=end) as stream:
        for chunk in stream.chunks():
            head += chunk
    return bytes(head)


def _hash_object(store: BaseStore, identifiers: Identifiers) -> tuple[str, int, bytes]:
    hasher = ingest.Hasher(app_settings.SNIFF_BYTES)
    with store.open(identifiers) as stream, ingest.read_ahead(stream.chunks()) as chunks:
        for chunk in chunks:
            hasher.update(chunk)
    digest = hasher.digest()
    return digest.checksum, digest.size, digest.head
