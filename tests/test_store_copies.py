"""Copies between stores (``copy_from``), on real storages: local disk, Django's in-memory storage,
moto's S3 server and SeaweedFS (which checks SHA-256s and signed lengths as S3 does).

Every pair that matters: disk -> S3, S3 -> disk, S3 -> S3 on one server (copied by the server
itself), S3 -> S3 across the two servers (streamed), disk -> memory. A copy is the source's bytes
under a fresh name of the target, and the source is left as it was; a source that holds other bytes
than the blob says (fewer, more, or another SHA-256) fails the copy with a StorageError and leaves
nothing on the target. The slow tests measure the memory of a 200 MiB copy from disk to SeaweedFS
in a fresh interpreter::

    .venv/bin/python -m pytest tests/test_store_copies.py -m slow -s -q
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from django.core.files import File

from django_attachments.exceptions import ObjectMissing, StorageError
from django_attachments.stores import get_store
from django_attachments.stores.s3 import S3Store
from tests.conftest import S3_SERVERS, SEAWEEDFS_KEYS, get_s3_server, s3_backend, storage_config
from tests.servers import roomy_tempdir

# Stores and storages only, no database: once is enough, in the run with the slow tests (make test-sqlite);
# the PostgreSQL run and the Django 4.2 matrix would repeat them for nothing (about three minutes each).
pytestmark = pytest.mark.slow

MiB = 1024 * 1024
S3_KINDS = [f"s3-{name}" for name in S3_SERVERS]
#: Where the bytes come from -> where they go. Two S3 stores of one server reach the same service.
PAIRS = [
    ("disk", "s3-moto"),
    ("disk", "s3-seaweedfs"),
    ("s3-moto", "disk"),
    ("s3-seaweedfs", "disk"),
    ("s3-moto", "s3-moto"),
    ("s3-seaweedfs", "s3-seaweedfs"),
    ("s3-moto", "s3-seaweedfs"),
    ("s3-seaweedfs", "s3-moto"),
    ("disk", "memory"),
    ("memory", "disk"),
    ("disk", "disk"),
]
SAME_SERVER_PAIRS = [(kind, kind) for kind in S3_KINDS]


@pytest.fixture
def make_store(request, settings, tmp_path):
    """``make_store(kind, versioned=False, storage_options=None, **options)``: a fresh, empty store of ``kind``
    ("disk", "memory", "s3-moto", "s3-seaweedfs"; each S3 store a bucket of its own) under an alias of its own,
    with ``options`` as its STORE_OPTIONS and, on S3, ``storage_options`` as its storage's OPTIONS."""
    count = 0

    def make(kind: str, *, versioned: bool = False, storage_options: dict | None = None, **options) -> Any:
        nonlocal count
        count += 1
        alias = f"copies-{count}"
        if kind == "memory":
            config = {"BACKEND": "django.core.files.storage.InMemoryStorage"}
        elif kind.startswith("s3-"):
            server = get_s3_server(request, kind.removeprefix("s3-"))
            keys = {"access_key": server.access_key, "secret_key": server.secret_key}
            config = s3_backend(
                server.endpoint, server.make_bucket(versioned=versioned), **{**keys, **(storage_options or {})}
            )
        else:
            config = storage_config(kind, request, tmp_path)
        settings.STORAGES = {**settings.STORAGES, alias: config}
        if options:
            store_options = {**settings.DJANGO_ATTACHMENTS.get("STORE_OPTIONS", {}), alias: options}
            settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORE_OPTIONS": store_options}
        return get_store(alias)

    return make


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(store, data: bytes, content_type: str = "application/octet-stream") -> dict:
    return store.save(File(io.BytesIO(data)), size=len(data), checksum=sha256(data), content_type=content_type)


def read_digest(store, identifiers) -> tuple[int, str]:
    """The object's size and SHA-256, read back in chunks."""
    hasher, size = hashlib.sha256(), 0
    with store.open(identifiers) as stream:
        for chunk in stream.chunks(256 * 1024):
            hasher.update(chunk)
            size += len(chunk)
    return size, hasher.hexdigest()


