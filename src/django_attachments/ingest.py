"""Reading an incoming file once: its SHA-256, its size and its real type.

:func:`inspect` streams the file in chunks, hashing and counting the bytes and
keeping the first ``SNIFF_BYTES`` for libmagic. Seekable files (Django's
uploaded files, open files, ``BytesIO``) are rewound afterwards so the store
can read them; a stream that cannot seek is spooled to a temporary file on the
way through, so it is still read from its source only once. Memory use is one
chunk plus the sniffing window, whatever the file size::

    with inspect(request.FILES["file"], max_size=10 * 2**20) as inspected:
        inspected.checksum, inspected.size, inspected.content_type
        store.save(inspected.file, ...)  # or inspected.streamed.complete(): see uploadhandlers.py
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.files import File
from django.core.files.uploadedfile import TemporaryUploadedFile

from .conf import app_settings
from .exceptions import AttachmentsImproperlyConfigured, ContentTypeNotAllowed, FileTooLarge, InvalidFile
from .stores.base import StreamedWrite

_magic: Any = None
_magic_lock = threading.Lock()


def _get_magic() -> Any:
    global _magic
    if _magic is None:
        with _magic_lock:
            if _magic is None:
                try:
                    import magic
                except ImportError as exc:  # libmagic itself missing raises ImportError too
                    raise AttachmentsImproperlyConfigured(
                        f"python-magic could not load libmagic ({exc}); install libmagic "
                        "(Debian/Ubuntu: libmagic1, macOS: brew install libmagic)."
                    ) from exc
                _magic = magic.Magic(mime=True)
    return _magic


def sniff(head: bytes) -> str:
    """The MIME type libmagic reads in ``head`` (the first bytes of a file)."""
    content_type = _get_magic().from_buffer(bytes(head))
    return (content_type or "application/octet-stream").split(";", 1)[0].strip().lower()


def content_type_allowed(content_type: str, patterns: Any) -> bool:
    """Whether ``content_type`` matches one of ``patterns`` (``"image/*"`` or exact); None allows any."""
    if patterns is None:
        return True
    family = content_type.split("/", 1)[0]
    for pattern in patterns:
        pattern = pattern.strip().lower()
        if pattern in ("*", "*/*") or pattern == content_type:
            return True
        if pattern.endswith("/*") and pattern[:-2] == family:
            return True
    return False


def check_content_type(content_type: str, *pattern_sets: Any) -> None:
    """Raise ContentTypeNotAllowed unless every non-None allow-list accepts ``content_type``."""
    for patterns in pattern_sets:
        if not content_type_allowed(content_type, patterns):
            raise ContentTypeNotAllowed(
                f"Files of type {content_type!r} are not allowed here (allowed: {', '.join(sorted(patterns))}).",
                content_type=content_type,
            )


def as_file(obj: Any) -> File:
    """Wrap what the caller passed as a Django File, or raise InvalidFile."""
    if isinstance(obj, File):
        if obj.closed:
            raise InvalidFile(f"The file {obj.name!r} is closed.")
        return obj
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return File(io.BytesIO(bytes(obj)))
    if hasattr(obj, "read") and callable(obj.read):
        if getattr(obj, "closed", False):
            raise InvalidFile("The file object is closed.")
        mode = getattr(obj, "mode", "rb")
        if isinstance(obj, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode and "r" in mode):
            raise InvalidFile("The file is open in text mode; open it in binary mode ('rb').")
        return File(obj, name=getattr(obj, "name", None))
    raise InvalidFile(f"Expected a file, a binary file-like object or bytes, not {type(obj).__name__}.")


def _seekable(file: File) -> bool:
    try:
        if not file.seekable():
            return False
        file.seek(0)
    except (AttributeError, OSError, ValueError):
        return False
    return True


def declared_size(file: File) -> int | None:
    """The size the file claims before any byte is read, where it is cheap to know."""
    try:
        size = file.size
        return int(size) if size is not None else None
    except (TypeError, ValueError, OSError, AttributeError):  # io.UnsupportedOperation is an OSError
        return None


def check_size(size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise FileTooLarge(f"The file is larger than the limit of {limit} bytes.", limit=limit)


#: Where an upload handler leaves the Digest of a file it received (see uploadhandlers.py).
DIGEST_ATTRIBUTE = "_django_attachments_digest"
#: Where an upload handler leaves the StreamedWrite of a file it sent on to the store (see uploadhandlers.py).
STREAM_ATTRIBUTE = "_django_attachments_stream"


@dataclass(frozen=True)
class Digest:
    """SHA-256, size and first bytes of a stream of bytes."""

    checksum: str
    size: int
    head: bytes


class Hasher:
    """SHA-256, size and first ``head_bytes`` bytes of a stream fed chunk by chunk.

    The one place bytes are hashed: attaching, receiving a request's file,
    receiving a direct upload, completing one and verifying stored blobs all
    feed their chunks here::

        hasher = Hasher(app_settings.SNIFF_BYTES)
        for chunk in stream.chunks():
            hasher.update(chunk)
        hasher.digest()   # Digest(checksum, size, head)
    """

    def __init__(self, head_bytes: int = 0) -> None:
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._head_bytes = head_bytes
        self.size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        self.size += len(chunk)
        if len(self._head) < self._head_bytes:
            self._head += chunk[: self._head_bytes - len(self._head)]
        self._hash.update(chunk)

    def digest(self) -> Digest:
        return Digest(checksum=self._hash.hexdigest(), size=self.size, head=bytes(self._head))


_DONE = object()


class BackgroundHasher:
    """A :class:`Hasher` fed on a thread of its own: :meth:`update` hands a chunk over, :meth:`digest` waits.

    hashlib lets go of the GIL while it hashes a large buffer, so the hash of
    a request's file runs on the second core beside Django's parser instead
    of after each chunk. ``bytes`` chunks are handed over as they are (a
    mutable buffer is copied first: its owner may reuse it); at most ``depth``
    wait and :meth:`update` blocks beyond that, so memory is ``depth + 2``
    chunks (those waiting, the one being hashed, the caller's).

    Holding a few chunks also keeps the allocator from handing their memory
    back to the kernel after every chunk and faulting it in again for the next
    one (docs/benchmarks.md, "Parsing an upload"). The thread ends once it has
    had nothing to hash for ``idle`` seconds, and :meth:`update` starts another
    when needed: a hasher abandoned mid-file (a parse that failed, of which
    Django tells the upload handlers nothing) leaves no thread behind, whether
    or not anything still refers to it.
    """

    def __init__(self, head_bytes: int = 0, *, depth: int = 4, idle: float = 1.0) -> None:
        self._hasher = Hasher(head_bytes)
        self._handed: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._failure: list[BaseException] = []
        self._idle = idle
        # Held to hand a chunk over and by the thread to end: a chunk is never left with no thread to take it.
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None
        self._closed = False

    def _run(self) -> None:
        while True:
            try:
                item = self._handed.get(timeout=self._idle)
            except queue.Empty:
                with self._lock:
                    if self._handed.empty():
                        self._running = False
                        return
                continue
            if item is _DONE:
                with self._lock:
                    self._running = False
                return
            if not self._failure:
                try:
                    self._hasher.update(item)
                except BaseException as exc:  # raised by digest(); the rest is drained, not hashed
                    self._failure.append(exc)

    def _hand_over(self, item: Any) -> None:
        with self._lock:
            if not self._running:
                self._running = True
                self._thread = threading.Thread(target=self._run, name="attachments-hash", daemon=True)
                self._thread.start()
            self._handed.put(item)

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError("This hasher is closed.")
        self._hand_over(chunk if type(chunk) is bytes else bytes(chunk))

    def digest(self) -> Digest:
        """The digest of every chunk handed over; the thread has ended."""
        self.close()
        if self._failure:
            raise self._failure[0]
        return self._hasher.digest()

    def close(self) -> None:
        """End the thread once it has hashed what it was handed (idempotent)."""
        if not self._closed:
            self._closed = True
            with self._lock:
                if self._running:
                    self._handed.put(_DONE)
        if self._thread is not None:
            self._thread.join()


@contextmanager
def read_ahead(chunks: Iterator[bytes], depth: int = 2) -> Iterator[Iterator[bytes]]:
    """``chunks``, read by a thread of its own up to ``depth`` chunks ahead of the caller.

    Reading from a socket lets go of the GIL, and so does SHA-256 on large
    buffers: with this, the next chunk arrives while the caller hashes this
    one, instead of after it. Memory is ``depth + 2`` chunks. An error of the
    read is raised in the caller, where the chunk would have been; leaving
    the block early stops the thread before the block returns (so that the
    stream under ``chunks`` can be closed after it).
    """
    handed: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
        except BaseException as exc:  # handed over, raised in the caller
            put(exc)
            return
        put(_DONE)

    def taken() -> Iterator[bytes]:
        while True:
            item = handed.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    reader = threading.Thread(target=read, name="attachments-read-ahead", daemon=True)
    reader.start()
    try:
        yield taken()
    finally:
        stop.set()
        reader.join()


@dataclass
class Inspected:
    """What :func:`inspect` learned, and the file to store (positioned at 0)."""

    file: File
    size: int
    checksum: str
    content_type: str
    #: The store's write of a file sent on as it arrived (see uploadhandlers.StreamingUploadHandler):
    #: complete it to keep the bytes; it is aborted when the block ends otherwise.
    streamed: StreamedWrite | None = None


@contextmanager
def inspect(source: File, *, max_size: int | None = None) -> Iterator[Inspected]:
    """Hash, count and sniff ``source`` in one pass; see the module docstring.

    Raises FileTooLarge as soon as more than ``max_size`` bytes were read.
    """
    digest = getattr(source, DIGEST_ATTRIBUTE, None)
    streamed = getattr(source, STREAM_ATTRIBUTE, None)
    if isinstance(streamed, StreamedWrite):
        # Sent on to the store as it arrived: its bytes are there, in parts, and nowhere here.
        try:
            if not isinstance(digest, Digest) or streamed.state != "open" or streamed.size != digest.size:
                raise InvalidFile("This streamed upload was used already, or is incomplete.")
            check_size(digest.size, max_size)
            yield Inspected(
                file=source,
                size=digest.size,
                checksum=digest.checksum,
                content_type=sniff(digest.head),
                streamed=streamed,
            )
        finally:
            streamed.abort()  # a refused file, or bytes a blob holds already: none are kept
        return
    if isinstance(digest, Digest) and _seekable(source) and declared_size(source) == digest.size:
        # Hashed on arrival by HashingTemporaryFileUploadHandler: no second read.
        check_size(digest.size, max_size)
        yield Inspected(file=source, size=digest.size, checksum=digest.checksum, content_type=sniff(digest.head))
        return
    chunk_size = app_settings.CHUNK_SIZE
    spool: TemporaryUploadedFile | None = None
    if not _seekable(source):
        spool = TemporaryUploadedFile("spool", "application/octet-stream", 0, None)
    hasher = Hasher(app_settings.SNIFF_BYTES)
    try:
        read = source.read
        while True:
            try:
                chunk = read(chunk_size)
            except OSError as exc:
                raise InvalidFile(f"Could not read the file: {exc}") from exc
            if not chunk:
                break
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise InvalidFile("The file returned text, not bytes; open it in binary mode ('rb').")
            hasher.update(chunk)
            check_size(hasher.size, max_size)
            if spool is not None:
                spool.write(chunk)
        digest = hasher.digest()
        if spool is not None:
            spool.flush()
            spool.size = digest.size
            spool.seek(0)
            target: File = spool
        else:
            source.seek(0)
            target = source
        yield Inspected(file=target, size=digest.size, checksum=digest.checksum, content_type=sniff(digest.head))
    finally:
        if spool is not None:
            spool.close()
