"""Hashing while Django parses the upload: the digest is right, and attach() trusts it instead of re-reading."""

from __future__ import annotations

import hashlib
import os

import pytest
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.test import RequestFactory

from django_attachments import services
from django_attachments.exceptions import StorageError
from django_attachments.ingest import DIGEST_ATTRIBUTE, Digest, Hasher
from django_attachments.models import Attachment, Blob
from django_attachments.uploadhandlers import HashingTemporaryFileUploadHandler


def test_hasher_matches_hashlib():
    chunks = [os.urandom(n) for n in (0, 1, 65536, 1000, 300_000)]
    hasher = Hasher(head_bytes=100)
    for chunk in chunks:
        hasher.update(chunk)
    digest = hasher.digest()
    data = b"".join(chunks)
    assert digest == Digest(checksum=hashlib.sha256(data).hexdigest(), size=len(data), head=data[:100])


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
