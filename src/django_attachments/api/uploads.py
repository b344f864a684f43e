"""Refusing oversized uploads as early as the request allows.

1. Before the body is read: a ``Content-Length`` larger than the limit (plus
   room for the multipart envelope) is answered 413 at once.
2. While the body is read: :class:`SizeLimitUploadHandler` counts the bytes of
   each file as the parser hands them over and stops at the limit, so a client
   that lies about ``Content-Length`` (or sends chunked bodies) cannot make the
   server spool more than the limit to disk.

Large files are also hashed as they arrive (see ``uploadhandlers.py``), and the
body is parsed in ``CHUNK_SIZE`` chunks.

The owner type's own ``max_size`` is only known once ``owner_type`` is parsed;
the service applies it (and the global limit again) after parsing.
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler

from ..conf import app_settings
from ..registry import attachment_registry
from ..uploadhandlers import HashingTemporaryFileUploadHandler
from .errors import PayloadTooLarge

#: Room for the multipart boundaries, headers and the small text fields.
ENVELOPE_ALLOWANCE = 64 * 1024


def upload_limit() -> int | None:
    """The largest file any owner type accepts: the global limit, or the largest per-type one."""
    if app_settings.MAX_UPLOAD_SIZE is not None:
        return app_settings.MAX_UPLOAD_SIZE
    per_type = [spec.max_size for spec in attachment_registry]
    return None if not per_type or None in per_type else max(per_type)


def check_content_length(request: Any, limit: int | None) -> None:
    if limit is None:
        return
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return  # Django treats a malformed Content-Length as 0 and reads nothing
    if declared > limit + ENVELOPE_ALLOWANCE:
        raise PayloadTooLarge(f"The request body of {declared} bytes exceeds the upload limit of {limit} bytes.")


class SizeLimitUploadHandler(FileUploadHandler):
    """Counts each uploaded file's bytes and refuses the request past ``limit``."""

    def __init__(self, request: Any = None, limit: int | None = None) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.limit is not None and self.received > self.limit:
            raise PayloadTooLarge(f"The file is larger than the upload limit of {self.limit} bytes.")
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers build the file


def prepare_upload(request: Any) -> None:
    """Before the body of ``request`` (a DRF request) is parsed: check its size, and hash files on arrival.

    The project's TemporaryFileUploadHandler is swapped for the hashing one,
    so that large files are not read again to be hashed.
    """
    limit = upload_limit()
    check_content_length(request, limit)
    django_request = request._request
    handlers = [
        HashingTemporaryFileUploadHandler(django_request) if type(handler) is TemporaryFileUploadHandler else handler
        for handler in django_request.upload_handlers
    ]
    handlers = [SizeLimitUploadHandler(django_request, limit), *handlers]
    # The parser reads in the smallest chunk size among the handlers: 1 MiB
    # chunks instead of 64 KiB make parsing and hashing markedly cheaper.
    for handler in handlers:
        handler.chunk_size = max(handler.chunk_size, app_settings.CHUNK_SIZE)
    django_request.upload_handlers = handlers
