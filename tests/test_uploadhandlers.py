"""Hashing while Django parses the upload: the digest is right, and attach() trusts it instead of re-reading."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, MemoryFileUploadHandler, StopUpload
from django.test import RequestFactory

from django_attachments import services
from django_attachments.exceptions import FileTooLarge, StorageError
from django_attachments.ingest import DIGEST_ATTRIBUTE, BackgroundHasher, Digest, Hasher
from django_attachments.models import Attachment, Blob
from django_attachments.uploadhandlers import HashingTemporaryFileUploadHandler, guard_body


def test_hasher_matches_hashlib():
    chunks = [os.urandom(n) for n in (0, 1, 65536, 1000, 300_000)]
    hasher = Hasher(head_bytes=100)
    for chunk in chunks:
        hasher.update(chunk)
    digest = hasher.digest()
    data = b"".join(chunks)
    assert digest == Digest(checksum=hashlib.sha256(data).hexdigest(), size=len(data), head=data[:100])


def hashing_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "attachments-hash"}


def all_end_within(threads: set[threading.Thread], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    return not any(thread.is_alive() for thread in threads)


def wait_until(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_the_background_hasher_matches_hashlib_and_keeps_the_head():
    chunks = [os.urandom(n) for n in (0, 1, 65536, 1000, 2 * 1024 * 1024 + 7, 0, 300_000)]
    hasher = BackgroundHasher(head_bytes=70_000)
    for chunk in chunks:
        hasher.update(chunk)
    digest = hasher.digest()
    data = b"".join(chunks)
    assert digest == Digest(checksum=hashlib.sha256(data).hexdigest(), size=len(data), head=data[:70_000])
    assert hasher.digest() == digest  # asked again: the same
    with pytest.raises(ValueError, match="closed"):
        hasher.update(b"more")


def test_a_buffer_its_owner_reuses_is_hashed_as_it_was_when_handed_over():
    """A handler before ours may pass on one bytearray it refills: the hash is of what each chunk held."""
    buffer = bytearray(1024 * 1024)
    hasher = BackgroundHasher(depth=4)
    expected = hashlib.sha256()
    for number in range(12):
        buffer[:] = bytes([number]) * len(buffer)
        expected.update(buffer)
        hasher.update(buffer)
        hasher.update(memoryview(buffer)[:1000])
        expected.update(bytes(buffer[:1000]))
    assert hasher.digest().checksum == expected.hexdigest()


def test_at_most_depth_chunks_wait_for_the_hash(monkeypatch):
    """The parser blocks once ``depth`` chunks wait and one is being hashed: memory is bounded, not the file."""
    release = threading.Event()
    update = Hasher.update

    def slow(self, chunk):
        release.wait(10)
        update(self, chunk)

    monkeypatch.setattr(Hasher, "update", slow)
    hasher = BackgroundHasher(depth=3)
    handed: list[int] = []

    def parser() -> None:
        for number in range(10):
            hasher.update(number.to_bytes(4, "big"))
            handed.append(number)

    thread = threading.Thread(target=parser)
    thread.start()
    assert wait_until(lambda: len(handed) == 4)  # one taken by the hashing thread, three waiting
    time.sleep(0.2)
    assert len(handed) == 4  # and no more while the hash is held up
    release.set()
    thread.join(5)
    assert len(handed) == 10 and hasher.digest().size == 40


def test_a_hash_that_fails_is_raised_by_digest_and_never_blocks_the_parser(monkeypatch):
    update = Hasher.update
    seen: list[bytes] = []

    def failing(self, chunk):
        seen.append(chunk)
        if len(seen) == 2:
            raise MemoryError("no room to hash")
        update(self, chunk)

    monkeypatch.setattr(Hasher, "update", failing)
    hasher = BackgroundHasher(depth=2)
    for number in range(50):  # more than depth after the failure: drained, not hashed
        hasher.update(number.to_bytes(4, "big"))
    with pytest.raises(MemoryError, match="no room"):
        hasher.digest()
    assert len(seen) == 2


def test_an_idle_hasher_ends_its_thread_and_starts_another_for_more():
    """Abandoned mid-file and still referred to (a request kept by a log record), its thread ends all the
    same; a slow client's next chunk after a pause gets a thread again, and the digest is of every chunk."""
    before = hashing_threads()
    hasher = BackgroundHasher(idle=0.05)
    hasher.update(b"first")
    first = hashing_threads() - before
    assert len(first) == 1 and all_end_within(first, 2)
    hasher.update(b"second")  # after the pause
    assert hasher.digest().checksum == hashlib.sha256(b"firstsecond").hexdigest()
    assert all_end_within(hashing_threads() - before, 2)