def left_on(store) -> tuple[set[str], set[str]]:
    """What lies under the target's key prefix: objects, and (S3) multipart uploads begun and not finished."""
    objects = {obj.name for obj in store.list()}
    uploads = {upload.upload_id for upload in store.list_multipart()} if isinstance(store, S3Store) else set()
    return objects, uploads


def count_calls(store, *operations: str) -> Counter:
    """How many requests of each S3 operation the store's clients send from now on."""
    counts: Counter = Counter()
    for client in (store.client, store.unsigned_client):
        for operation in operations:
            client.meta.events.register(
                f"before-call.s3.{operation}", lambda operation=operation, **kwargs: counts.update([operation])
            )
    return counts


def copy(target, source, identifiers, data: bytes, **overrides) -> dict:
    blob = {"size": len(data), "checksum": sha256(data), "content_type": "application/pdf", **overrides}
    return target.copy_from(source, identifiers, **blob).identifiers


# -- every built-in store copies -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["disk", "memory", *S3_KINDS])
def test_every_store_can_copy(make_store, kind):
    assert make_store(kind).can_copy


@pytest.mark.parametrize("source_kind, target_kind", PAIRS)
def test_copy_is_the_sources_bytes_under_a_fresh_name(make_store, source_kind, target_kind):
    source, target = make_store(source_kind), make_store(target_kind)
    data = os.urandom(300 * 1024) + b"the end"
    identifiers = save(source, data)
    before = {obj.name for obj in source.list()}

    first = copy(target, source, identifiers, data)
    second = copy(target, source, identifiers, data)

    for copied in (first, second):
        assert copied["storage"] == target.alias
        assert target.name_of(copied).startswith("attachments/")
        assert read_digest(target, copied) == (len(data), sha256(data))
        # Shaped as the target's own save() shapes identifiers, and as stat() completes them.
        assert set(copied) == set(save(target, b"x"))
        assert target.stat(copied).identifiers == copied
    assert first["name"] != second["name"]  # never the same object twice, never overwritten
    # The source is untouched: the same objects, the same bytes.
    assert {obj.name for obj in source.list()} == before
    assert read_digest(source, identifiers) == (len(data), sha256(data))
    if isinstance(target, S3Store):
        head = target.client.head_object(Bucket=first["bucket"], Key=first["key"])
        assert head["ContentType"] == "application/pdf"


@pytest.mark.parametrize("source_kind, target_kind", [("disk", "s3-seaweedfs"), ("s3-moto", "disk")])
def test_an_empty_object_is_copied(make_store, source_kind, target_kind):
    source, target = make_store(source_kind), make_store(target_kind)
    identifiers = save(source, b"")
    copied = copy(target, source, identifiers, b"")
    assert read_digest(target, copied) == (0, sha256(b""))


# -- a source that is not the blob's bytes -------------------------------------------------------------


@pytest.mark.parametrize("source_kind, target_kind", PAIRS)
@pytest.mark.parametrize("wrong", ["shorter than recorded", "longer than recorded", "other bytes"])
def test_a_source_that_is_not_the_blob_fails_and_leaves_nothing(make_store, source_kind, target_kind, wrong):
    """The object was cut short (or grew, or changed) after its blob was recorded: no copy of it is kept."""
    source, target = make_store(source_kind), make_store(target_kind)
    data = os.urandom(200 * 1024)
    identifiers = save(source, data)
    blob = {
        "shorter than recorded": {"size": len(data) + 10},
        "longer than recorded": {"size": len(data) - 10, "checksum": sha256(data[:-10])},
        # The last byte flipped: random data ends in any byte, "!" too (then the checksum was the data's own).
        "other bytes": {"checksum": sha256(data[:-1] + bytes([data[-1] ^ 0x01]))},
    }[wrong]

    with pytest.raises(StorageError) as raised:
        copy(target, source, identifiers, data, **blob)

    assert not isinstance(raised.value, ObjectMissing)
    assert left_on(target) == (set(), set())
    assert read_digest(source, identifiers) == (len(data), sha256(data))


