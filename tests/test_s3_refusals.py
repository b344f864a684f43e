"""What an S3 server refuses, and the S3 store relies on: seen on SeaweedFS, which checks as S3 does.

moto's server checks no signature, signed length or checksum, so the other
tests accept either the server's refusal or the app's own. Here, on SeaweedFS
only, each refusal the store counts on is asserted as the server gives it:

- a presigned PUT of another length than signed: 403 SignatureDoesNotMatch;
- other bytes than the signed ``x-amz-checksum-sha256``: 400 BadDigest;
- an unsigned part whose ``x-amz-checksum-crc32`` is not its bytes': refused;
- an existing key under ``If-None-Match: *``: 412 PreconditionFailed;
- a presigned PUT without a signed header, or with an unsigned ``x-amz-*`` one: 403;
- a body cut short of its signed length: nothing kept;
- an expired URL, a wrong key: 403;
- a SigV2 download URL with ``response-content-disposition``: 403, hence SigV4 for every URL.

Each refused request leaves no object behind.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import re
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from django.core.files import File

from django_attachments.exceptions import ObjectExists, StorageError
from django_attachments.stores import get_store
from tests.conftest import get_s3_server

DATA = b"%PDF-1.4\n" + bytes(range(256)) * 4


@pytest.fixture
def seaweedfs(request):
    return get_s3_server(request, "seaweedfs")


@pytest.fixture
def store(settings, seaweedfs):
    settings.STORAGES = {**settings.STORAGES, "strict": seaweedfs.backend(seaweedfs.make_bucket())}
    return get_store("strict")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keys(store) -> list[str]:
    return sorted(obj["Key"] for obj in store.client.list_objects_v2(Bucket=store.bucket).get("Contents", []))


def put(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
    """PUT ``body`` with exactly ``headers`` (Content-Length included); (status, S3 error code)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("PUT", f"{parts.path}?{parts.query}", body=body, headers=headers)
        response = connection.getresponse()
        found = re.search(rb"<Code>([^<]*)</Code>", response.read())
        return response.status, found and found.group(1).decode()
    finally:
        connection.close()


def target(store, data: bytes = DATA, *, expires: int = 300):
    identifiers = store.reserve()
    upload = store.upload_target(identifiers, size=len(data), checksum=sha256(data), expires=expires)
    return identifiers, upload


def test_the_signed_upload_target_takes_exactly_its_bytes(store):
    identifiers, upload = target(store)
    assert put(upload.url, DATA, upload.headers) == (200, None)
    stat = store.stat(identifiers)
    # SeaweedFS verified the SHA-256 before keeping it, and reports it: completion reads only the head.
    assert (stat.size, stat.checksum) == (len(DATA), sha256(DATA))


@pytest.mark.parametrize("body", [DATA[:-10], DATA + b"trailing", b""], ids=["shorter", "longer", "empty"])
def test_another_length_than_signed_is_403(store, body):
    identifiers, upload = target(store)
    headers = {**upload.headers, "Content-Length": str(len(body))}  # honest about the body sent
    assert put(upload.url, body, headers) == (403, "SignatureDoesNotMatch")
    assert keys(store) == []


def test_other_bytes_than_the_signed_checksum_are_400_bad_digest(store):
    identifiers, upload = target(store)
    other = DATA[:-1] + b"!"  # the same length: every signed header holds
    assert put(upload.url, other, upload.headers) == (400, "BadDigest")
    assert keys(store) == []
    assert put(upload.url, DATA, upload.headers) == (200, None)  # the right bytes still go


def test_a_body_that_ends_before_its_length_leaves_no_object(store):
    """A client that drops the connection mid-body: the server keeps nothing, not a truncated object."""
    identifiers, upload = target(store)
    parts = urlsplit(upload.url)
    headers = "".join(f"{name}: {value}\r\n" for name, value in upload.headers.items())
    request = f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n{headers}\r\n".encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request + DATA[: len(DATA) // 2])
        time.sleep(0.3)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and keys(store) == []:  # give a wrong outcome time to show
        time.sleep(0.5)
    assert keys(store) == []
    assert put(upload.url, DATA, upload.headers) == (200, None)  # the key is still free


def test_an_existing_key_is_412_under_if_none_match(store):
    identifiers, upload = target(store)
    assert put(upload.url, DATA, upload.headers) == (200, None)
    assert put(upload.url, DATA, upload.headers) == (412, "PreconditionFailed")
    with store.open(identifiers) as stream:
        assert b"".join(stream.chunks()) == DATA


@pytest.mark.parametrize(
    "change",
    ["without x-amz-checksum-sha256", "without If-None-Match", "with x-amz-meta-extra", "with x-amz-acl"],
)
def test_the_signature_binds_the_headers(store, change):
    identifiers, upload = target(store)
    headers = dict(upload.headers)
    if change.startswith("without "):
        name = change.removeprefix("without ")
        assert name in headers
        del headers[name]
    else:
        headers[change.removeprefix("with ")] = "public-read" if change.endswith("acl") else "x"
    assert put(upload.url, DATA, headers) == (403, "SignatureDoesNotMatch")
    assert keys(store) == []


