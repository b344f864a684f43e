"""Upload handlers that hash files while Django parses the request.

Django's multipart parser hands each file to its upload handlers chunk by
chunk. :class:`HashingTemporaryFileUploadHandler` is Django's
``TemporaryFileUploadHandler`` that also feeds every chunk to SHA-256, counts
the bytes and keeps the first ``SNIFF_BYTES`` for libmagic. ``services.attach()``
then finds the digest on the uploaded file and does not read the bytes again:
on local disk, storing a large upload is hashing it on arrival plus a rename.
It reads in ``CHUNK_SIZE`` chunks (1 MiB) rather than Django's 64 KiB.

The hash runs on a thread beside the parser (:class:`~.ingest.BackgroundHasher`),
handed the parser's 1 MiB chunks. Measured (``benchmarks/run.py --only parse``,
2 cores): most of a parse's time is the kernel faulting in fresh pages for the
buffers that glibc's malloc hands back after every chunk, not SHA-256. The
few chunks the hashing thread holds keep that memory in use, and 1 GiB parses
in 0.3x the time of Django's default handlers at 64 KiB (the bare view's
parse). Hashing 64 KiB chunks on a thread had lost to the hand-over's GIL
traffic; 1 MiB chunks are sixteen times fewer hand-overs.

The API uses it for its own uploads; where the storage is S3 and
``STREAM_UPLOADS`` is on, it uses :class:`StreamingUploadHandler`, which
sends a large file on to S3 in parts while the body still arrives, so that
an upload costs about the time of receiving it, not of receiving and then
sending it. To get the hashing in your own views::

    FILE_UPLOAD_HANDLERS = [
        "django.core.files.uploadhandler.MemoryFileUploadHandler",
        "django_attachments.uploadhandlers.HashingTemporaryFileUploadHandler",
    ]

Oversized bodies are refused before they are read, and never spooled:
:func:`guard_body` must run before anything touches ``request.POST`` or
``request.FILES`` — including a CSRF check, which reads ``request.POST`` of
every ``POST`` — so the API calls it before authenticating, and the admin
panel wraps its upload view in :func:`limit_body` outside its CSRF checks
(``admin_view``'s, and the middleware's: see :func:`limit_body`)::

    guard_body(request, limit=upload_limit())  # 413 by Content-Length, a counting handler while parsing

Django reads at most ``Content-Length`` bytes of a body (a missing one reads
nothing), so checking the declared length bounds what is read; the counting
handler also stops each file at the limit while the parser runs.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any, cast

from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from django.http import HttpRequest, HttpResponse

from .conf import app_settings
from .exceptions import FileTooLarge, RequestTooLarge
from .ingest import DIGEST_ATTRIBUTE, STREAM_ATTRIBUTE, BackgroundHasher, Digest, sniff
from .registry import attachment_registry
from .stores import BaseStore, StreamedWrite, get_store

#: Room for the multipart boundaries, part headers and the text fields (a
#: 10,000-character description in 4-byte characters fits) beside the file.
FORM_ALLOWANCE = 256 * 1024


class HashingTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """TemporaryFileUploadHandler that also hashes each file as it arrives, on a thread beside the parser."""

    _hasher: BackgroundHasher | None = None
    #: Chunks that may wait for the hashing thread before the parser waits for it.
    hash_depth = 4

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chunk_size = app_settings.CHUNK_SIZE

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        self._drop_hasher()  # a file before this one that never completed
        super().new_file(*args, **kwargs)
        self._hasher = BackgroundHasher(app_settings.SNIFF_BYTES, depth=self.hash_depth)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self._hasher is not None:
            self._hasher.update(raw_data)
        super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size: int) -> UploadedFile:
        file = cast(TemporaryUploadedFile, super().file_complete(file_size))
        if self._hasher is not None:
            hasher, self._hasher = self._hasher, None
            try:
                setattr(file, DIGEST_ATTRIBUTE, hasher.digest())
            except BaseException:
                file.close()
                raise
        return file

    def upload_interrupted(self) -> None:
        self._drop_hasher()
        super().upload_interrupted()

    def upload_complete(self) -> None:
        # Also the end of a parse a handler stopped (StopUpload), after which no file_complete comes.
        self._drop_hasher()
        super().upload_complete()

    def _drop_hasher(self) -> None:
        if self._hasher is not None:
            hasher, self._hasher = self._hasher, None
            hasher.close()


#: Where a request keeps the streamed writes its upload handlers began (see :func:`discard_streams`).
STREAMS_ATTRIBUTE = "_django_attachments_streams"
#: Set on a request that may be answered, whose file may then go on to the storage (:func:`allow_streaming`).
STREAM_ALLOWED_ATTRIBUTE = "_django_attachments_may_stream"


class _StreamedAway(io.RawIOBase):
    """The file of a :class:`StreamedUploadedFile`: its bytes went to the store, none are here to read."""

    def readable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        raise io.UnsupportedOperation(
            "This upload was sent on to the storage as it arrived; pass it to django_attachments.services.attach()."
        )

    readinto = read  # type: ignore[assignment]


class StreamedUploadedFile(UploadedFile):
    """A file :class:`StreamingUploadHandler` sent on to the store as it arrived, not yet an object there.

    ``services.attach()`` completes the write into a new blob's object, or
    aborts it (the bytes are known already, or the file is refused), so that
    nothing is kept; closing the file (Django closes a request's files after
    the response) aborts a write nobody completed. Its bytes cannot be read.
    """

    def __init__(self, stream: StreamedWrite, digest: Digest, **kwargs: Any) -> None:
        super().__init__(cast(Any, _StreamedAway()), **kwargs)
        setattr(self, STREAM_ATTRIBUTE, stream)
        setattr(self, DIGEST_ATTRIBUTE, digest)

    def close(self) -> None:
        getattr(self, STREAM_ATTRIBUTE).abort()
        super().close()


class StreamingUploadHandler(HashingTemporaryFileUploadHandler):
    """:class:`HashingTemporaryFileUploadHandler` that sends a large file on to ``store`` while it arrives.

    A file is spooled to a temporary file as usual until it outgrows the
    store's :meth:`~.stores.BaseStore.stream_threshold`; then the store's
    streamed write begins (its content type sniffed from the first bytes), is
    handed what was spooled, and takes every next chunk: the parts go to the
    storage side by side while the parser reads on, and the file is hashed on
    its own thread as before. The file it completes is a
    :class:`StreamedUploadedFile`. Every streamed write is noted on the
    request; :func:`discard_streams` aborts those nobody completed (a parse
    that failed midway, a refused upload).

    Only the first file of the form field ``field`` (``"file"``, the API's)
    is streamed, and only once the request may be answered
    (:func:`allow_streaming`: authenticated, permitted, not throttled): a
    body parsed before that, as a session's CSRF check parses it, or a
    request to be refused, is spooled as by its parent, never sent to the
    storage.
    """

    #: For a file that may stream: the parts being sent hold the same chunks (they are not copied), so
    #: the hash may lag further behind for little more memory, and the parser goes on filling parts
    #: while the hash waits for a core (docs/benchmarks.md). A file spooled keeps its parent's depth.
    streaming_hash_depth = 16

    def __init__(self, request: Any = None, store: BaseStore | None = None, field: str = "file") -> None:
        super().__init__(request)
        if store is None:
            store = get_store(app_settings.STORAGE)
        self.store = store
        self.field = field
        self._stream: StreamedWrite | None = None
        self._streams_this_file = False
        self._streamed_one = False
        self._received = 0

    def new_file(self, field_name: str, *args: Any, **kwargs: Any) -> None:
        self._drop_stream()
        self._received = 0
        self._streams_this_file = (
            field_name == self.field
            and not self._streamed_one
            and self.request is not None
            and getattr(self.request, STREAM_ALLOWED_ATTRIBUTE, False)
        )
        self.hash_depth = self.streaming_hash_depth if self._streams_this_file else type(self).hash_depth
        super().new_file(field_name, *args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self._hasher is not None:
            self._hasher.update(raw_data)
        self._received += len(raw_data)
        if self._stream is not None:
            self._stream.write(raw_data)
            return
        self.file.write(raw_data)
        if self._streams_this_file and self._received > self.store.stream_threshold():
            self._begin_stream()

    def _begin_stream(self) -> None:
        """Start the store's write with what was spooled; the temporary file goes."""
        spooled = self.file
        self._streams_this_file, self._streamed_one = False, True
        try:
            spooled.seek(0)
            content_type = sniff(spooled.read(app_settings.SNIFF_BYTES))
            stream = self.store.open_stream(content_type=content_type)
            self.request.__dict__.setdefault(STREAMS_ATTRIBUTE, []).append(stream)
            self._stream = stream
            spooled.seek(0)
            while chunk := spooled.read(self.chunk_size):
                stream.write(chunk)
        finally:
            spooled.close()  # the temporary file is deleted, whether or not the stream began

    def file_complete(self, file_size: int) -> UploadedFile:
        if self._stream is None:
            return super().file_complete(file_size)
        stream, self._stream = self._stream, None
        try:
            stream.finish_parts()
            hasher, self._hasher = self._hasher, None
            assert hasher is not None
            digest = hasher.digest()
        except BaseException:
            stream.abort()
            raise
        return StreamedUploadedFile(
            stream,
            digest,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )

    def upload_interrupted(self) -> None:
        self._drop_stream()
        super().upload_interrupted()

    def upload_complete(self) -> None:
        self._drop_stream()
        super().upload_complete()

    def _drop_stream(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.abort()


def allow_streaming(request: HttpRequest) -> None:
    """Let :class:`StreamingUploadHandler` send ``request``'s file on to the storage: call once it may be answered.

    Until then (authentication, a session's CSRF check, permissions,
    throttling), a body parsed is spooled: a request to be refused sends
    nothing to the storage.
    """
    setattr(request, STREAM_ALLOWED_ATTRIBUTE, True)


def discard_streams(request: HttpRequest) -> None:
    """Abort every streamed write of ``request``'s upload that nobody completed (call when it is answered)."""
    for stream in request.__dict__.pop(STREAMS_ATTRIBUTE, ()):
        stream.abort()


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
            raise FileTooLarge(f"The file is larger than the upload limit of {self.limit} bytes.", limit=self.limit)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers build the file


def upload_limit() -> int | None:
    """The largest file any owner type accepts: the global limit, or the largest per-type one."""
    if app_settings.MAX_UPLOAD_SIZE is not None:
        return app_settings.MAX_UPLOAD_SIZE
    per_type = [spec.max_size for spec in attachment_registry]
    if not per_type or None in per_type:
        return None
    return max(size for size in per_type if size is not None)


def declared_length(request: HttpRequest) -> int:
    """The body's ``Content-Length`` as Django reads it: a missing or malformed one reads nothing."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def guard_body(request: HttpRequest, *, limit: int | None, takes_file: bool = True, stream: bool = False) -> None:
    """Refuse a body past what the endpoint takes, before a byte of it is read.

    ``takes_file``: the body may carry one file of at most ``limit`` bytes
    (``None``: no limit) beside form fields; otherwise it carries form fields
    or JSON only, at most :data:`FORM_ALLOWANCE` bytes. Raises FileTooLarge
    or RequestTooLarge. Installs the counting and hashing upload handlers, so
    a multipart body is stopped at the limit while it is parsed.

    ``stream``: a large file goes on to the storage while it arrives
    (:class:`StreamingUploadHandler`), where ``STREAM_UPLOADS`` is on and the
    store can, once the caller says the request may be answered
    (:func:`allow_streaming`); the caller must then pass the file to
    ``services.attach()``, and call :func:`discard_streams` once the request
    is answered.
    """
    length = declared_length(request)
    if not takes_file:
        if length > FORM_ALLOWANCE:
            raise RequestTooLarge(
                f"The request body of {length} bytes exceeds the {FORM_ALLOWANCE} bytes this endpoint takes.",
                limit=FORM_ALLOWANCE,
            )
        limit = 0
    elif limit is not None and length > limit + FORM_ALLOWANCE:
        raise FileTooLarge(
            f"The request body of {length} bytes exceeds the upload limit of {limit} bytes.", limit=limit
        )
    if hasattr(request, "_files"):
        return  # parsed already (by a project's middleware): nothing left to guard
    store = get_store(app_settings.STORAGE) if takes_file and stream and app_settings.STREAM_UPLOADS else None
    if store is not None and not store.can_stream_writes:
        store = None
    hashing: Callable[[], FileUploadHandler] = (
        functools.partial(HashingTemporaryFileUploadHandler, request)
        if store is None
        else functools.partial(StreamingUploadHandler, request, store)
    )
    # Django's, or ours where a project installed it (as the module docstring suggests); not a subclass of its own.
    ours = (TemporaryFileUploadHandler, HashingTemporaryFileUploadHandler)
    handlers = [hashing() if type(handler) in ours else handler for handler in request.upload_handlers]
    handlers = [SizeLimitUploadHandler(request, limit), *handlers]
    # The parser reads in the smallest chunk size among the handlers: 1 MiB
    # chunks instead of 64 KiB make parsing and hashing markedly cheaper.
    for handler in handlers:
        handler.chunk_size = max(handler.chunk_size, app_settings.CHUNK_SIZE)
    request.upload_handlers = handlers


def limit_body(
    view: Callable[..., HttpResponse] | None = None,
    *,
    refused: Callable[[HttpRequest, FileTooLarge | RequestTooLarge], HttpResponse] | None = None,
) -> Any:
    """Decorate a Django view that takes one file: :func:`guard_body` first, a 413 when it refuses.

    The 413 is plain text, or what ``refused(request, error)`` returns (a
    page, say); ``error.limit`` is the limit in bytes. It answers both a body
    declared too large, before a byte is read, and a file found too large
    while the view parses the form.

    Put it outside ``csrf_protect`` (and ``admin_site.admin_view``), whose
    check reads ``request.POST`` and so the whole body. ``CsrfViewMiddleware``
    reads it too, before any view runs: where the view checks CSRF itself (as
    ``admin_view`` does), mark the guarded view ``csrf_exempt`` so that the
    middleware leaves the check to it::

        csrf_exempt(limit_body(admin_site.admin_view(upload), refused=too_large_page))
    """
    if view is None:
        return functools.partial(limit_body, refused=refused)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            guard_body(request, limit=upload_limit())
            return view(request, *args, **kwargs)
        except (FileTooLarge, RequestTooLarge) as exc:
            if refused is not None:
                return refused(request, exc)
            return HttpResponse(str(exc), status=413, content_type="text/plain; charset=utf-8")

    return wrapper
