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
from rest_framework import exceptions
from rest_framework.views import exception_handler

from .. import exceptions as errors

logger = logging.getLogger(__name__)


def to_api_error(exc: errors.AttachmentError) -> exceptions.APIException:
    """The API exception for a service error: its ``status_code``, and its ``code`` under its ``field``.

    An error with a ``public_detail`` is answered with it instead of its
    message; a server-side one (5xx: a storage failure) is logged first, with
    its message. A 4xx (a quarantined file asked for, again and again, by a
    polling client) is the client's answer, not a server error to log.
    """
    message = str(exc)
    if exc.public_detail is not None:
        if exc.status_code >= 500:
            logger.error("%s: %s", type(exc).__name__, message, exc_info=exc)
        message = exc.public_detail
    detail = exceptions.ErrorDetail(message, code=exc.code)
    api_error = (
        exceptions.APIException(detail, exc.code)
        if exc.field is None
        else exceptions.ValidationError({exc.field: [detail]})
    )
    api_error.status_code = exc.status_code
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:  # DRF's handler sends it as Retry-After
        api_error.wait = retry_after  # type: ignore[attr-defined]
    return api_error


def handle_exception(exc: Exception, context: dict[str, Any]) -> Any:
    """DRF's exception handler, plus service errors and a top-level ``code``."""
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.AttachmentError):
        extra = exc.extra()
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
        response.data.update(extra)
    return response
