"""One contract, every store: local disk, S3 (moto server) and any Django storage (in memory)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files import File

from django_attachments.exceptions import ObjectExists, ObjectMissing, StorageError
from django_attachments.stores import FileSystemStore, StorageAPIStore, UploadedPart, get_store
from tests.conftest import STORE_KINDS, get_s3_server, s3_backend, storage_config


@pytest.fixture(params=[*STORE_KINDS, "memory"])
def store(request, settings, tmp_path):
    if request.param == "memory":
        config = {"BACKEND": "django.core.files.storage.InMemoryStorage"}
    else:
        config = storage_config(request.param, request, tmp_path)
    settings.STORAGES = {**settings.STORAGES, "contract": config}
    return get_store("contract")


def save(store, data: bytes, content_type="application/octet-stream"):
    return store.save(
        File(io.BytesIO(data)), size=len(data), checksum=hashlib.sha256(data).hexdigest(), content_type=content_type
    )


def read(store, identifiers, **kwargs) -> bytes:
    with store.open(identifiers, **kwargs) as stream:
        return b"".join(stream.chunks(7))


def test_adapter_choice():
    assert type(get_store("default")) is FileSystemStore


def test_unknown_alias_is_a_configuration_error():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="'nope' is not defined in settings.STORAGES"):
        get_store("nope")


def test_round_trip(store):
    data = b"hello attachments" * 100
    identifiers = save(store, data)
    assert identifiers["storage"] == "contract"
    assert read(store, identifiers) == data
    assert store.exists(identifiers)


def test_names_are_random_sharded_and_prefixed(store):
    a, b = save(store, b"same"), save(store, b"same")
    assert a["name"] != b["name"]  # never overwritten, never shared
    for identifiers in (a, b):
        prefix, shard1, shard2, token = identifiers["name"].split("/")
        assert prefix == "attachments" and token.startswith(shard1 + shard2) and len(token) == 32


def test_key_prefix_setting(store, settings):
    settings.DJANGO_ATTACHMENTS = {"KEY_PREFIX": "tenant-files/"}
    assert save(store, b"x")["name"].startswith("tenant-files/")


def test_identifiers_hold_no_machine_paths(store):
    identifiers = save(store, b"x")
    for value in identifiers.values():
        assert not str(value).startswith(os.sep) or store.alias == value


@pytest.mark.parametrize(
    "start, end, expected", [(0, 0, b"0"), (2, 5, b"2345"), (8, None, b"89"), (0, 9, b"0123456789")]
)
def test_byte_ranges(store, start, end, expected):
    identifiers = save(store, b"0123456789")
    assert read(store, identifiers, start=start, end=end) == expected


def test_read_in_bounded_chunks(store):
    identifiers = save(store, bytes(range(256)) * 40)
    with store.open(identifiers) as stream:
        sizes = [len(chunk) for chunk in stream.chunks(1000)]
    assert max(sizes) <= 1000 and sum(sizes) == 10240


def test_missing_object(store):
    identifiers = save(store, b"x")
    store.delete(identifiers)
    assert not store.exists(identifiers)
    with pytest.raises(ObjectMissing):
        store.open(identifiers)
    store.delete(identifiers)  # deleting twice is fine


def test_identifiers_of_another_storage_are_refused(store):
    identifiers = {**save(store, b"x"), "storage": "elsewhere"}
    with pytest.raises(StorageError):
        store.open(identifiers)


def test_list_under_prefix(store):
    before = datetime.now(timezone.utc) - timedelta(minutes=5)
    saved = {save(store, f"file {i}".encode())["name"] for i in range(3)}
    store.storage.save("elsewhere/not-ours.txt", File(io.BytesIO(b"x")))
    listed = list(store.list())
    assert {obj.name for obj in listed} == saved
    for obj in listed:
        assert obj.size == 6
        modified = obj.modified if obj.modified.tzinfo else obj.modified.replace(tzinfo=timezone.utc)
        assert modified > before


def test_delete_many(store):
    keep = save(store, b"keep")
    doomed = [save(store, f"doomed {i}".encode()) for i in range(5)]
    missing = {**doomed[0], "name": "attachments/00/00/" + "0" * 32}
    if "key" in missing:
        missing["key"] = missing["name"]
    assert store.delete_many([*doomed, missing]) == []
    assert {obj.name for obj in store.list()} == {keep["name"]}


def test_url(store):
    data = b"signed"
    identifiers = save(store, data)
    url = store.url(identifiers, expires=60, content_disposition='attachment; filename="a.txt"')
    if not store.can_sign_urls:
        assert url is None
        return
    with urllib.request.urlopen(url) as response:
        assert response.read() == data
        assert response.headers["Content-Disposition"] == 'attachment; filename="a.txt"'


# -- capabilities: every store, as its flags declare -------------------------------


@pytest.fixture
def s3_server_of(request, store):
    """The S3 server behind the ``store`` param; None for the stores that are not S3."""
    kind = request.node.callspec.params["store"]
    return get_s3_server(request, kind.removeprefix("s3-")) if kind.startswith("s3-") else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(target, body: bytes, **headers) -> int:
    """Send ``body`` as ``target`` says (its headers, overridden by ``headers``); the HTTP status."""
    parts = urlsplit(target.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(
            target.method, f"{parts.path}?{parts.query}", body=body, headers={**target.headers, **headers}
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_stat_reports_without_reading(store, monkeypatch):
    assert store.can_stat
    data = b"stat me" * 1000
    identifiers = save(store, data)
    monkeypatch.setattr(store, "open", lambda *a, **kw: pytest.fail("stat() read the object"))
    stat = store.stat(identifiers)
    assert stat.size == len(data)
    assert stat.checksum in (None, sha256(data))
    assert stat.identifiers == identifiers
    # Known only by name (a listing, a reserved name): stat() completes the identifiers.
    assert store.stat(store.identifiers_for(identifiers["name"])).identifiers == identifiers


def test_stat_of_a_missing_object(store):
    identifiers = save(store, b"x")
    store.delete(identifiers)
    with pytest.raises(ObjectMissing):
        store.stat(identifiers)


def test_reserve_hands_out_fresh_names_and_writes_nothing(store, settings):
    assert store.can_reserve
    settings.DJANGO_ATTACHMENTS = {"KEY_PREFIX": "reserved/"}
    reserved = [store.reserve() for _ in range(5)]
    assert len({identifiers["name"] for identifiers in reserved}) == 5
    for identifiers in reserved:
        assert identifiers["storage"] == store.alias
        assert store.name_of(identifiers).startswith("reserved/")  # this store's identifiers
        assert not store.exists(identifiers)
        with pytest.raises(ObjectMissing):
            store.stat(identifiers)
    assert list(store.list("reserved/")) == []


def test_save_under_a_reserved_name_never_overwrites(store):
    reserved = store.reserve()
    first = b"the first bytes"
    saved = store.save(
        File(io.BytesIO(first)), size=len(first), checksum=sha256(first), content_type="x/y", name=reserved["name"]
    )
    assert saved["name"] == reserved["name"]
    assert store.stat(reserved).size == len(first)
    second = b"other bytes, longer than the first"
    with pytest.raises(ObjectExists):
        store.save(
            File(io.BytesIO(second)),
            size=len(second),
            checksum=sha256(second),
            content_type="x/y",
            name=reserved["name"],
        )
    assert read(store, saved) == first
    assert [obj.name for obj in store.list()] == [reserved["name"]]


def test_upload_target_takes_exactly_its_bytes(store):
    data = b"%PDF-1.4 sent by the client" * 50
    reserved = store.reserve()
    target = store.upload_target(reserved, size=len(data), checksum=sha256(data), expires=300)
    if not store.can_sign_uploads:
        assert target is None
        return
    assert target.method == "PUT"
    assert put(target, data) == 200
    assert store.stat(reserved).size == len(data)
    assert read(store, reserved) == data


@pytest.mark.parametrize("body", ["other bytes", "shorter", "longer"])
def test_upload_target_refuses_other_bytes(store, s3_server_of, body):
    if not store.can_sign_uploads:
        pytest.skip("this store hands out no upload targets")
    if not s3_server_of.strict:
        pytest.skip("moto checks no signed length or checksum (tests/test_s3_refusals.py)")
    data = b"%PDF-1.4 sent by the client" * 50
    sent = {"other bytes": data[:-1] + b"!", "shorter": data[:-1], "longer": data + b"!"}[body]
    reserved = store.reserve()
    target = store.upload_target(reserved, size=len(data), checksum=sha256(data), expires=300)
    # Another length breaks the signature (403), as S3 answers; other bytes of the signed length, the checksum (400).
    assert put(target, sent, **{"Content-Length": str(len(sent))}) == (400 if body == "other bytes" else 403)
    assert not store.exists(reserved)
    assert put(target, data) == 200  # the name is still free for the right bytes


OPTIONAL_CALLS = {
    "can_stat": [lambda store, ids: store.stat(ids)],
    "can_reserve": [lambda store, ids: store.reserve()],
    "can_copy": [
        lambda store, ids: store.copy_from(store, ids, size=1, checksum="0" * 64, content_type="x/y"),
    ],
    "can_multipart": [
        lambda store, ids: store.start_multipart(ids, content_type="x/y"),
        lambda store, ids: store.part_target(ids, "u", number=1, size=1, checksum="0" * 64, expires=60),
        lambda store, ids: store.complete_multipart(ids, "u", []),
        lambda store, ids: store.abort_multipart(ids, "u"),
    ],
}


# -- multipart uploads (every built-in store) --------------------------------------------

MiB = 1024 * 1024


def send_part(store, identifiers, upload_id, number: int, data: bytes) -> None:
    """Send a part as a client would: to its signed request, or (stores that cannot sign) through save_part."""
    target = store.part_target(
        identifiers, upload_id, number=number, size=len(data), checksum=sha256(data), expires=300
    )
    if target is None:
        store.save_part(
            identifiers, upload_id, number=number, content=File(io.BytesIO(data)), size=len(data), checksum=sha256(data)
        )
    else:
        assert put(target, data) == 200


def test_multipart_round_trip_in_any_order_with_a_part_sent_twice(store):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"the last part, short"]
    identifiers = store.reserve()
    upload_id = store.start_multipart(identifiers, content_type="application/octet-stream")
    assert store.list_parts(identifiers, upload_id) == []
    for number in (3, 1, 2, 1):
        send_part(store, identifiers, upload_id, number, parts[number - 1])
    held = store.list_parts(identifiers, upload_id)
    assert [(p.number, p.size) for p in held] == [(1, 5 * MiB), (2, 5 * MiB), (3, len(parts[2]))]
    assert all(p.checksum in (None, sha256(parts[p.number - 1])) for p in held)
    assert upload_id in {u.upload_id for u in store.list_multipart()}
    assert not store.exists(identifiers)  # nothing is there until completed

    joined = [UploadedPart(p.number, p.size, p.etag, sha256(parts[p.number - 1])) for p in held]
    stat = store.complete_multipart(identifiers, upload_id, joined)
    whole = b"".join(parts)
    assert stat.size == len(whole) and stat.checksum in (None, sha256(whole))
    assert read(store, stat.identifiers) == whole
    assert upload_id not in {u.upload_id for u in store.list_multipart()}
    store.abort_multipart(identifiers, upload_id)  # after completion: nothing to drop, no error
    assert read(store, identifiers) == whole


def test_multipart_never_overwrites_and_aborts_cleanly(store):
    identifiers = save(store, b"already here")
    upload_id = store.start_multipart(identifiers, content_type="application/octet-stream")
    send_part(store, identifiers, upload_id, 1, b"x" * 100)
    [held] = store.list_parts(identifiers, upload_id)
    with pytest.raises(ObjectExists):
        store.complete_multipart(identifiers, upload_id, [UploadedPart(1, 100, held.etag, sha256(b"x" * 100))])
    assert read(store, identifiers) == b"already here"

    other = store.reserve()
    second = store.start_multipart(other, content_type="application/octet-stream")
    send_part(store, other, second, 1, b"y" * 10)
    assert second in {u.upload_id for u in store.list_multipart()}
    store.abort_multipart(other, second)
    store.abort_multipart(other, second)  # twice: no error
    assert second not in {u.upload_id for u in store.list_multipart()}
    try:
        assert store.list_parts(other, second) == []
    except ObjectMissing:
        pass  # S3 forgets an aborted upload
    assert not store.exists(other)


def test_flags_tell_the_truth(store):
    """What a store's flag denies, it refuses (NotImplementedError) or answers None, as documented."""
    identifiers = save(store, b"x")
    for flag, calls in OPTIONAL_CALLS.items():
        if getattr(store, flag):
            continue
        for call in calls:
            with pytest.raises(NotImplementedError, match=f"not supported by this store .*{flag} is False"):
                call(store, identifiers)
    if not store.can_sign_urls:
        assert store.url(identifiers, expires=60) is None
    if not store.can_sign_uploads:
        assert store.upload_target(store.reserve(), size=1, checksum="0" * 64, expires=60) is None
    # Every built-in store copies from another (tests/test_store_copies.py).
    assert store.can_copy


