"""Serving a blob's bytes over HTTP: streamed, ranged, cacheable, and never rendered inline.

Shared by the REST API and the admin.

Proxy mode streams the object from its store in chunks with ``Content-Length``,
an ``ETag`` from the checksum (``If-None-Match`` -> 304), single byte ranges
(``Range`` -> 206 reading only that range; unsatisfiable -> 416; ``If-Range``
honoured) and ``Content-Disposition: attachment`` with an RFC 6266/5987
``filename*`` for non-ASCII names. Every file is sent as an attachment with
``X-Content-Type-Options: nosniff`` and a sandboxing CSP, so HTML, SVG, XML or
scripts uploaded by one user never run in another user's browser.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any, TypeVar

from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header, parse_etags

from . import services
from .conf import app_settings
from .exceptions import BlobUnavailable, NoPreview, PreviewUnavailable, StorageError
from .models import Blob, Variant
from .policy import check_renderable, check_servable
from .stores import RangeReader

logger = logging.getLogger(__name__)

ResponseT = TypeVar("ResponseT", HttpResponse, StreamingHttpResponse)

# ASCII digits only: ``\d`` would also take other scripts' digits, which int() reads.
_RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII | re.IGNORECASE)
#: A position past any file (2**63 - 1 is the largest size the database holds).
_BEYOND = 2**63


def _position(digits: str) -> int:
    """A byte position as written, however many digits: past any file when it has more than 19."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else _BEYOND


class RangeNotSatisfiable(ValueError):
    """A well-formed byte range that lies outside the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) of a single-range header, or None to serve the whole file.

    Raises RangeNotSatisfiable for a well-formed range that lies outside the file.
    Malformed headers and multiple ranges are ignored, as RFC 9110 allows.
    """
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header.strip(" \t"))
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        length = _position(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - length, 0), size - 1
    start = _position(first)
    if last != "" and _position(last) < start:
        return None  # an invalid range-spec: ignored, as RFC 9110 says (the whole file)
    end = size - 1 if last == "" else min(_position(last), size - 1)
    if start >= size:
        raise RangeNotSatisfiable(header)
    return start, end


#: What is served: a blob, or a variant (the same columns: checksum, size, content type, storage, identifiers).
Stored = Blob | Variant


def _etag(blob: Stored) -> str:
    return f'"{blob.checksum}"'


def _common_headers(response: ResponseT, blob: Stored, filename: str | None, *, inline: bool = False) -> ResponseT:
    response["ETag"] = _etag(blob)
    response["Accept-Ranges"] = "bytes"
    # no-store: a patient's file must not be kept in the browser's (or a proxy's) cache on disk.
    # Revalidation (ETag, If-None-Match -> 304) still serves clients that keep a copy themselves.
    response["Cache-Control"] = "private, no-store"
    disposition = content_disposition_header(not inline, filename or blob.filename)
    if disposition is not None:  # always, with a filename; the stubs cannot tell
        response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _stream(reader: RangeReader) -> Iterator[bytes]:
    try:
        yield from reader.chunks()
    finally:
        reader.close()


def serve_blob(request: Any, blob: Blob, *, filename: str | None = None) -> HttpResponseBase:
    """The blob's bytes (or a 304, 206 or 416); BlobUnavailable first if it may not be served.

    ``filename`` (an attachment's) names the download; the blob's by default.
    """
    check_servable(blob)
    return _serve(request, blob, filename=filename)


def variant_or_pending(blob: Blob, name: str, *, owner_type: str | None) -> Variant | None:
    """The variant ``name`` of ``blob`` as linked to ``owner_type``; None while it is being made.

    The lazy path the API and the admin share: a variant not made yet is
    claimed and handed to a worker (with the immediate backend, made right
    here). Raises VariantNotFound, NoPreview, the scan's BlobUnavailable
    errors, and PreviewUnavailable (a failure waiting for its retry, or a
    task backend that refused the task).
    """
    requested = services.variants.request(blob, name, owner_type=owner_type)
    if not requested.claimed:
        found = requested.variant
    else:
        from . import tasks  # the entry points' module, imported when first needed: it needs the task backends

        declared = requested.declared
        if tasks.enqueue_variant(blob.pk, declared.name, owner_type=owner_type, digest=declared.digest) is None:
            raise PreviewUnavailable("The preview could not be handed to a worker; try again later.")
        # An immediate backend has made it (or been refused it, or failed) by now; a worker has not.
        found = services.variants.find(blob, declared)
        if found is None:
            refused = services.variants.failure(blob, declared)
            if refused is not None:
                raise NoPreview(refused.error or "No preview can be made of this file.")
            services.variants.check_not_postponed(blob, declared)
    if found is not None:
        found.blob = blob
    return found