def multipart_request(files: dict[str, bytes]):
    sources = {}
    for name, data in files.items():
        source = TemporaryUploadedFile(f"{name}.bin", "application/octet-stream", len(data), None)
        source.write(data)
        source.seek(0)
        sources[name] = source
    request = RequestFactory().post("/", sources)
    for source in sources.values():
        source.close()
    return request


def test_each_file_of_a_request_is_hashed_on_its_own():
    files = {"first": os.urandom(3 * 1024 * 1024 + 1), "second": os.urandom(4 * 1024 * 1024 - 3)}
    request = multipart_request(files)
    guard_body(request, limit=None)
    for name, data in files.items():
        digest = getattr(request.FILES[name], DIGEST_ATTRIBUTE)
        assert (digest.checksum, digest.size) == (hashlib.sha256(data).hexdigest(), len(data))


def test_a_parse_that_fails_mid_file_leaves_no_hashing_thread_behind():
    """The size limit stops the parse inside the file, and Django tells the handlers nothing. The request
    is kept (as a log record keeps it): the thread ends anyway, without the garbage collector."""
    before = hashing_threads()
    request = multipart_request({"file": os.urandom(6 * 1024 * 1024)})
    guard_body(request, limit=6 * 1024 * 1024 - 100_000)  # declared within the allowance: refused mid-file
    with pytest.raises(FileTooLarge):
        request.FILES  # noqa: B018 (parses the body)
    started = hashing_threads() - before
    assert all_end_within(started, 5), started
    assert request.upload_handlers  # still referred to


def test_a_handler_stopping_the_upload_closes_the_hash():
    """A project's handler raising StopUpload: Django calls upload_complete, not file_complete."""

    class StopAtSecondChunk(FileUploadHandler):
        def receive_data_chunk(self, raw_data, start):
            if start:
                raise StopUpload(connection_reset=False)
            return raw_data

        def file_complete(self, file_size):
            return None

    before = hashing_threads()
    request = multipart_request({"file": os.urandom(5 * 1024 * 1024)})
    request.upload_handlers = [StopAtSecondChunk(request), *request.upload_handlers]
    guard_body(request, limit=None)
    assert "file" not in request.FILES
    hashing = [handler for handler in request.upload_handlers if isinstance(handler, HashingTemporaryFileUploadHandler)]
    assert hashing and hashing[0]._hasher is None
    assert not hashing_threads() - before


def test_handler_leaves_a_digest_on_large_uploads(settings):
    data = os.urandom(3 * 1024 * 1024)  # above FILE_UPLOAD_MAX_MEMORY_SIZE: a temporary file
    with TemporaryUploadedFile("x.bin", "application/octet-stream", len(data), None) as source:
        source.write(data)
        source.seek(0)
        request = RequestFactory().post("/", {"file": source})
    request.upload_handlers = [MemoryFileUploadHandler(request), HashingTemporaryFileUploadHandler(request)]
    uploaded = request.FILES["file"]
    digest = getattr(uploaded, DIGEST_ATTRIBUTE)
    assert digest.checksum == hashlib.sha256(data).hexdigest() and digest.size == len(data)
    assert uploaded.read() == data


@pytest.mark.django_db
@pytest.mark.all_s3_servers  # the strict server refuses what moto keeps
def test_attach_uses_the_digest_instead_of_reading_again(owners, store, store_server):
    data = b"%PDF-1.4 real bytes"
    upload = TemporaryUploadedFile("a.pdf", "application/pdf", len(data), None)
    upload.write(data)
    upload.seek(0)
    # A digest that does not match the bytes proves which one attach() used.
    setattr(upload, DIGEST_ATTRIBUTE, Digest(checksum="f" * 64, size=len(data), head=data))
    if store_server and store_server.strict:
        # S3 checks the SHA-256 sent with the bytes, the digest's: it refuses them, and nothing is kept.
        with pytest.raises(StorageError, match="BadDigest"):
            services.attach(upload, owner_type="patient", owner_id=owners.alice.pk)
        upload.close()
        assert not Blob.objects.exists() and not Attachment.objects.exists() and list(store.list()) == []
    else:
        blob = services.attach(upload, owner_type="patient", owner_id=owners.alice.pk).blob
        upload.close()  # as Django does at the end of a request; the file was moved into the store on disk
        assert blob.checksum == "f" * 64 and blob.content_type == "application/pdf"
    # A digest whose size disagrees with the file is ignored.
    other = TemporaryUploadedFile("b.pdf", "application/pdf", len(data), None)
    other.write(data + b"!")
    other.seek(0)
    other.size = len(data) + 1
    setattr(other, DIGEST_ATTRIBUTE, Digest(checksum="e" * 64, size=len(data), head=data))
    checksum = services.attach(other, owner_type="patient", owner_id=owners.adam.pk).blob.checksum
    other.close()
    assert checksum == hashlib.sha256(data + b"!").hexdigest()