def test_an_expired_upload_url_is_403(store):
    identifiers, upload = target(store, expires=1)
    time.sleep(2.1)
    status, code = put(upload.url, DATA, upload.headers)
    assert (status, code) == (403, "AccessDenied")
    assert keys(store) == []


def test_a_request_signed_with_another_key_is_403(settings, seaweedfs, store):
    backend = seaweedfs.backend(store.bucket)
    backend["OPTIONS"]["secret_key"] = "not-the-secret"
    settings.STORAGES = {**settings.STORAGES, "forged": backend}
    forged = get_store("forged")
    with pytest.raises(StorageError, match="SignatureDoesNotMatch"):
        forged.save(File(io.BytesIO(DATA)), size=len(DATA), checksum=sha256(DATA), content_type="application/pdf")
    identifiers, upload = target(forged)
    assert put(upload.url, DATA, upload.headers) == (403, "SignatureDoesNotMatch")
    assert keys(store) == []


def test_save_with_another_checksum_is_refused(store):
    with pytest.raises(StorageError, match="BadDigest"):
        store.save(File(io.BytesIO(DATA)), size=len(DATA), checksum=sha256(b"other"), content_type="application/pdf")
    assert keys(store) == []


def test_save_never_overwrites_in_one_put_or_in_parts(store, settings):
    taken = store.save(File(io.BytesIO(DATA)), size=len(DATA), checksum=sha256(DATA), content_type="x/y")
    with pytest.raises(ObjectExists):
        store.save(File(io.BytesIO(b"x")), size=1, checksum=sha256(b"x"), content_type="x/y", name=taken["name"])
    # Every write in parts: CompleteMultipartUpload under If-None-Match.
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "STORE_OPTIONS": {"strict": {"multipart_threshold": 0}},
    }
    store = get_store("strict")
    assert store.options.multipart_threshold == 0
    with pytest.raises(ObjectExists):
        store.save(
            File(io.BytesIO(b"parts")), size=5, checksum=sha256(b"parts"), content_type="x/y", name=taken["name"]
        )
    with store.open(taken) as stream:
        assert b"".join(stream.chunks()) == DATA
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []  # aborted


def test_a_part_with_another_checksum_is_400_bad_digest(store):
    key = store.key_of(store.new_name())
    upload_id = store.client.create_multipart_upload(Bucket=store.bucket, Key=key, ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    part = os.urandom(1000)
    with pytest.raises(ClientError, match="BadDigest"):
        store.client.upload_part(
            Bucket=store.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=1,
            Body=part,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(part + b"!").digest()).decode(),
        )
    store.client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)
    assert keys(store) == []


@pytest.mark.parametrize("wrong", [False, True], ids=["its-crc32", "another-crc32"])
def test_an_unsigned_part_is_checked_by_its_crc32(store, wrong):
    """A streamed upload's part (S3Store.open_stream) goes with UNSIGNED-PAYLOAD and its CRC-32, as
    the store computes it (zlib-ng's, where installed): the service keeps it only with that CRC-32."""
    from django_attachments.stores.s3 import crc32

    client = store.unsigned_client
    key = store.key_of(store.new_name())
    upload_id = client.create_multipart_upload(Bucket=store.bucket, Key=key, ChecksumAlgorithm="CRC32")["UploadId"]
    part = bytearray(os.urandom(100_000))
    digest = base64.b64encode(crc32(part + (b"!" if wrong else b"")).to_bytes(4, "big")).decode()
    try:
        if wrong:
            with pytest.raises(ClientError, match="BadDigest"):
                client.upload_part(
                    Bucket=store.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=part, ChecksumCRC32=digest
                )
        else:
            answer = client.upload_part(
                Bucket=store.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=part, ChecksumCRC32=digest
            )
            assert answer["ChecksumCRC32"] == digest
    finally:
        client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)
    assert keys(store) == []


def test_a_sigv2_download_url_with_a_content_disposition_is_403(store):
    """Why every URL is SigV4 (S3Store.url): the storage's own client, with django-storages'
    defaults in us-east-1, signs SigV2, which SeaweedFS takes only without response-* overrides."""
    identifiers = store.save(File(io.BytesIO(DATA)), size=len(DATA), checksum=sha256(DATA), content_type="x/y")
    params = {"Bucket": store.bucket, "Key": identifiers["key"]}
    disposition = 'attachment; filename="a.pdf"'
    plain = store.client.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
    assert "Signature=" in plain and "X-Amz-Algorithm" not in plain  # SigV2
    with urllib.request.urlopen(plain) as response:
        assert response.read() == DATA
    sigv2 = store.client.generate_presigned_url(
        "get_object", Params={**params, "ResponseContentDisposition": disposition}, ExpiresIn=60
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(sigv2).close()
    assert refused.value.code == 403
    refused.value.close()
    with urllib.request.urlopen(store.url(identifiers, expires=60, content_disposition=disposition)) as response:
        assert response.read() == DATA and response.headers["Content-Disposition"] == disposition