def test_base_store_says_what_is_missing_and_what_is_unsupported(tmp_path):
    from django.core.files.storage import FileSystemStorage

    from django_attachments.stores import BaseStore

    class Bare(BaseStore):
        can_copy = True  # promised, but not provided

    class Modest(BaseStore):
        can_stat = False
        can_reserve = False

    storage = FileSystemStorage(location=str(tmp_path))
    bare, modest = Bare("bare", storage), Modest("modest", storage)
    identifiers = {"storage": "bare", "name": "attachments/x"}
    for call, message in [
        (lambda: bare.save(File(io.BytesIO(b"x")), size=1, checksum="0", content_type="x/y"), r"\.save\(\) must be"),
        (lambda: bare.stat(identifiers), r"\.stat\(\) must be overridden"),
        (lambda: bare.copy_from(bare, identifiers, size=1, checksum="0", content_type="x/y"), "must be overridden"),
        (lambda: bare.start_multipart(identifiers, content_type="x/y"), "not supported by this store"),
        (lambda: modest.stat(identifiers), r"\.stat\(\) is not supported by this store \(Modest.can_stat is False\)"),
        (lambda: modest.reserve(), r"\.reserve\(\) is not supported by this store \(Modest.can_reserve is False\)"),
    ]:
        with pytest.raises(NotImplementedError, match=message):
            call()
    assert bare.reserve()["storage"] == "bare"  # the base hands out names where can_reserve
    assert (
        bare.url(identifiers, expires=60) is None
        and bare.upload_target(identifiers, size=1, checksum="0", expires=60) is None
    )