@pytest.mark.parametrize("source_kind, target_kind", [("disk", "s3-moto"), ("s3-moto", "disk"), ("disk", "memory")])
def test_a_missing_source_is_object_missing(make_store, source_kind, target_kind):
    source, target = make_store(source_kind), make_store(target_kind)
    identifiers = save(source, b"gone")
    source.delete(identifiers)
    with pytest.raises(ObjectMissing):
        copy(target, source, identifiers, b"gone")
    assert left_on(target) == (set(), set())


def test_a_source_read_that_fails_midway_fails_the_copy(make_store):
    """A read error of the source (a dropped connection) is a StorageError, and the partial copy goes."""
    source, target = make_store("disk"), make_store("disk")
    data = os.urandom(3 * MiB)
    identifiers = save(source, data)

    class Dropping(type(source)):
        def open(self, identifiers, **kwargs):
            stream = super().open(identifiers, **kwargs)
            read, sent = stream.read, [0]

            def read_then_drop(n=-1):
                if sent[0] >= MiB:
                    raise ConnectionResetError("the connection dropped")
                chunk = read(n)
                sent[0] += len(chunk)
                return chunk

            stream.read = read_then_drop
            return stream

    dropping = Dropping(source.alias, source.storage)
    with pytest.raises(StorageError, match="the connection dropped"):
        copy(target, dropping, identifiers, data)
    assert left_on(target) == (set(), set())


def test_the_s3_server_refuses_a_stream_whose_sha256_is_not_the_one_sent(make_store):
    """S3Store.save() of a stream that cannot rewind sends it as it reads it, with its SHA-256: the
    server checks the bytes against it (SeaweedFS does, as S3 does; moto checks nothing)."""
    target = make_store("s3-seaweedfs")
    data = os.urandom(100 * 1024)
    with pytest.raises(StorageError, match="BadDigest"):
        target.save(File(OneWay(io.BytesIO(data))), size=len(data), checksum=sha256(b"other"), content_type="x/y")
    assert left_on(target) == (set(), set())
    # The same stream with its own SHA-256 is taken, in one request, by a client that does not hash it first.
    calls = count_calls(target, "PutObject")
    saved = target.save(File(OneWay(io.BytesIO(data))), size=len(data), checksum=sha256(data), content_type="x/y")
    assert calls["PutObject"] == 1
    assert target.stat(saved).checksum == sha256(data)  # computed by the server from what it received


@pytest.mark.parametrize("kind", S3_KINDS)
@pytest.mark.parametrize("length", ["short", "long"])
def test_s3_save_of_a_one_way_stream_of_another_length_fails_fast(make_store, kind, length):
    """A stream that ends before its declared size would leave the server waiting for the rest."""
    target = make_store(kind, multipart_threshold=6 * MiB, part_size=5 * MiB)
    for size in (100 * 1024, 12 * MiB):  # one request, then parts
        data = os.urandom(size)
        sent = data[:-10] if length == "short" else data + b"0123456789"
        with pytest.raises(StorageError, match="ended after|more than"):
            target.save(File(OneWay(io.BytesIO(sent))), size=size, checksum=sha256(data), content_type="x/y")
    assert left_on(target) == (set(), set())


class OneWay(io.RawIOBase):
    """A stream that cannot seek, as a socket or another store's body."""

    def __init__(self, raw) -> None:
        super().__init__()
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._raw.readinto(buffer)


# -- large objects: S3's parts ------------------------------------------------------------------------

PARTS = {"multipart_threshold": 6 * MiB, "part_size": 5 * MiB}


@pytest.mark.parametrize(
    "source_kind, target_kind", [("disk", "s3-moto"), ("disk", "s3-seaweedfs"), ("s3-moto", "s3-seaweedfs")]
)
def test_a_copy_above_the_multipart_threshold_streams_in_parts(make_store, source_kind, target_kind):
    source, target = make_store(source_kind), make_store(target_kind, **PARTS)
    data = os.urandom(12 * MiB)  # parts of 5, 5 and 2 MiB
    identifiers = save(source, data)
    calls = count_calls(target, "UploadPart", "PutObject", "CopyObject")
    copied = copy(target, source, identifiers, data)
    assert calls == Counter({"UploadPart": 3})
    assert copied["etag"].endswith("-3")
    assert read_digest(target, copied) == (len(data), sha256(data))


