"""Every error django_attachments raises, under one root.

Catch :class:`AttachmentError` to handle them all, or the builtin / Django type
each one also is, so generic handlers keep working::

    try:
        services.attach(upload, owner_type="plan_item", owner_id=pk, tenant=clinic_id)
    except OwnerNotFound:          # also an ObjectDoesNotExist
        raise Http404
    except AttachmentError as exc:  # size, type, slot, ... all ValueErrors
        return JsonResponse({"code": exc.code, "detail": exc.public_detail or str(exc)}, status=exc.status_code)

Each error carries what an HTTP answer needs, the way DRF's ``APIException``
subclasses do: a stable ``code`` clients can branch on, a ``status_code``
hint, and the request ``field`` at fault where there is one. The API turns
them into answers without knowing the classes (``api/errors.py``).

A misconfiguration (:class:`AttachmentsImproperlyConfigured`) is *not* an
``AttachmentError``: it is the project's bug, never the caller's, so no
handler of user errors may answer it as a 4xx or show it to a user.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, PermissionDenied

#: Every error code -> its HTTP status, collected from the classes below.
_STATUS_BY_CODE: dict[str, int] = {}


def status_for(code: str, default: int = 400) -> int:
    """The HTTP status of errors with ``code`` (for a failure recorded by its code alone)."""
    return _STATUS_BY_CODE.get(code, default)


class AttachmentError(Exception):
    """Root of every error raised by django_attachments, except configuration errors."""

    #: A word clients branch on; stable across releases.
    code: str = "attachment_error"
    #: The HTTP status the API answers with: a server error unless a subclass says whose fault it is.
    status_code: int = 500
    #: The request field at fault (the API names it in its body), or None.
    field: str | None = None
    #: What a client is told instead of the message, where the message is for the logs only
    #: (a storage's error may name buckets, keys and hosts). None: the message itself.
    public_detail: str | None = None
    #: Further codes an instance may carry, with this class's status.
    other_codes: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = ([cls.__dict__["code"]] if "code" in cls.__dict__ else []) + list(cls.__dict__.get("other_codes", ()))
        for code in own:
            known = _STATUS_BY_CODE.setdefault(code, cls.status_code)
            if known != cls.status_code:  # one code, one status: clients branch on either
                raise TypeError(f"Error code {code!r} has status {known} already, not {cls.status_code}.")

    def __init__(self, message: str = "", *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if field is not None:
            self.field = field

    def extra(self) -> dict[str, Any]:
        """Facts a client acts on beside ``code``, added to the API's error body (e.g. the parts missing)."""
        return {}


_STATUS_BY_CODE[AttachmentError.code] = AttachmentError.status_code


class AttachmentsImproperlyConfigured(ImproperlyConfigured):
    """A setting, storage or registration is wrong; the message names what to fix.

    Deliberately outside :class:`AttachmentError` (as django-anymail keeps its
    configuration error outside its root error): it is never a client's fault.
    """


# --- the owner registry -----------------------------------------------------


class InvalidOwnerType(AttachmentError, ValueError):
    """An owner type is empty, too long or uses characters outside ``[a-z0-9_.-]``."""

    code = "unknown_owner_type"
    status_code = 400
    field = "owner_type"


class AlreadyRegistered(AttachmentError, ValueError):
    """An owner type is registered twice."""

    code = "already_registered"
    status_code = 400


class UnknownOwnerType(AttachmentError, LookupError):
    """No owner type of that name is registered."""

    code = "unknown_owner_type"
    status_code = 400
    field = "owner_type"


class OwnerNotFound(AttachmentError, ObjectDoesNotExist):
    """The owner does not exist, or is not visible from the caller's tenant.

    Both cases raise the same error on purpose: a caller must not learn that
    another tenant's owner exists.
    """

    code = "owner_not_found"
    status_code = 400
    field = "owner_id"


class OwnerMismatch(AttachmentError, ValueError):
    """The owner's tenant or subject differs from the blob's."""

    code = "owner_mismatch"
    status_code = 400
    field = "owner_id"


class NoTenant(AttachmentError, PermissionDenied):
    """``TENANT_RESOLVER`` names no tenant for the caller, who may therefore see no files at all."""

    code = "no_tenant"
    status_code = 403


# --- the file ---------------------------------------------------------------


