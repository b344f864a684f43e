"""How service errors become HTTP answers: a JSON body naming the field or the reason.

Bodies keep DRF's usual shape (``{"field": ["message"]}`` or ``{"detail":
"message"}``) and add a top-level ``"code"`` so that clients can branch on
``owner_mismatch``, ``file_too_large`` and the like without parsing messages.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from .. import exceptions as errors

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The file is larger than the upload limit."
    default_code = "file_too_large"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than this endpoint takes."
    default_code = "request_too_large"


class UnsupportedFileType(exceptions.APIException):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_detail = "Files of this type are not allowed here."
    default_code = "unsupported_file_type"


class StorageUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The file storage is unavailable; try again later."
    default_code = "storage_unavailable"


#: HTTP status of a direct upload's failure, by its code; 400 for the others.
UPLOAD_STATUS = {
    "upload_expired": status.HTTP_410_GONE,
    "upload_closed": status.HTTP_409_CONFLICT,
    "upload_exists": status.HTTP_409_CONFLICT,
    "unsupported_file_type": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "file_too_large": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
}


class UploadError(exceptions.APIException):
    """A direct upload that cannot go on; the status follows its code (see UPLOAD_STATUS)."""

    default_code = "upload_failed"

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail, code)
        self.status_code = UPLOAD_STATUS.get(code, status.HTTP_400_BAD_REQUEST)


def _field_error(field: str, exc: Exception, code: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [exceptions.ErrorDetail(str(exc), code=code)]})


def to_api_error(exc: errors.AttachmentError) -> exceptions.APIException:
    """The API exception for a service error; configuration errors are not translated."""
    if isinstance(exc, (errors.UnknownOwnerType, errors.InvalidOwnerType)):
        return _field_error("owner_type", exc, "unknown_owner_type")
    if isinstance(exc, errors.OwnerNotFound):
        return _field_error("owner_id", exc, "owner_not_found")
    if isinstance(exc, errors.OwnerMismatch):
        return _field_error("owner_id", exc, "owner_mismatch")
    if isinstance(exc, errors.UploadNotFound):
        return exceptions.NotFound(str(exc), code="upload_not_found")
    if isinstance(exc, errors.DirectUploadError):
        return UploadError(str(exc), exc.code)
    if isinstance(exc, errors.BlobNotFound):
        return exceptions.NotFound(str(exc), code="blob_not_found")
    if isinstance(exc, errors.FileTooLarge):
        return PayloadTooLarge(str(exc))
    if isinstance(exc, errors.RequestTooLarge):
        return RequestTooLarge(str(exc))
    if isinstance(exc, errors.ContentTypeNotAllowed):
        return UnsupportedFileType(str(exc))
    if isinstance(exc, (errors.EmptyFile, errors.InvalidFile)):
        return _field_error("file", exc, "invalid_file")
    if isinstance(exc, errors.InvalidSlot):
        return _field_error("name", exc, "invalid_slot")
    if isinstance(exc, errors.SlotTaken):
        return _field_error("name", exc, "slot_taken")
    if isinstance(exc, errors.InvalidValue):
        return _field_error(exc.field or "non_field_errors", exc, "invalid")
    if isinstance(exc, errors.StorageError):
        logger.error("Storage failure: %s", exc, exc_info=exc)
        return StorageUnavailable()
    raise exc


def handle_exception(exc: Exception, context: dict[str, Any]) -> Any:
    """DRF's exception handler, plus service errors and a top-level ``code``."""
    if isinstance(exc, errors.AttachmentError) and not isinstance(exc, errors.AttachmentsImproperlyConfigured):
        exc = to_api_error(exc)
    elif isinstance(exc, Http404):
        # The same body for a missing, another tenant's, a hidden or a malformed id.
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException) and isinstance(response.data, dict):
        codes = exc.get_codes()
        while isinstance(codes, (dict, list)) and codes:
            codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
        if isinstance(codes, str):
            response.data["code"] = codes
    return response