@pytest.mark.parametrize("target_kind", S3_KINDS)
@pytest.mark.parametrize("wrong", ["shorter than recorded", "other bytes"])
def test_a_wrong_source_in_parts_is_aborted(make_store, target_kind, wrong):
    """Each part's SHA-256 is the part's own: the whole object's is checked here, before the last part goes."""
    source, target = make_store("disk"), make_store(target_kind, **PARTS)
    data = os.urandom(12 * MiB)
    identifiers = save(source, data)
    blob = {"shorter than recorded": {"size": len(data) + 10}, "other bytes": {"checksum": sha256(b"other")}}[wrong]
    calls = count_calls(target, "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload")
    with pytest.raises(StorageError):
        copy(target, source, identifiers, data, **blob)
    assert calls["CompleteMultipartUpload"] == 0 and calls["AbortMultipartUpload"] == 1
    assert calls["UploadPart"] == 2  # the third part, holding the end, never left
    assert left_on(target) == (set(), set())


# -- server-side copies within one S3 service -----------------------------------------------------------


@pytest.mark.parametrize("kind", S3_KINDS)
def test_same_service_is_told_apart_conservatively(make_store, kind, request):
    one, other = make_store(kind), make_store(kind)
    assert one.reaches_same_service(other) and other.reaches_same_service(one)
    elsewhere = make_store("s3-seaweedfs" if kind == "s3-moto" else "s3-moto")
    assert not one.reaches_same_service(elsewhere)
    server = get_s3_server(request, kind.removeprefix("s3-"))
    other_keys = make_store(kind, storage_options={"access_key": "someone-else", "secret_key": server.secret_key})
    assert not one.reaches_same_service(other_keys)


@pytest.mark.parametrize("source_kind, target_kind", SAME_SERVER_PAIRS)
def test_within_one_service_the_server_copies(make_store, monkeypatch, source_kind, target_kind):
    """No byte passes through this process: no GetObject, no PutObject, one CopyObject; the source is
    never opened. The server's SHA-256 of the copy is reported by stat()."""
    source = make_store(source_kind)
    target = make_store(target_kind, storage_options={"object_parameters": {"CacheControl": "max-age=60"}})
    data = os.urandom(2 * MiB)
    identifiers = save(source, data)
    reads, writes = (
        count_calls(source, "GetObject"),
        count_calls(target, "GetObject", "PutObject", "UploadPart", "CopyObject"),
    )
    monkeypatch.setattr(source, "open", lambda *args, **kwargs: pytest.fail("the source was read"))

    copied = copy(target, source, identifiers, data)

    assert reads == Counter() and writes == Counter({"CopyObject": 1})
    monkeypatch.undo()
    stat = target.stat(copied)
    assert stat.size == len(data) and stat.checksum == sha256(data)
    assert stat.identifiers == copied
    assert read_digest(target, copied) == (len(data), sha256(data))
    head = target.client.head_object(Bucket=copied["bucket"], Key=copied["key"])
    # The target storage's parameters, as save() gives them, not the source's.
    assert head["ContentType"] == "application/pdf" and head.get("CacheControl") == "max-age=60"
    assert read_digest(source, identifiers) == (len(data), sha256(data))


@pytest.mark.parametrize("source_kind, target_kind", SAME_SERVER_PAIRS)
def test_a_server_side_copy_above_the_copy_threshold_goes_in_parts(make_store, monkeypatch, source_kind, target_kind):
    source, target = make_store(source_kind), make_store(target_kind)
    # The line is 5 GiB; a small one sends a small object down the same path.
    monkeypatch.setattr(target, "multipart_copy_threshold", 6 * MiB)
    monkeypatch.setattr(target, "copy_part_size", 5 * MiB)
    data = os.urandom(12 * MiB)
    identifiers = save(source, data)
    reads, writes = count_calls(source, "GetObject"), count_calls(target, "UploadPartCopy", "UploadPart", "CopyObject")
    copied = copy(target, source, identifiers, data)
    assert reads == Counter() and writes == Counter({"UploadPartCopy": 3})
    assert copied["etag"].endswith("-3")
    assert target.stat(copied).checksum is None  # a composite checksum, not the object's SHA-256
    assert read_digest(target, copied) == (len(data), sha256(data))
    assert left_on(target)[1] == set()


