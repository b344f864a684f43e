"""Every error django_attachments raises, under one root.

Catch :class:`AttachmentError` to handle them all, or the builtin / Django type
each one also is, so generic handlers keep working::

    try:
        services.attach(upload, owner_type="plan_item", owner_id=pk, tenant=clinic_id)
    except OwnerNotFound:          # also an ObjectDoesNotExist
        raise Http404
    except AttachmentError as exc:  # size, type, slot, ... all ValueErrors
        return HttpResponseBadRequest(str(exc))
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, PermissionDenied


class AttachmentError(Exception):
    """Root of every error raised by django_attachments."""


class AttachmentsImproperlyConfigured(AttachmentError, ImproperlyConfigured):
    """A setting, storage or registration is wrong; the message names what to fix."""


# --- the owner registry -----------------------------------------------------


class InvalidOwnerType(AttachmentError, ValueError):
    """An owner type is empty, too long or uses characters outside ``[a-z0-9_.-]``."""


class AlreadyRegistered(AttachmentError, ValueError):
    """An owner type is registered twice."""


class UnknownOwnerType(AttachmentError, LookupError):
    """No owner type of that name is registered."""


class OwnerNotFound(AttachmentError, ObjectDoesNotExist):
    """The owner does not exist, or is not visible from the caller's tenant.

    Both cases raise the same error on purpose: a caller must not learn that
    another tenant's owner exists.
    """


class OwnerMismatch(AttachmentError, ValueError):
    """The owner's tenant or subject differs from the blob's."""


class NoTenant(AttachmentError, PermissionDenied):
    """``TENANT_RESOLVER`` names no tenant for the caller, who may therefore see no files at all."""


# --- the file ---------------------------------------------------------------


class BlobNotFound(AttachmentError, ObjectDoesNotExist):
    """The blob does not exist, or is not visible from the caller's tenant."""


class InvalidFile(AttachmentError, ValueError):
    """The object given as a file cannot be read as bytes."""


class FileTooLarge(AttachmentError, ValueError):
    """The file is larger than the limit that applies to it."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class RequestTooLarge(AttachmentError, ValueError):
    """A request body larger than the endpoint takes, refused before it is read."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class EmptyFile(AttachmentError, ValueError):
    """The file has no bytes and empty files are not allowed."""


class ContentTypeNotAllowed(AttachmentError, ValueError):
    """The sniffed content type is outside the allow-list that applies."""

    def __init__(self, message: str, *, content_type: str) -> None:
        super().__init__(message)
        self.content_type = content_type


class InvalidSlot(AttachmentError, ValueError):
    """The attachment's ``name`` (slot) is not one the owner type allows."""


class InvalidValue(AttachmentError, ValueError):
    """An identifier or text field has the wrong shape or length; ``field`` names it."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SlotTaken(AttachmentError, ValueError):
    """The owner already has this file in that slot."""


# --- direct uploads ---------------------------------------------------------


class UploadNotFound(AttachmentError, ObjectDoesNotExist):
    """The direct upload does not exist, or is not visible from the caller's tenant."""


class DirectUploadError(AttachmentError, ValueError):
    """A direct upload cannot go on; ``code`` says why, in a word clients can branch on."""

    code = "upload_failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UploadExpired(DirectUploadError):
    """The upload's ticket expired before it was completed."""

    code = "upload_expired"


class UploadMissing(DirectUploadError):
    """No bytes have arrived for the upload yet. The ticket stays open: send them, then complete."""

    code = "upload_missing"


class UploadMismatch(DirectUploadError):
    """The bytes received are not the ones declared (``size_mismatch``, ``checksum_mismatch``)."""


class UploadClosed(DirectUploadError):
    """The upload is already completed or failed (``upload_closed``), or has its bytes (``upload_exists``)."""

    code = "upload_closed"


class UploadFailed(DirectUploadError):
    """Completing the upload failed, now or before: its object is deleted and the ticket closed.

    ``code`` is the reason: ``size_mismatch``, ``checksum_mismatch``,
    ``unsupported_file_type``, ``file_too_large``, ``upload_expired``, ...
    """


# --- the storage ------------------------------------------------------------


class StorageError(AttachmentError, OSError):
    """The storage failed to write, read, list or delete an object."""


class ObjectMissing(StorageError, FileNotFoundError):
    """The storage has no object under the identifiers a blob holds."""


class ObjectExists(StorageError, FileExistsError):
    """The storage already has an object under the name a write was to use; nothing was overwritten."""