def test_generic_store_for_other_storages(settings):
    settings.STORAGES = {**settings.STORAGES, "mem": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    assert type(get_store("mem")) is StorageAPIStore


# -- S3 specifics ---------------------------------------------------------------


@pytest.fixture
def s3(settings, s3_server):
    def make(**options):
        versioned = options.pop("versioned", False)
        settings.STORAGES = {
            **settings.STORAGES,
            "s3": s3_server.backend(s3_server.make_bucket(versioned=versioned), **options),
        }
        return get_store("s3")

    return make


def count_calls(store, operation):
    calls = []
    store.client.meta.events.register(f"before-call.s3.{operation}", lambda **kw: calls.append(1))
    return calls


def test_s3_identifiers(s3):
    store = s3(location="media")
    identifiers = save(store, b"x")
    assert identifiers["bucket"] == store.bucket
    assert identifiers["key"] == "media/" + identifiers["name"]
    assert identifiers["region"] == "us-east-1"
    assert identifiers["etag"]
    assert "version_id" not in identifiers
    assert [obj.name for obj in store.list()] == [identifiers["name"]]


def test_s3_versioned_bucket_records_and_reads_the_version(s3):
    store = s3(versioned=True)
    identifiers = save(store, b"version one")
    assert identifiers["version_id"]
    # Someone overwrites the key behind our back: we still read our version.
    store.client.put_object(Bucket=store.bucket, Key=identifiers["key"], Body=b"version two")
    assert read(store, identifiers) == b"version one"


def test_s3_never_overwrites_an_existing_key(s3):
    store = s3()
    taken = save(store, b"original")

    class FixedNameStore(type(store)):
        def new_name(self):
            return taken["name"]

    clash = FixedNameStore(store.alias, store.storage)
    with pytest.raises(StorageError):
        save(clash, b"intruder")
    assert read(store, taken) == b"original"


def test_s3_multipart_upload_round_trip(s3):
    store = s3()
    data = os.urandom(store.options.multipart_threshold + store.options.part_size // 2)
    parts = count_calls(store, "UploadPart")
    identifiers = save(store, data)
    assert len(parts) == 3
    with store.open(identifiers) as stream:
        assert hashlib.sha256(b"".join(stream.chunks())).digest() == hashlib.sha256(data).digest()


def test_s3_deletes_in_batches_of_1000(s3):
    store = s3()
    identifiers = [store.identifiers_for(f"attachments/00/00/{i:032x}") for i in range(2001)]
    for ids in identifiers[:3]:
        store.client.put_object(Bucket=store.bucket, Key=ids["name"], Body=b"x")
    calls = count_calls(store, "DeleteObjects")
    assert store.delete_many(identifiers) == []
    assert len(calls) == 3
    assert list(store.list()) == []


@pytest.mark.parametrize("signature_version", [None, "s3", "s3v4"])
def test_s3_urls_are_sigv4_whatever_the_storage_signs_with(s3, signature_version):
    """S3 refuses SigV2 for new buckets, and servers that check signatures refuse a SigV2 URL with
    response-* overrides (django-storages' default in us-east-1): every URL is SigV4, and works."""
    store = s3(**({"signature_version": signature_version} if signature_version else {}))
    data = b"%PDF-1.4 signed for a week"
    identifiers = save(store, data)
    disposition = "attachment; filename=\"r_sum_ 1.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%201.pdf"
    url = store.url(identifiers, expires=60, content_disposition=disposition, content_type="application/pdf")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["60"]
    assert "Signature" not in query and "AWSAccessKeyId" not in query
    with urllib.request.urlopen(url) as response:  # from the S3 server itself
        assert response.read() == data
        assert response.headers["Content-Disposition"] == disposition
        assert response.headers["Content-Type"] == "application/pdf"


def test_s3_unsigned_storage_gives_no_url(s3):
    store = s3(querystring_auth=False)
    assert store.url(save(store, b"x"), expires=60) is None


def test_s3_sends_the_sha256_so_s3_can_reject_a_corrupted_transfer(s3):
    """moto ignores the checksum headers, so the test inspects what is sent."""
    store = s3()
    part_size = store.options.part_size
    sent = []

    def capture(params, **kwargs):
        sent.append({key: params.get(key) for key in ("ChecksumSHA256", "ChecksumAlgorithm", "IfNoneMatch")})

    for operation in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        store.client.meta.events.register(f"before-parameter-build.s3.{operation}", capture)
    small = b"small object"
    save(store, small)
    assert sent[0]["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(small).digest()).decode()
    assert sent[0]["IfNoneMatch"] == "*"
    sent.clear()
    big = os.urandom(store.options.multipart_threshold + 1)
    save(store, big)
    create, *parts, complete = sent
    assert create["ChecksumAlgorithm"] == "SHA256" and complete["IfNoneMatch"] == "*"
    offsets = range(0, len(big), part_size)
    assert sorted(p["ChecksumSHA256"] for p in parts) == sorted(
        base64.b64encode(hashlib.sha256(big[i : i + part_size]).digest()).decode() for i in offsets
    )


def test_s3_options_default_to_the_documented_sizes(s3):
    from django_attachments.stores.s3 import S3Options

    assert s3().options == S3Options() == S3Options(16 * 2**20, 8 * 2**20, 4)


def test_store_options_reach_the_s3_store(s3, settings):
    """A small part size sends a file above the threshold in several parts; S3 says how many (ETag "-N")."""
    settings.DJANGO_ATTACHMENTS = {
        "STORE_OPTIONS": {"s3": {"multipart_threshold": 6 * 2**20, "part_size": 5 * 2**20, "max_parts_in_flight": 1}}
    }
    store = s3()
    assert (store.options.multipart_threshold, store.options.part_size, store.options.max_parts_in_flight) == (
        6 * 2**20,
        5 * 2**20,
        1,
    )
    data = os.urandom(11 * 2**20)  # above the threshold: parts of 5, 5 and 1 MiB
    identifiers = save(store, data)
    assert identifiers["etag"].endswith("-3")
    assert store.stat(identifiers).size == len(data)
    small = save(store, os.urandom(6 * 2**20))  # at the threshold: one PutObject
    assert "-" not in small["etag"]


@pytest.mark.parametrize("most", [1, 3])
def test_s3_parts_in_flight_are_bounded(s3, settings, most):
    """Memory is about part_size * max_parts_in_flight: never more parts than that are out at once."""
    import threading
    import time

    settings.DJANGO_ATTACHMENTS = {
        "STORE_OPTIONS": {"s3": {"multipart_threshold": 0, "part_size": 5 * 2**20, "max_parts_in_flight": most}}
    }
    store = s3()
    lock, out, peak = threading.Lock(), [0], [0]
    upload_part = store._upload_part

    def counting(*args):
        with lock:
            out[0] += 1
            peak[0] = max(peak[0], out[0])
        try:
            time.sleep(0.2)
            return upload_part(*args)
        finally:
            with lock:
                out[0] -= 1

    store._upload_part = counting
    identifiers = save(store, os.urandom(16 * 2**20))  # four parts
    assert identifiers["etag"].endswith("-4")
    assert peak[0] == most


def test_s3_store_signs_with_the_storages_credentials(settings, monkeypatch, tmp_path):
    """The presigner's session is built from the storage's options as S3Storage builds its own."""

    def s3(**options):
        # Signing sends nothing: no server needed.
        settings.STORAGES = {**settings.STORAGES, "s3": s3_backend("http://127.0.0.1:9", "bucket", **options)}
        return get_store("s3")

    def signer_key(store) -> tuple[str, str | None]:
        url = store.url(store.identifiers_for("attachments/x"), expires=60)
        query = parse_qs(urlsplit(url).query)
        return query["X-Amz-Credential"][0].split("/")[0], query.get("X-Amz-Security-Token", [None])[0]

    assert signer_key(s3(access_key="AKIDCONFIGURED", secret_key="s")) == ("AKIDCONFIGURED", None)
    assert signer_key(s3(access_key="AKIDTOKEN", secret_key="s", security_token="tok")) == ("AKIDTOKEN", "tok")
    # No keys configured: boto3's default chain (here the environment) applies.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    assert signer_key(s3(access_key=None, secret_key=None)) == ("AKIDFROMENV", None)
    credentials = tmp_path / "credentials"
    credentials.write_text("[clinic]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    assert signer_key(s3(access_key=None, secret_key=None, session_profile="clinic")) == ("AKIDPROFILE", None)


def test_s3_keys_stay_under_the_location(s3):
    from django.core.exceptions import SuspiciousOperation

    store = s3(location="media")
    assert store.key_of("attachments/ab/cd/x") == "media/attachments/ab/cd/x"
    assert store.key_of("attachments/../x") == "media/x"
    with pytest.raises(SuspiciousOperation, match="Attempted access to '../x' denied"):
        store.key_of("../x")
    with pytest.raises(SuspiciousOperation):
        store.key_of("attachments/../../x")


def test_local_disk_works_without_boto3(tmp_path):
    """Installed without the [s3] extra: django-storages' S3 module refuses to import, disk still works."""
    script = f"""
import sys
sys.modules["boto3"] = None  # as if not installed: importing it raises ImportError
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_attachments"],
    DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}},
    # Not "default": before Django 5.1, settings.configure() loses the default storage's OPTIONS.
    STORAGES={{"files": {{"BACKEND": "django.core.files.storage.FileSystemStorage",
                          "OPTIONS": {{"location": {str(tmp_path)!r}}}}}}},
)
django.setup()
from django_attachments.stores import get_store
store = get_store("files")
from django.core.files.base import ContentFile
identifiers = store.save(ContentFile(b"data"), size=4, checksum="0" * 64, content_type="text/plain")
print(type(store).__name__, store.stat(identifiers).size)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["FileSystemStore", "4"]


@pytest.mark.parametrize("size", [0, 1, 15, 4096, 5 * 1024 + 1, 1024 * 1024 + 7])
def test_the_part_checksum_is_zlibs_crc32(size):
    """The streamed write's CRC-32 (zlib-ng's where installed) is zlib's, for every buffer type it is given."""
    import zlib

    from django_attachments.stores.s3 import crc32

    data = os.urandom(size)
    for given in (data, bytearray(data), memoryview(data)):
        assert crc32(given) == zlib.crc32(data)