@pytest.mark.parametrize("source_kind, target_kind", SAME_SERVER_PAIRS)
def test_a_server_side_copy_takes_the_recorded_version(make_store, source_kind, target_kind):
    source, target = make_store(source_kind, versioned=True), make_store(target_kind)
    data = b"version one" * 1000
    identifiers = save(source, data)
    assert identifiers["version_id"]
    # Someone overwrites the key behind our back: the copy is still of our version.
    source.client.put_object(Bucket=identifiers["bucket"], Key=identifiers["key"], Body=b"version two")
    writes = count_calls(target, "CopyObject", "PutObject")
    copied = copy(target, source, identifiers, data)
    assert writes == Counter({"CopyObject": 1})
    assert read_digest(target, copied) == (len(data), sha256(data))


def refuse(store, operation: str, code: str, status: int) -> list:
    """Make the service answer ``operation`` with an error, as a service that will not copy does.

    Neither test server refuses a copy between two buckets its keys own, so the refusal is injected
    at the store's client, in place of the request; everything else goes to the server.
    """
    refused = []

    def answer(**kwargs):
        refused.append(operation)
        error = {
            "Error": {"Code": code, "Message": "refused for the test"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse("http://127.0.0.1/", status, {}, None), error

    store.client.meta.events.register(f"before-call.s3.{operation}", answer)
    return refused


@pytest.mark.parametrize("source_kind, target_kind", SAME_SERVER_PAIRS)
@pytest.mark.parametrize("code, status", [("AccessDenied", 403), ("NotImplemented", 501)])
def test_a_refused_server_side_copy_is_streamed_instead(make_store, source_kind, target_kind, code, status, caplog):
    source, target = make_store(source_kind), make_store(target_kind)
    data = os.urandom(MiB)
    identifiers = save(source, data)
    refused = refuse(target, "CopyObject", code, status)
    reads = count_calls(source, "GetObject")
    copied = copy(target, source, identifiers, data)
    assert refused == ["CopyObject"] and reads == Counter({"GetObject": 1})
    assert read_digest(target, copied) == (len(data), sha256(data))
    assert f"would not copy object {identifiers['name']!r}" in caplog.text and "streaming it instead" in caplog.text


@pytest.mark.parametrize("source_kind, target_kind", SAME_SERVER_PAIRS)
def test_another_failure_of_a_server_side_copy_is_a_storage_error(make_store, source_kind, target_kind):
    source, target = make_store(source_kind), make_store(target_kind)
    identifiers = save(source, b"data")
    refuse(target, "CopyObject", "InternalError", 500)
    reads = count_calls(source, "GetObject")
    with pytest.raises(StorageError, match="InternalError"):
        copy(target, source, identifiers, b"data")
    assert reads == Counter()  # a service failing is not a refusal: nothing streams past it
    assert left_on(target) == (set(), set())


def test_different_keys_on_one_endpoint_stream(make_store):
    """moto takes any keys (SeaweedFS has one identity): the same endpoint with other keys is not the same service."""
    source = make_store("s3-moto", storage_options={"access_key": "another-key"})
    target = make_store("s3-moto")
    data = os.urandom(64 * 1024)
    identifiers = save(source, data)
    writes = count_calls(target, "CopyObject", "PutObject")
    copied = copy(target, source, identifiers, data)
    assert writes == Counter({"PutObject": 1})
    assert read_digest(target, copied) == (len(data), sha256(data))


def test_moto_to_seaweedfs_streams(make_store):
    source, target = make_store("s3-moto"), make_store("s3-seaweedfs")
    data = os.urandom(MiB)
    identifiers = save(source, data)
    reads, writes = count_calls(source, "GetObject"), count_calls(target, "CopyObject", "PutObject")
    copied = copy(target, source, identifiers, data)
    assert reads == Counter({"GetObject": 1}) and writes == Counter({"PutObject": 1})
    # Sent with its SHA-256, which SeaweedFS checked against the bytes and reports.
    assert target.stat(copied).checksum == sha256(data)


# -- memory: a 200 MiB copy from disk to SeaweedFS ---------------------------------------------------------

BIG = 200 * MiB
BOUND_MIB = 64
#: A guard against a hung subprocess, not a speed assertion.
PROBE_TIMEOUT = 900
REPO_ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import gc, hashlib, json, os, sys
sys.path.insert(0, os.getcwd())
import tests.conftest  # keeps boto3 away from a developer's own AWS configuration
from tests.memory_probe import growth, reset_peak_rss, sample

args = json.loads(sys.argv[1])
import django
from django.conf import settings

settings.STORAGES = {
    **settings.STORAGES,
    "disk": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": args["disk"]}},
    "s3": tests.conftest.s3_backend(args["endpoint"], args["bucket"], **args["keys"]),
}
settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"s3": args["options"]}}
django.setup()
from django.core.files.base import ContentFile
from django_attachments.stores import get_store

