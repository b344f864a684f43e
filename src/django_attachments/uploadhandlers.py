"""Upload handlers that hash files while Django parses the request.

Django's multipart parser hands each file to its upload handlers chunk by
chunk. :class:`HashingTemporaryFileUploadHandler` is Django's
``TemporaryFileUploadHandler`` that also feeds every chunk to SHA-256 on a
second thread (hashlib releases the GIL), counts the bytes and keeps the first
``SNIFF_BYTES`` for libmagic. ``services.attach()`` then finds the digest on
the uploaded file and does not read the bytes again: on local disk, storing a
large upload is hashing it on arrival plus a rename.

The API uses it for its own uploads. To get the same in your own views::

    FILE_UPLOAD_HANDLERS = [
        "django.core.files.uploadhandler.MemoryFileUploadHandler",
        "django_attachments.uploadhandlers.HashingTemporaryFileUploadHandler",
    ]
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any

from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from .conf import app_settings
from .ingest import DIGEST_ATTRIBUTE, Digest

#: Chunks waiting for the hashing thread, at most (64 KiB each by default).
_QUEUE_DEPTH = 64
#: A hashing thread that hears nothing for this long gives up (its upload was abandoned).
_IDLE_TIMEOUT = 120


class BackgroundHasher:
    """SHA-256 of a stream of chunks, computed on a thread of its own."""

    def __init__(self, head_bytes: int) -> None:
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._head_bytes = head_bytes
        self._size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._run, name="django-attachments-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                chunk = self._queue.get(timeout=_IDLE_TIMEOUT)
            except queue.Empty:
                return
            if chunk is None:
                return
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if len(self._head) < self._head_bytes:
            self._head += chunk[: self._head_bytes - len(self._head)]
        self._queue.put(chunk)

    def finish(self) -> Digest:
        self._queue.put(None)
        self._thread.join()
        return Digest(checksum=self._hash.hexdigest(), size=self._size, head=bytes(self._head))

    def abort(self) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # the thread drains the queue and then times out


class HashingTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """TemporaryFileUploadHandler that also hashes each file as it arrives."""

    _hasher: BackgroundHasher | None = None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self._hasher = BackgroundHasher(app_settings.SNIFF_BYTES)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self._hasher is not None:
            self._hasher.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size: int) -> TemporaryUploadedFile:
        file = super().file_complete(file_size)
        if self._hasher is not None:
            setattr(file, DIGEST_ATTRIBUTE, self._hasher.finish())
            self._hasher = None
        return file

    def upload_interrupted(self) -> None:
        if self._hasher is not None:
            self._hasher.abort()
            self._hasher = None
        super().upload_interrupted()