def send_variant(request: Any, variant: Variant) -> HttpResponseBase:
    """A variant as ``DOWNLOAD_MODE`` says: a redirect to a signed URL where the store signs, else its bytes."""
    if app_settings.DOWNLOAD_MODE == "redirect":
        redirect = redirect_to_variant(variant)
        if redirect is not None:
            return redirect
    return serve_variant(request, variant)


def serve_variant(request: Any, variant: Variant) -> HttpResponseBase:
    """A variant's bytes, as :func:`serve_blob` serves a blob's; BlobUnavailable first if its source may not be.

    Shown inline (an ``<img>``'s source, a preview in a new tab): its bytes are
    the renderer's own raster image, never the uploaded file's.
    """
    check_renderable(variant.blob)
    return _serve(request, variant, filename=variant.filename, inline=True)


def _serve(request: Any, blob: Stored, *, filename: str | None, inline: bool = False) -> HttpResponseBase:
    etag = _etag(blob)
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH")
    if if_none_match and (if_none_match.strip() == "*" or etag in parse_etags(if_none_match)):
        return _common_headers(HttpResponse(status=304), blob, filename, inline=inline)

    if_range = request.META.get("HTTP_IF_RANGE")
    byte_range = None
    if not if_range or if_range.strip() == etag:
        try:
            byte_range = parse_range(request.META.get("HTTP_RANGE"), blob.size)
        except RangeNotSatisfiable:
            response = HttpResponse(status=416, content_type="text/plain")
            response["Content-Range"] = f"bytes */{blob.size}"
            return _common_headers(response, blob, filename, inline=inline)

    if byte_range is None:
        reader = services.open_blob(blob)
        streamed = StreamingHttpResponse(_stream(reader), content_type=blob.content_type)
        streamed["Content-Length"] = str(blob.size)
    else:
        start, end = byte_range
        reader = services.open_blob(blob, start=start, end=end)
        streamed = StreamingHttpResponse(_stream(reader), status=206, content_type=blob.content_type)
        streamed["Content-Length"] = str(end - start + 1)
        streamed["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
    return _common_headers(streamed, blob, filename, inline=inline)


def serve_blob_or_503(request: Any, blob: Blob, *, filename: str | None = None) -> HttpResponseBase:
    """serve_blob() for HTML pages: a plain-text 409 or 503 for a blob unavailable or a storage failure."""
    try:
        return serve_blob(request, blob, filename=filename)
    except BlobUnavailable as exc:
        return HttpResponse(str(exc), status=exc.status_code, content_type="text/plain; charset=utf-8")
    except StorageError:
        logger.exception("Could not read blob %s from storage %r", blob.pk, blob.storage)
        return HttpResponse("The file is unavailable right now.", status=503, content_type="text/plain")


def redirect_to_blob(blob: Blob, *, filename: str | None = None) -> HttpResponse | None:
    """A 302 to the store's signed URL, or None where the store cannot sign; BlobUnavailable first."""
    check_servable(blob)
    url = services.blob_url(blob, as_attachment=True, filename=filename)
    if url is None:
        return None
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "private, no-store"
    return response


def redirect_to_variant(variant: Variant) -> HttpResponse | None:
    """A 302 to the store's signed URL of a variant, or None where the store cannot sign; BlobUnavailable first."""
    check_renderable(variant.blob)
    url = services.blob_url(variant, as_attachment=False, filename=variant.filename)
    if url is None:
        return None
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "private, no-store"
    return response