disk, s3 = get_store("disk"), get_store("s3")
warm = os.urandom(args["warm_up"])
warm_ids = disk.save(ContentFile(warm), size=len(warm), checksum=hashlib.sha256(warm).hexdigest(), content_type="x/y")
s3.copy_from(disk, warm_ids, size=len(warm), checksum=hashlib.sha256(warm).hexdigest(), content_type="x/y")
del warm
gc.collect()
reset_peak_rss()
before = sample()
copied = s3.copy_from(disk, {"storage": "disk", "name": args["name"]}, size=args["size"], checksum=args["sha256"],
                      content_type="application/octet-stream").identifiers
after = sample()
hasher, size = hashlib.sha256(), 0
with s3.open(copied) as stream:
    for chunk in stream.chunks(1024 * 1024):
        hasher.update(chunk)
        size += len(chunk)
s3.delete(copied)
print("COPY_PROBE " + json.dumps({
    "growth_mib": growth(before, after), "baseline": before, "etag": copied["etag"],
    "read_back_ok": size == args["size"] and hasher.hexdigest() == args["sha256"],
}))
"""


@pytest.fixture(scope="module")
def big_disk_object():
    """A 200 MiB object of random bytes in a disk storage's folder, written 1 MiB at a time; (folder, name, sha256)."""
    with roomy_tempdir("attachments-copies-", BIG * 3) as base:
        name = f"attachments/00/00/{uuid.uuid4().hex}"
        path = base / name
        path.parent.mkdir(parents=True)
        hasher = hashlib.sha256()
        with open(path, "wb") as out:
            for _ in range(BIG // MiB):
                chunk = os.urandom(MiB)
                hasher.update(chunk)
                out.write(chunk)
        yield base, name, hasher.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize(
    "way, options, warm_up",
    [
        # The default parts (8 MiB, two in flight), and one PUT of a stream that cannot rewind.
        ("parts", {}, 20 * MiB),
        ("one request", {"multipart_threshold": 256 * MiB}, MiB),
    ],
)
def test_copy_200_mib_disk_to_seaweedfs_peak_memory_is_bounded(request, big_disk_object, way, options, warm_up):
    folder, name, digest = big_disk_object
    server = get_s3_server(request, "seaweedfs")
    args = {
        "disk": str(folder),
        "name": name,
        "size": BIG,
        "sha256": digest,
        "endpoint": server.endpoint,
        "bucket": server.make_bucket(),
        "keys": SEAWEEDFS_KEYS,
        "options": options,
        "warm_up": warm_up,
    }
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env.pop("DJANGO_ATTACHMENTS_TEST_PG", None)
    env.pop("PYTHONTRACEMALLOC", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("COPY_PROBE ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"copy probe failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1].removeprefix("COPY_PROBE "))
    grew = result["growth_mib"]
    figures = (
        f"[{way}] copied 200 MiB disk -> SeaweedFS: peak RSS grew by {grew['max']} MiB "
        f"(ru_maxrss {grew['maxrss']}, VmHWM {grew['hwm']}; baseline VmHWM {result['baseline']['hwm']} MiB), "
        f"bound {BOUND_MIB} MiB; ETag {result['etag']}"
    )
    print("\n" + figures)
    assert result["read_back_ok"], figures
    assert result["etag"].endswith("-25") == (way == "parts"), figures  # 200 MiB in 8 MiB parts, or one PUT
    assert grew["max"] < BOUND_MIB, figures
