"""Refusing oversized and unwanted request bodies before a byte of them is read.

Every endpoint of the API runs :meth:`BodyGuardMixin.initial` first, before
authentication: a session's CSRF check reads ``request.POST``, which parses
(and spools) a multipart body in full, so the limits must be in place by then.

1. Before the body is read: a ``Content-Length`` larger than what the
   endpoint takes is answered 413 — the upload limit plus room for the form
   fields where a file is taken (``file_too_large``), a few hundred KiB of
   JSON or form fields elsewhere (``request_too_large``). Whatever the verb,
   the spelling of the ``Content-Type`` or the authentication.
2. Endpoints that take no file refuse a multipart body (415) before parsing.
3. While a multipart body is read, a counting upload handler stops each file
   at the limit (see :func:`django_attachments.uploadhandlers.guard_body`),
   and large files are hashed as they arrive, parsed in ``CHUNK_SIZE`` chunks;
   with ``STREAM_UPLOADS``, a large file goes on to an S3 store in parts while
   it arrives, and what no blob took is aborted there when the view is done.

The owner type's own ``max_size`` is only known once ``owner_type`` is parsed;
the service applies it (and the global limit again) after parsing.
"""

from __future__ import annotations

from typing import Any

from django.utils.http import parse_header_parameters
from rest_framework.exceptions import MethodNotAllowed, UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request

from ..uploadhandlers import allow_streaming, discard_streams, guard_body, upload_limit


def media_type(request: Request) -> str:
    """The body's media type, lower-cased, without parameters ("" when there is none)."""
    return parse_header_parameters(request.META.get("CONTENT_TYPE", ""))[0]


class BodyGuardMixin:
    """For API views: guard the body before DRF authenticates, negotiates or parses anything."""

    #: The view actions whose body may carry a file; every other one takes JSON or form fields only.
    file_actions: frozenset[str] = frozenset()

    def takes_file(self) -> bool:
        return getattr(self, "action", None) in self.file_actions

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        method = request.method or ""
        if not hasattr(self, method.lower()):
            # DRF would answer 405 after authenticating, and a session's CSRF check
            # reads a POST body: answer it first, unread (the allowed methods are public).
            raise MethodNotAllowed(method)
        takes_file = self.takes_file()
        if not takes_file:
            request.parsers = [parser for parser in request.parsers or () if not isinstance(parser, MultiPartParser)]
            if media_type(request).startswith("multipart/"):
                raise UnsupportedMediaType(request.content_type)
        guard_body(
            request._request, limit=upload_limit() if takes_file else None, takes_file=takes_file, stream=takes_file
        )
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        # Authenticated, permitted, not throttled: a file parsed from here on may go on to the storage as it
        # arrives. One parsed before (a session's CSRF check reads the body) was spooled, as is one refused.
        allow_streaming(request._request)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        finally:
            # A file sent on to the storage that no blob took (a refusal, an error, a parse cut short)
            # is aborted there before the answer goes: nothing is kept of it.
            discard_streams(request)