class BlobNotFound(AttachmentError, ObjectDoesNotExist):
    """The blob does not exist, or is not visible from the caller's tenant."""

    code = "blob_not_found"
    status_code = 404


class TryAgain(AttachmentError):
    """Concurrent changes kept moving what the call was about (e.g. the blob of the same bytes): retry."""

    code = "try_again"
    status_code = 503


class BlobUnavailable(AttachmentError):
    """The blob exists but may not be served, linked or deduplicated against now (see ``Blob.is_available``)."""

    code = "blob_unavailable"
    status_code = 409


class Quarantined(BlobUnavailable):
    """The malware scanner found something in the blob: it is never served, linked or deduplicated against."""

    code = "quarantined"
    public_detail = "The malware scanner found a threat in this file; it is quarantined and cannot be used."


class ScanPending(BlobUnavailable):
    """The blob is not scanned yet (or its scan is being retried), and only clean files are served."""

    code = "scan_pending"
    public_detail = "This file has not been scanned for malware yet; try again shortly."


class ScanFailed(BlobUnavailable):
    """The blob's scan failed for good (too large for the scanner, or out of retries); only clean files are served.

    Nothing retries it by itself: staff run ``process_attachments`` once the
    scanner is fixed (or its limit raised).
    """

    code = "scan_failed"
    public_detail = "This file could not be scanned for malware, so it is not served; ask an administrator."


class VariantNotFound(AttachmentError, ObjectDoesNotExist):
    """No variant of that name is declared for the attachment's owner type."""

    code = "variant_not_found"
    status_code = 404


