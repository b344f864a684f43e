"""One measured parse of a multipart body, in a process of its own (``suite/parsing.py`` runs it).

    python parsing_child.py POOL SIZE CHUNK MODE

A forked writer process sends the body over a TCP connection on the
loopback, 1 MiB ``sendall()`` at a time (as the live benchmark's client);
this process parses it with Django's ``MultiPartParser`` reading through
gunicorn's own ``Body`` over that socket (as a gunicorn sync worker does),
with the upload handlers of ``MODE``:

- ``django``: Django's default handlers (as the bare view), no hash;
- ``ours``: the API's handlers (size limit, SHA-256 on a thread beside the
  parser) as the installed ``django_attachments`` sets them up (``guard_body``);
- ``inline``: the same, but SHA-256 on the parser's thread (the handler
  before the hash moved to a thread).

``CHUNK`` is the parser's chunk size (the handlers' smallest). Prints one
JSON line: wall seconds of the parse, user and system CPU seconds and minor
page faults of this process over it, the file's size and SHA-256. A fresh
process per measurement: the allocator's state (what glibc's malloc has
handed back to the kernel, its moving mmap threshold) is not carried from
one run to the next. The environment passes through: ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_`` show what the allocator costs.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import time
from typing import Any


def inline(handler: Any) -> Any:
    """The hashing handler as it was before the hash moved to a thread: SHA-256 on the parser's thread."""
    from django.core.files.uploadhandler import TemporaryFileUploadHandler

    from django_attachments.conf import app_settings
    from django_attachments.ingest import DIGEST_ATTRIBUTE, Hasher
    from django_attachments.uploadhandlers import HashingTemporaryFileUploadHandler

    if type(handler) is not HashingTemporaryFileUploadHandler:
        return handler

    class Inline(HashingTemporaryFileUploadHandler):
        def new_file(self, *args: Any, **kwargs: Any) -> None:
            TemporaryFileUploadHandler.new_file(self, *args, **kwargs)  # no thread: the hash is done below
            self._inline = Hasher(app_settings.SNIFF_BYTES)

        def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
            self._inline.update(raw_data)
            self.file.write(raw_data)

        def file_complete(self, file_size: int) -> Any:
            file = super().file_complete(file_size)
            setattr(file, DIGEST_ATTRIBUTE, self._inline.digest())
            return file

    return Inline(handler.request)


def main() -> None:
    pool_path, size, chunk, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    import django

    django.setup()
    from django.conf import settings
    from django.core.files.uploadhandler import load_handler
    from django.http.multipartparser import MultiPartParser
    from django.test import RequestFactory
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    from django_attachments.ingest import DIGEST_ATTRIBUTE
    from django_attachments.uploadhandlers import guard_body

    boundary = "benchboundary7f3a9c"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="owner_type"\r\n\r\nthing\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + size + len(tail)

    # A TCP connection on the loopback, as a server's: its receives come in pieces of what was sent.
    listener = socket.create_server(("127.0.0.1", 0))
    writer_sock = socket.create_connection(listener.getsockname())
    reader_sock, _ = listener.accept()
    listener.close()
    writer = os.fork()
    if writer == 0:  # the client
        reader_sock.close()
        writer_sock.sendall(head)
        with open(pool_path, "rb") as pool:  # as the live benchmark's client: 1 MiB sendall() calls
            buffer = memoryview(bytearray(1024 * 1024))
            sent = 0
            while sent < size:
                n = pool.readinto(buffer[: min(len(buffer), size - sent)])
                writer_sock.sendall(buffer[:n])
                sent += n
        writer_sock.sendall(tail)
        writer_sock.close()
        os._exit(0)
    writer_sock.close()

    meta = {
        "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
        "CONTENT_LENGTH": str(length),
        "REQUEST_METHOD": "POST",
    }
    body = Body(LengthReader(SocketUnreader(reader_sock), length))
    request = RequestFactory().post("/", data=b"", content_type=meta["CONTENT_TYPE"])
    request.META.update(meta)
    request.upload_handlers = [load_handler(path, request) for path in settings.FILE_UPLOAD_HANDLERS]
    if mode in ("ours", "inline"):
        guard_body(request, limit=None)
        if mode == "inline":
            request.upload_handlers = [inline(handler) for handler in request.upload_handlers]
    elif mode != "django":
        raise SystemExit(f"unknown mode {mode!r}")
    for handler in request.upload_handlers:
        handler.chunk_size = chunk

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    parser = MultiPartParser(request.META, body, request.upload_handlers, "utf-8")
    _, files = parser.parse()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(writer, 0)

    upload = files["file"]
    digest = getattr(upload, DIGEST_ATTRIBUTE, None)
    result = {
        "mode": mode,
        "chunk": chunk,
        "size": upload.size,
        "wall": wall,
        "user": after.ru_utime - before.ru_utime,
        "sys": after.ru_stime - before.ru_stime,
        "minflt": after.ru_minflt - before.ru_minflt,
        "checksum": digest.checksum if digest is not None else None,
    }
    upload.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