class PreviewUnavailable(AttachmentError):
    """The variant cannot be made right now (the storage failed, no worker took it); ``retry_after`` seconds."""

    code = "preview_unavailable"
    status_code = 503

    def __init__(self, message: str = "", *, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(1, int(retry_after))


class NoPreview(AttachmentError, LookupError):
    """The variant cannot be made of this file: no renderer reads its type, or the renderer refused it.

    The message says why (written to be shown). It stays so until the
    variant's spec or the renderer changes.
    """

    code = "no_preview"
    status_code = 404


class InvalidFile(AttachmentError, ValueError):
    """The object given as a file cannot be read as bytes."""

    code = "invalid_file"
    status_code = 400
    field = "file"


class FileTooLarge(AttachmentError, ValueError):
    """The file is larger than the limit that applies to it."""

    code = "file_too_large"
    status_code = 413

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class RequestTooLarge(AttachmentError, ValueError):
    """A request body larger than the endpoint takes, refused before it is read."""

    code = "request_too_large"
    status_code = 413

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class EmptyFile(AttachmentError, ValueError):
    """The file has no bytes and empty files are not allowed."""

    code = "invalid_file"
    status_code = 400
    field = "file"


class ContentTypeNotAllowed(AttachmentError, ValueError):
    """The sniffed content type is outside the allow-list that applies."""

    code = "unsupported_file_type"
    status_code = 415

    def __init__(self, message: str, *, content_type: str) -> None:
        super().__init__(message)
        self.content_type = content_type


class InvalidSlot(AttachmentError, ValueError):
    """The attachment's ``name`` (slot) is not one the owner type allows."""

    code = "invalid_slot"
    status_code = 400
    field = "name"


class InvalidValue(AttachmentError, ValueError):
    """An identifier or text field has the wrong shape or length; ``field`` names it."""

    code = "invalid"
    status_code = 400


class ChecksumRequired(InvalidValue):
    """A direct upload sent in one request must declare its SHA-256 (``multipart_threshold``: above it, not)."""

    code = "checksum_required"
    field = "checksum"

    def __init__(self, message: str, *, threshold: int | None = None) -> None:
        super().__init__(message)
        self.threshold = threshold

    def extra(self) -> dict[str, Any]:
        return {} if self.threshold is None else {"multipart_threshold": self.threshold}


class SlotTaken(AttachmentError, ValueError):
    """The owner already has this file in that slot."""

    code = "slot_taken"
    status_code = 400
    field = "name"


# --- direct uploads ---------------------------------------------------------


class UploadNotFound(AttachmentError, ObjectDoesNotExist):
    """The direct upload does not exist, or is not visible from the caller's tenant."""

    code = "upload_not_found"
    status_code = 404


class DirectUploadError(AttachmentError, ValueError):
    """A direct upload cannot go on; ``code`` says why, in a word clients can branch on."""

    code = "upload_failed"
    status_code = 400


class UploadExpired(DirectUploadError):
    """The upload's ticket expired before it was completed."""

    code = "upload_expired"
    status_code = 410


class UploadMissing(DirectUploadError):
    """No bytes have arrived for the upload yet. The ticket stays open: send them, then complete."""

    code = "upload_missing"


class UploadMismatch(DirectUploadError):
    """The bytes received are not the ones declared (``size_mismatch``, ``checksum_mismatch``)."""

    other_codes = ("size_mismatch", "checksum_mismatch")


class UploadClosed(DirectUploadError):
    """The upload is already completed or failed (``upload_closed``), or has its bytes (``upload_exists``)."""

    code = "upload_closed"
    status_code = 409
    other_codes = ("upload_exists",)


class PartsMissing(UploadMissing):
    """A multipart upload was completed while the storage lacks some of its parts (``missing``).

    The ticket stays open: send those parts, then complete again.
    """

    code = "parts_missing"

    def __init__(self, message: str, *, missing: list[int]) -> None:
        super().__init__(message)
        self.missing = missing

    def extra(self) -> dict[str, Any]:
        return {"missing": self.missing}


class PartMismatch(UploadMismatch):
    """A part the storage holds is not the one its request was signed for (length or SHA-256); ``number`` names it."""

    code = "part_mismatch"

    def __init__(self, message: str, *, number: int | None = None) -> None:
        super().__init__(message)
        self.number = number

    def extra(self) -> dict[str, Any]:
        return {} if self.number is None else {"part": self.number}


class PartConflict(DirectUploadError):
    """A part's SHA-256 is fixed once a request was signed for it: asking again with another is refused."""

    code = "part_conflict"
    status_code = 409


class UploadLost(DirectUploadError):
    """The storage no longer holds the upload's parts (aborted outside this app: a lifecycle rule, an operator).

    The ticket fails; start a new upload.
    """

    code = "upload_lost"
    status_code = 410


class UploadCancelled(DirectUploadError):
    """The upload was cancelled by its client; its bytes are gone."""

    code = "upload_cancelled"
    status_code = 409


class UploadVerifying(DirectUploadError):
    """The upload's bytes are all there and being verified; ask again shortly (``upload`` is the ticket).

    Not done yet rather than wrong: the API's completion answers it 202 with
    the ticket and ``Retry-After``; elsewhere it is a 409.
    """

    code = "upload_verifying"
    status_code = 409

    def __init__(self, message: str, *, upload: Any = None) -> None:
        super().__init__(message)
        self.upload = upload


class UploadFailed(DirectUploadError):
    """Completing the upload failed, now or before: its object is deleted and the ticket closed.

    ``code`` is the reason, the code of the error that failed it
    (``size_mismatch``, ``checksum_mismatch``, ``unsupported_file_type``,
    ``file_too_large``, ``upload_expired``, ...), and the status is that
    error's: a failure recorded on the ticket answers the same ever after.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status_code = status_for(self.code)

    @classmethod
    def because(cls, exc: AttachmentError) -> UploadFailed:
        return cls(str(exc), code=exc.code)


# --- purging ----------------------------------------------------------------


class UnsafePurge(AttachmentError, ValueError):
    """A purge was asked to remove what may still be in use (e.g. strays younger than the floor)."""

    code = "unsafe_purge"
    status_code = 400


# --- the storage ------------------------------------------------------------


class StorageError(AttachmentError, OSError):
    """The storage failed to write, read, list or delete an object.

    The message names the object and the storage's own error, for the logs;
    clients are told only that the storage is unavailable.
    """

    code = "storage_unavailable"
    status_code = 503
    public_detail = "The file storage is unavailable; try again later."


class ObjectMissing(StorageError, FileNotFoundError):
    """The storage has no object under the identifiers a blob holds."""


class ObjectExists(StorageError, FileExistsError):
    """The storage already has an object under the name a write was to use; nothing was overwritten."""


class CopyMismatch(StorageError):
    """A copy of an object in another storage is not the bytes it was copied from (size or SHA-256).

    The copy is deleted and nothing points at it; the blob keeps its storage.
    """

    code = "copy_mismatch"
