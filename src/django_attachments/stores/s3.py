"""Amazon S3 (and S3-compatible services) through django-storages' ``S3Storage``.

The storage's own settings (bucket, credentials, endpoint, region, location,
object parameters) are used as configured in ``STORAGES``; this adapter talks
to the bucket with the storage's boto3 client so that it can:

- write with ``If-None-Match: *`` (an existing key is never overwritten) and
  send the SHA-256 so that S3 rejects a corrupted transfer;
- upload large files in bounded parts (memory stays flat; ``S3File`` and
  boto3's default transfer buffer far more), sized per storage by
  :class:`S3Options`; a stream that cannot rewind (a copy read from another
  store) goes up as it is read, in one request or in parts, never held whole;
- stream downloads and byte ranges from the response body instead of reading
  whole objects into memory, as ``S3File`` does;
- delete in batches of 1,000 keys per ``DeleteObjects`` request;
- sign every URL it hands out with SigV4, whatever the storage's signature
  version (download URLs, and upload targets);
- hand clients a presigned PUT (SigV4) for direct uploads that binds the key,
  the exact size (``Content-Length``), the SHA-256 (``x-amz-checksum-sha256``,
  which S3 checks against the body) and ``If-None-Match: *`` (no overwrite);
- report the SHA-256 S3 computed for an object written in one PUT;
- run multipart uploads a client sends itself: each part's presigned PUT is
  bound to its length and SHA-256, ``ListParts`` says what is held, and the
  upload is completed with every part's checksum and ``If-None-Match: *``;
  incomplete uploads under the key prefix are listed for the purge;
- copy an object out of another bucket of the same service server-side
  (``CopyObject``, or ``UploadPartCopy`` part by part above 5 GiB), and
  stream it from any other store (:meth:`S3Store.copy_from`).

Identifiers: ``storage``, ``name``, ``bucket``, ``key``, ``region``, ``etag``,
and ``version_id`` when the bucket is versioned.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NoReturn

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import SuspiciousOperation
from django.core.files import File
from storages.utils import clean_name, safe_join

from ..conf import app_settings
from ..exceptions import ObjectExists, ObjectMissing, PartMismatch, StorageError
from .base import (
    BaseStore,
    DeleteFailure,
    Identifiers,
    IncompleteUpload,
    ObjectStat,
    RangeReader,
    StoredObject,
    StoreOptions,
    StreamedWrite,
    UploadedPart,
    UploadTarget,
    VerifyingReader,
    wrap_errors,
)

try:
    # zlib-ng computes CRC-32 with the CPU's carry-less multiply: about 13 times zlib's speed here
    # (0.02 s per GiB against 0.26 s), CPU a streamed upload's parts would take from the parser and
    # the service beside it (docs/benchmarks.md). The same function otherwise, and zlib's without it.
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - the s3 extra installs it
    from zlib import crc32

logger = logging.getLogger(__name__)
#: Held while a store makes a client of its own session: boto3 sessions are not safe to share between
#: threads that make clients (requests of a threaded server, a stream's part threads).
_CLIENTS_LOCK = threading.Lock()

MiB = 1024 * 1024
#: DeleteObjects accepts at most this many keys per request.
DELETE_BATCH = 1000
#: The largest object one PutObject request may carry.
MAX_PUT_SIZE = 5 * 1024**3
#: S3's bounds on a part of a multipart upload (all but the last part are at least the minimum).
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024**3
#: The most parts one multipart upload may have.
MAX_PARTS = 10_000
#: A streamed write's parts double in size after this many (see S3Store.open_stream), at most GROWTHS times.
PARTS_PER_SIZE = 1000
GROWTHS = 6
#: What a service answers a server-side copy it will not make, where a streamed copy may still get
#: through: no right to read the source with these keys, an operation or a header (a checksum, a
#: condition) it does not implement, a precondition (the source's ETag) it reads otherwise.
COPY_REFUSALS = frozenset(
    {
        "AccessDenied",
        "NotImplemented",
        "XNotImplemented",
        "NotSupported",
        "MethodNotAllowed",
        "InvalidRequest",
        "InvalidArgument",
        "PreconditionFailed",
    }
)
COPY_REFUSAL_STATUSES = frozenset({403, 405, 412, 501})


@dataclass(frozen=True)
class S3Options(StoreOptions):
    """The S3 store's tunables, per storage: ``DJANGO_ATTACHMENTS["STORE_OPTIONS"][alias]``.

    Memory a write holds is about ``part_size * max_parts_in_flight``,
    whatever the file size (32 MiB by default); an API upload sent on as it
    arrives holds one part more, and its parts grow with the file
    (:meth:`S3Store.open_stream`).
    """

    #: Files up to this size go up in one PutObject request; larger ones in parts.
    multipart_threshold: int = 16 * MiB
    #: Size of each part of a multipart upload (S3: 5 MiB to 5 GiB).
    part_size: int = 8 * MiB
    #: How many parts are read and sent side by side. Four keep a service that
    #: writes each part to disk busy (docs/benchmarks.md: two left SeaweedFS
    #: idle between parts, and an upload of 1 GiB took 1.4 times as long).
    max_parts_in_flight: int = 4

    def problems(self) -> dict[str, str]:
        found = {}
        if not _is_int(self.multipart_threshold) or not 0 <= self.multipart_threshold <= MAX_PUT_SIZE:
            found["multipart_threshold"] = f"an integer from 0 to {MAX_PUT_SIZE} (5 GiB, the most one PutObject takes)"
        if not _is_int(self.part_size) or not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            found["part_size"] = f"an integer from {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB), S3's part sizes"
        if not _is_int(self.max_parts_in_flight) or self.max_parts_in_flight < 1:
            found["max_parts_in_flight"] = "an integer >= 1"
        return found


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _read_part(source: Any, size: int) -> bytes:
    """``size`` bytes of ``source`` (fewer only at its end), however few each read returns."""
    data = source.read(size)
    if not data or len(data) >= size:
        return data
    chunks, got = [data], len(data)
    while got < size and (more := source.read(size - got)):
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


class _CopyRefused(Exception):
    """The service would not copy server-side (:data:`COPY_REFUSALS`): stream instead."""


class S3Store(BaseStore):
    can_stat = True
    can_reserve = True
    can_sign_urls = True
    can_sign_uploads = True
    can_multipart = True
    max_upload_target_size = MAX_PUT_SIZE
    options_class = S3Options
    options: S3Options
    #: django-storages' S3Storage, whose attributes its settings set at run time (it ships no types).
    storage: Any
    #: Whether :meth:`stat` reports the SHA-256 the service keeps for an object.
    #: S3 verifies a checksum sent with the bytes before it keeps it; for an
    #: S3-compatible service that keeps a client's checksum unverified, use a
    #: subclass with False (``register_adapter``): completion then hashes the
    #: object itself.
    trust_reported_checksums = True
    #: Objects up to this size are copied server-side with one ``CopyObject`` (S3 takes up to
    #: 5 GiB); larger ones part by part (``UploadPartCopy``), each of :attr:`copy_part_size` bytes
    #: at least (more where the object would need over 10,000 parts). Neither costs memory here.
    multipart_copy_threshold = MAX_PUT_SIZE
    copy_part_size = 512 * MiB
    _presigner: Any = None
    _unsigned_client: Any = None
    _part_client: Any = None
    _unsigned_session: Any = None

    @property
    def client(self) -> Any:
        # The storage keeps one boto3 resource per thread; its client is thread-safe.
        return self.storage.connection.meta.client

    @property
    def bucket(self) -> str:
        return self.storage.bucket_name

    def key_of(self, name: str) -> str:
        """The object's key: ``name`` under the storage's ``location``, as ``S3Storage`` builds it.

        A name that would leave the location (``../``) is refused with
        ``SuspiciousOperation``, as the storage itself refuses it.
        """
        cleaned = clean_name(name)
        try:
            return safe_join(self.storage.location, cleaned)
        except ValueError:
            raise SuspiciousOperation(f"Attempted access to '{cleaned}' denied.") from None

    def _name_from_key(self, key: str) -> str:
        location = (self.storage.location or "").strip("/")
        if location and key.startswith(location + "/"):
            return key[len(location) + 1 :]
        return key

    def reserve(self) -> Identifiers:
        name = self.new_name()
        return {"storage": self.alias, "name": name, "bucket": self.bucket, "key": self.key_of(name)}

    # -- write -------------------------------------------------------------------

    def save(
        self, content: File, *, size: int, checksum: str, content_type: str, name: str | None = None
    ) -> Identifiers:
        return self._write(content, size=size, checksum=checksum, content_type=content_type, name=name).identifiers

    def save_reporting(
        self, content: File, *, size: int, checksum: str, content_type: str, name: str | None = None
    ) -> ObjectStat:
        """:meth:`save`; the ``checksum`` is the SHA-256 the service reported for a write in one request
        (it checked the bytes it received against the one sent), None for a write in parts (its checksum
        is a composite) or where the service reports none.

        A subclass that overrides :meth:`save` has its writes go through it
        (and then reports no checksum: the caller asks the service).
        """
        if type(self).save is not S3Store.save:
            return super().save_reporting(content, size=size, checksum=checksum, content_type=content_type, name=name)
        return self._write(content, size=size, checksum=checksum, content_type=content_type, name=name)

    def _write(
        self, content: File, *, size: int, checksum: str, content_type: str, name: str | None = None
    ) -> ObjectStat:
        name = name or self.new_name()
        key = self.key_of(name)
        params = self.storage.get_object_parameters(name)
        params["ContentType"] = content_type
        if self.storage.default_acl and "ACL" not in params:
            params["ACL"] = self.storage.default_acl
        source = getattr(content, "file", content)
        seekable = source.seekable()
        guard: VerifyingReader | None = None
        if seekable:
            source.seek(0)
        else:
            # Counted on the way: a stream that ends early would leave S3 waiting for the rest of
            # the declared length (a single PUT) or complete a short object (parts).
            source = guard = VerifyingReader(source, size=size)
        in_one_request = size <= self.options.multipart_threshold
        # A body that cannot rewind cannot be read twice, once to hash it for the signature. The unsigned
        # client is the store's, shared by every thread; the storage's connection is one per thread.
        client = self.unsigned_client if in_one_request and not seekable else self.client
        try:
            if in_one_request:
                response = client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=source,
                    ContentLength=size,
                    ChecksumSHA256=_b64(checksum),
                    IfNoneMatch="*",
                    **params,
                )
            else:
                response = self._multipart_upload(key, source, params, size)
        except ClientError as exc:
            if _error_code(exc) == "PreconditionFailed" or _status(exc) == 412:
                raise ObjectExists(f"Storage {self.alias!r} already has an object {key!r}.") from exc
            raise wrap_errors("write", name, exc) from exc
        except Exception as exc:
            if guard is not None and guard.failure is not None:
                raise StorageError(f"Could not write object {name!r}: the stream {guard.failure}.") from exc
            if isinstance(exc, BotoCoreError):  # the connection, not the service: no ClientError
                raise wrap_errors("write", name, exc) from exc
            raise
        identifiers: Identifiers = {
            "storage": self.alias,
            "name": name,
            "bucket": self.bucket,
            "key": key,
            "region": client.meta.region_name,  # not self.client's: a copy in a thread would make that thread one
            "etag": str(response.get("ETag", "")).strip('"'),
        }
        if response.get("VersionId") and response["VersionId"] != "null":
            identifiers["version_id"] = response["VersionId"]
        return ObjectStat(size=size, checksum=self._full_object_checksum(response), identifiers=identifiers)

    def _full_object_checksum(self, response: dict[str, Any]) -> str | None:
        """The whole object's SHA-256 (hex) a write's or a HEAD's response reports, where it is one."""
        reported = response.get("ChecksumSHA256")
        # A composite checksum (a multipart upload's, "…-N") is not the object's SHA-256.
        full_object = (
            response.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
            and "-" not in (reported or "-")
            and "-" not in str(response.get("ETag", ""))
        )
        if self.trust_reported_checksums and reported and full_object:
            return base64.b64decode(reported).hex()
        return None

    def _composite_checksum(self, response: dict[str, Any]) -> str | None:
        """A joined object's composite SHA-256 (hex, the "-N" dropped) that a HEAD reports, where it is one.

        S3 and SeaweedFS compute it from the parts they hold and report it as
        ``"<base64>-N"`` with ``ChecksumType`` ``COMPOSITE``; moto as
        ``"<base64>"`` beside an ETag ending in ``-N``.
        """
        reported = response.get("ChecksumSHA256")
        if not self.trust_reported_checksums or not reported or self._full_object_checksum(response):
            return None
        if response.get("ChecksumType", "COMPOSITE") != "COMPOSITE":
            return None
        try:
            return base64.b64decode(reported.split("-", 1)[0], validate=True).hex()
        except ValueError:
            return None

    @property
    def unsigned_client(self) -> Any:
        """A client that sends a body without hashing it for the signature (``UNSIGNED-PAYLOAD``).

        For bodies that cannot rewind: SigV4 hashes the payload before sending
        it (over plain HTTP, and wherever a checksum header is given), which
        means reading a stream twice. The body is still checked: the request
        carries its checksum, which S3 verifies: the SHA-256
        (``x-amz-checksum-sha256``) of a single write, the CRC-32 of a streamed
        upload's part (:meth:`open_stream`: the file's SHA-256 is computed
        here as it arrives; the part's checksum shows it arrived as sent).
        """
        if self._unsigned_client is None:
            with _CLIENTS_LOCK:
                if self._unsigned_client is None:
                    self._unsigned_client = self._client_without_payload_signing()
        return self._unsigned_client

    @property
    def part_client(self) -> Any:
        """:attr:`unsigned_client` that does not check its parameters: only for a streamed upload's parts.

        A streamed part's body is the list of the chunks that hold it
        (:class:`_PartBody`), which botocore's check (bytes or a file) would
        refuse; a file would be read 16 KiB at a time, a copy each. Every
        other call, the object parameters a project configures among them,
        goes through a client that checks.
        """
        if self._part_client is None:
            with _CLIENTS_LOCK:
                if self._part_client is None:
                    self._part_client = self._client_without_payload_signing(parameter_validation=False)
        return self._part_client

    def _client_without_payload_signing(self, **options: Any) -> Any:
        """A client of the store's own session (made under ``_CLIENTS_LOCK``: a session makes one at a time)."""
        from botocore.config import Config

        storage = self.storage
        config = storage.client_config
        s3: Any = {**(config.s3 or {}), "payload_signing_enabled": False}
        if self._unsigned_session is None:
            # One session for both clients: the service's model is loaded once (tens of MiB).
            self._unsigned_session = self._session()
        return self._unsigned_session.client(
            "s3",
            region_name=storage.region_name,
            use_ssl=storage.use_ssl,
            endpoint_url=storage.endpoint_url,
            config=config.merge(Config(s3=s3, **options)),
            verify=storage.verify,
        )

    def _multipart_upload(self, key: str, source: Any, params: dict[str, Any], size: int) -> dict[str, Any]:
        # One client for all parts: the storage's connection is per thread, and
        # a new client in each pool thread would cost a session and its memory.
        client = self.client
        upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", **params)[
            "UploadId"
        ]
        parts: list[dict[str, Any]] = []
        part_size, most = self.options.part_size, self.options.max_parts_in_flight
        try:
            # A small pool sends parts side by side; at most max_parts_in_flight
            # parts are in memory at once, so memory does not grow with the file.
            with ThreadPoolExecutor(max_workers=most) as pool:
                in_flight: set[Future[dict[str, Any]]] = set()
                number = sent = 0
                # Whole parts, whatever each read of the stream returns: only the last may be small.
                while data := _read_part(source, part_size):
                    number += 1
                    sent += len(data)
                    in_flight.add(pool.submit(self._upload_part, client, key, upload_id, number, data))
                    del data
                    if len(in_flight) >= most:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        parts.extend(f.result() for f in done)
                parts.extend(f.result() for f in in_flight)
            if sent != size:
                raise StorageError(f"Could not write object {key!r}: it held {sent} bytes, not {size}.")
            return self._complete(client, key, upload_id, parts)
        except BaseException:
            self._abort_quietly(client, key, upload_id)
            raise

    def _complete(self, client: Any, key: str, upload_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """Join the parts (in any order here) into the object, never over one already there."""
        parts.sort(key=lambda p: p["PartNumber"])
        return client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
        )

    def _abort_quietly(self, client: Any, key: str, upload_id: str) -> None:
        try:
            client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError):
            # The purge of incomplete uploads (or the bucket's lifecycle rule for them) cleans up.
            logger.warning("Could not abort the multipart upload %s of %r.", upload_id, key, exc_info=True)

    def _upload_part(
        self,
        client: Any,
        key: str,
        upload_id: str,
        number: int,
        data: bytes | bytearray | _PartBody,
        algorithm: str = "SHA256",
    ) -> dict[str, Any]:
        """Send part ``number`` with its checksum (``"SHA256"`` or ``"CRC32"``, the upload's algorithm),
        which the service checks; the part as ``CompleteMultipartUpload`` lists it."""
        pieces = data.chunks if isinstance(data, _PartBody) else (data,)
        if algorithm == "CRC32":
            value = 0
            for piece in pieces:
                value = crc32(piece, value)
            raw = value.to_bytes(4, "big")
        else:
            hashed = hashlib.sha256()
            for piece in pieces:
                hashed.update(piece)
            raw = hashed.digest()
        field = f"Checksum{algorithm}"
        digest = base64.b64encode(raw).decode("ascii")
        response = client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ContentLength=len(data),
            **{field: digest},
        )
        return {"PartNumber": number, "ETag": response["ETag"], field: digest}

    # -- writing while the bytes arrive ------------------------------------------------

    def stream_threshold(self) -> int:
        # Up to the threshold a file goes in one PutObject, as save() sends it; the first part must fill.
        return max(self.options.multipart_threshold, self.options.part_size)

    @property
    def can_stream_writes(self) -> bool:  # type: ignore[override]
        # A subclass that writes its own way (save() overridden: tags, metadata) is not bypassed.
        return type(self).save is S3Store.save

    def open_stream(self, *, content_type: str) -> StreamedWrite:
        """A multipart upload to a fresh key whose parts are sent as :meth:`StreamedWrite.write` fills them.

        Parts are of ``part_size`` bytes, each sent with its CRC-32 (which S3
        checks), at most ``max_parts_in_flight`` side by side; a part is the
        chunks written to it, sent as they are, not copied into a buffer:
        memory is about ``part_size * (max_parts_in_flight + 1)`` for the first
        :data:`PARTS_PER_SIZE` parts (8 GiB at 8 MiB). How large the file is,
        is not known: the part size doubles every :data:`PARTS_PER_SIZE` parts
        (up to 64 times), as bytes actually arrive, so that 10,000 parts hold
        about 2.5 TiB at 8 MiB, and memory doubles with it. The object is
        joined with ``If-None-Match: *``.
        """
        name = self.new_name()
        key = self.key_of(name)
        params = self.storage.get_object_parameters(name)
        params["ContentType"] = content_type
        if self.storage.default_acl and "ACL" not in params:
            params["ACL"] = self.storage.default_acl
        client = self.unsigned_client  # a part's CRC-32 is its check: no SHA-256 of it for the signature
        part_client = self.part_client  # made here, on the request's thread, not by the first part's
        try:
            upload_id = client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32", **params
            )["UploadId"]
        except (ClientError, BotoCoreError) as exc:
            raise wrap_errors("start a multipart upload of", name, exc) from exc
        identifiers: Identifiers = {"storage": self.alias, "name": name, "bucket": self.bucket, "key": key}
        return _S3StreamedWrite(self, client, identifiers, str(upload_id), part_client=part_client)

    # -- copies ------------------------------------------------------------------------

    def copy_from(
        self, source: BaseStore, identifiers: Identifiers, *, size: int, checksum: str, content_type: str
    ) -> ObjectStat:
        """Copy an object of ``source`` here under a fresh name: server-side where the service allows, else streamed.

        From an S3 store that :meth:`reaches_same_service`, the service
        copies the bytes itself (none pass through this process):
        ``CopyObject`` up to :attr:`multipart_copy_threshold`, else
        ``UploadPartCopy`` part by part. The source's size is checked first
        (and its SHA-256 where it reports one), the copy is pinned to the
        source's ETag and version, asks the service for a SHA-256
        (``ChecksumAlgorithm``), never overwrites (``If-None-Match: *``), and
        gets this storage's object parameters and ACL as :meth:`save` gives
        them. A SHA-256 reported for the copy that is not ``checksum`` fails
        it (the copy is deleted). Where the service refuses the copy
        (:data:`COPY_REFUSALS`: no right to read the source, an operation it
        does not implement), and from any other store, the bytes are
        streamed through :meth:`save` (:meth:`~BaseStore.stream_from`).
        """
        if not self.can_copy:
            raise self._not_implemented("copy_from", "can_copy")
        if isinstance(source, S3Store) and self.reaches_same_service(source):
            try:
                return self._copy_in_service(
                    source, identifiers, size=size, checksum=checksum, content_type=content_type
                )
            except _CopyRefused as exc:
                logger.warning(
                    "Storage %r would not copy object %r of storage %r server-side (%s); streaming it instead.",
                    self.alias,
                    identifiers.get("name"),
                    source.alias,
                    exc,
                )
        return self.stream_from(source, identifiers, size=size, checksum=checksum, content_type=content_type)

    def reaches_same_service(self, other: S3Store) -> bool:
        """Whether this store's client can copy ``other``'s objects server-side: same endpoint, region and keys.

        Conservative: the credentials are compared as the storages configure
        them (a profile, or keys and token; neither means boto3's default
        chain, the same for both), so two storages that reach one account
        with different keys stream instead.
        """
        mine, theirs = self.client.meta, other.client.meta
        return (
            mine.endpoint_url == theirs.endpoint_url
            and mine.region_name == theirs.region_name
            and self._credentials_configured() == other._credentials_configured()
        )

    def _credentials_configured(self) -> tuple[Any, ...]:
        storage = self.storage
        return (storage.session_profile, storage.access_key, storage.secret_key, storage.security_token)

    def _copy_in_service(
        self, source: S3Store, identifiers: Identifiers, *, size: int, checksum: str, content_type: str
    ) -> ObjectStat:
        what = f"object {source.name_of(identifiers)!r} of storage {source.alias!r}"
        found = source.stat(identifiers)  # ObjectMissing when it is not there
        if found.size != size:
            raise StorageError(
                f"Could not copy {what} to storage {self.alias!r}: it holds {found.size} bytes, not {size}."
            )
        if found.checksum is not None and found.checksum != checksum:
            raise StorageError(
                f"Could not copy {what} to storage {self.alias!r}: its SHA-256 is {found.checksum}, not {checksum}."
            )
        origin = source._object_params(identifiers)
        copy_source = {"Bucket": origin["Bucket"], "Key": origin["Key"]}
        if "VersionId" in origin:
            copy_source["VersionId"] = origin["VersionId"]
        # The object whose size was just checked, not one written there since.
        pinned = {"CopySourceIfMatch": f'"{found.identifiers["etag"]}"'} if found.identifiers.get("etag") else {}
        name = self.new_name()
        key = self.key_of(name)
        params = self.storage.get_object_parameters(name)
        params["ContentType"] = content_type
        if self.storage.default_acl and "ACL" not in params:
            params["ACL"] = self.storage.default_acl
        reported = None
        try:
            if size <= self.multipart_copy_threshold:
                response = self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource=copy_source,
                    # The storage's parameters, as save() sets them, not the source's.
                    MetadataDirective="REPLACE",
                    ChecksumAlgorithm="SHA256",
                    IfNoneMatch="*",
                    **pinned,
                    **params,
                )
                result = response.get("CopyObjectResult", {})
                etag, reported = result.get("ETag", ""), result.get("ChecksumSHA256")
            else:
                response = self._multipart_copy(key, copy_source, pinned, params, size)
                etag = response.get("ETag", "")
        except ClientError as exc:
            code, status = _error_code(exc), _status(exc)
            if code in COPY_REFUSALS or status in COPY_REFUSAL_STATUSES:
                raise _CopyRefused(f"{code or status}: {exc}") from exc
            if code in ("NoSuchKey", "NoSuchVersion"):
                raise ObjectMissing(f"Storage {source.alias!r} has no object {origin['Key']!r}.") from exc
            raise wrap_errors("copy", f"{origin['Bucket']}/{origin['Key']}", exc) from exc
        except BotoCoreError as exc:
            raise wrap_errors("copy", f"{origin['Bucket']}/{origin['Key']}", exc) from exc
        copied: Identifiers = {
            "storage": self.alias,
            "name": name,
            "bucket": self.bucket,
            "key": key,
            "region": self.client.meta.region_name,
            "etag": str(etag).strip('"'),
        }
        if response.get("VersionId") and response["VersionId"] != "null":
            copied["version_id"] = response["VersionId"]
        if reported and "-" not in reported and base64.b64decode(reported).hex() != checksum:
            self._discard(copied)
            raise StorageError(
                f"Could not copy {what} to storage {self.alias!r}: the service copied bytes with SHA-256 "
                f"{base64.b64decode(reported).hex()}, not {checksum}."
            )
        full = reported if reported and "-" not in reported and self.trust_reported_checksums else None
        return ObjectStat(size=size, checksum=base64.b64decode(full).hex() if full else None, identifiers=copied)

    def _multipart_copy(
        self, key: str, copy_source: dict[str, str], pinned: dict[str, str], params: dict[str, Any], size: int
    ) -> dict[str, Any]:
        """Copy an object too large for one ``CopyObject``, in byte ranges the service copies itself."""
        client = self.client
        upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", **params)[
            "UploadId"
        ]
        part_size = min(max(self.copy_part_size, MIN_PART_SIZE, -(-size // MAX_PARTS)), MAX_PART_SIZE)
        ranges = [(number, start) for number, start in enumerate(range(0, size, part_size), start=1)]
        parts: list[dict[str, Any]] = []
        try:
            # Nothing is held here but the answers: the pool only keeps a few requests out at once.
            most = self.options.max_parts_in_flight
            with ThreadPoolExecutor(max_workers=most) as pool:
                in_flight: set[Future[dict[str, Any]]] = set()
                for number, start in ranges:
                    end = min(start + part_size, size) - 1
                    in_flight.add(
                        pool.submit(
                            self._copy_part, client, key, upload_id, number, copy_source, f"bytes={start}-{end}", pinned
                        )
                    )
                    if len(in_flight) >= most:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        parts.extend(f.result() for f in done)
                parts.extend(f.result() for f in in_flight)
            return self._complete(client, key, upload_id, parts)
        except BaseException:
            self._abort_quietly(client, key, upload_id)
            raise

    def _copy_part(
        self,
        client: Any,
        key: str,
        upload_id: str,
        number: int,
        copy_source: dict[str, str],
        byte_range: str,
        pinned: dict[str, str],
    ) -> dict[str, Any]:
        response = client.upload_part_copy(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource=copy_source,
            CopySourceRange=byte_range,
            **pinned,
        )
        result = response["CopyPartResult"]
        part = {"PartNumber": number, "ETag": result["ETag"]}
        if result.get("ChecksumSHA256"):  # computed by the service (the upload asked for SHA-256)
            part["ChecksumSHA256"] = result["ChecksumSHA256"]
        return part

    # -- direct uploads ------------------------------------------------------------

    @property
    def presigner(self) -> Any:
        """A client that signs with SigV4, whatever the storage's signature version: every URL
        this store hands out (downloads and upload targets) is signed with it.

        SigV4 query signing binds the request's headers (size, checksum,
        If-None-Match); the older scheme would leave them unsigned, and S3
        refuses it for buckets created since 2020.
        """
        if self._presigner is None:
            from botocore.config import Config

            storage = self.storage
            self._presigner = self._session().client(
                "s3",
                region_name=storage.region_name,
                use_ssl=storage.use_ssl,
                endpoint_url=storage.endpoint_url,
                config=storage.client_config.merge(Config(signature_version="s3v4")),
                verify=storage.verify,
            )
        return self._presigner

    def _session(self) -> Any:
        """A boto3 session with the storage's credentials, as ``S3Storage`` makes its own.

        A ``session_profile`` wins (the storage refuses it together with keys);
        else the configured keys and token, and where none is set, boto3's
        default credential chain (environment, config files, instance role).
        """
        storage = self.storage
        if storage.session_profile:
            return boto3.Session(profile_name=storage.session_profile)
        return boto3.Session(
            aws_access_key_id=storage.access_key,
            aws_secret_access_key=storage.secret_key,
            aws_session_token=storage.security_token,
        )

    def upload_target(self, identifiers: Identifiers, *, size: int, checksum: str, expires: int) -> UploadTarget:
        params = self._object_params(identifiers)
        params.pop("VersionId", None)
        name = self.name_of(identifiers)
        extra = self.storage.get_object_parameters(name)
        extra.pop("ContentType", None)  # the client's type is not ours to pin; the sniffed one is recorded
        if self.storage.default_acl and "ACL" not in extra:
            extra["ACL"] = self.storage.default_acl
        params.update(extra, ContentLength=size, ChecksumSHA256=_b64(checksum), IfNoneMatch="*")
        url = self.presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=int(expires))
        # Content-Type is not signed (any will do; the recorded type is sniffed), but a client
        # left to its defaults may send a form type, which some S3-compatible servers try to parse.
        headers = {**self._headers_of("PutObject", params), "Content-Type": "application/octet-stream"}
        return UploadTarget(method="PUT", url=url, headers=headers)

    def _headers_of(self, operation: str, params: dict[str, Any]) -> dict[str, str]:
        """The HTTP headers botocore serialises ``params`` to: what a presigned request signs."""
        members = self.presigner.meta.service_model.operation_model(operation).input_shape.members
        headers: dict[str, str] = {}
        for param, value in params.items():
            serialization = members[param].serialization
            if serialization.get("location") == "header":
                headers[serialization["name"]] = str(value)
            elif serialization.get("location") == "headers":  # Metadata: a prefix per key
                headers.update({f"{serialization['name']}{key}": str(v) for key, v in value.items()})
        return headers

    # -- multipart uploads a client sends -----------------------------------------------

    def start_multipart(self, identifiers: Identifiers, *, content_type: str) -> str:
        params = self._object_params(identifiers)
        params.pop("VersionId", None)
        extra = self.storage.get_object_parameters(self.name_of(identifiers))
        extra["ContentType"] = content_type
        if self.storage.default_acl and "ACL" not in extra:
            extra["ACL"] = self.storage.default_acl
        try:
            response = self.client.create_multipart_upload(**params, **extra, ChecksumAlgorithm="SHA256")
        except ClientError as exc:
            raise wrap_errors("start a multipart upload of", params["Key"], exc) from exc
        return str(response["UploadId"])

    def _part_params(self, identifiers: Identifiers, upload_id: str) -> dict[str, Any]:
        params = self._object_params(identifiers)
        params.pop("VersionId", None)
        return {**params, "UploadId": upload_id}

    def part_target(
        self, identifiers: Identifiers, upload_id: str, *, number: int, size: int, checksum: str, expires: int
    ) -> UploadTarget:
        params = {
            **self._part_params(identifiers, upload_id),
            "PartNumber": number,
            "ContentLength": size,
            "ChecksumSHA256": _b64(checksum),
        }
        url = self.presigner.generate_presigned_url("upload_part", Params=params, ExpiresIn=int(expires))
        # As for a single PUT: the type is not signed, but a form type may be parsed by some services.
        headers = {**self._headers_of("UploadPart", params), "Content-Type": "application/octet-stream"}
        return UploadTarget(method="PUT", url=url, headers=headers)

    def list_parts(self, identifiers: Identifiers, upload_id: str) -> list[UploadedPart]:
        params = self._part_params(identifiers, upload_id)
        parts: dict[int, UploadedPart] = {}
        try:
            for page in self.client.get_paginator("list_parts").paginate(**params):
                for part in page.get("Parts", []):
                    reported = part.get("ChecksumSHA256")
                    # A part sent again replaces the first; a service that lists both (SeaweedFS) lists it last.
                    parts[int(part["PartNumber"])] = UploadedPart(
                        number=int(part["PartNumber"]),
                        size=int(part["Size"]),
                        etag=str(part.get("ETag", "")),
                        checksum=base64.b64decode(reported).hex() if reported else None,
                        modified=part.get("LastModified"),
                    )
        except ClientError as exc:
            if _error_code(exc) == "NoSuchUpload" or _status(exc) == 404:
                raise ObjectMissing(f"Storage {self.alias!r} has no multipart upload {upload_id!r}.") from exc
            raise wrap_errors("list the parts of", params["Key"], exc) from exc
        return [parts[number] for number in sorted(parts)]

    def complete_multipart(self, identifiers: Identifiers, upload_id: str, parts: Sequence[UploadedPart]) -> ObjectStat:
        params = self._part_params(identifiers, upload_id)
        listed = []
        for part in parts:
            if not part.checksum:
                raise ValueError(f"Part {part.number} has no checksum: S3 needs each part's to complete the upload.")
            listed.append({"PartNumber": part.number, "ETag": part.etag, "ChecksumSHA256": _b64(part.checksum)})
        try:
            self.client.complete_multipart_upload(**params, MultipartUpload={"Parts": listed}, IfNoneMatch="*")
        except ClientError as exc:
            code = _error_code(exc)
            if code == "PreconditionFailed" or _status(exc) == 412:
                raise ObjectExists(f"Storage {self.alias!r} already has an object {params['Key']!r}.") from exc
            if code == "NoSuchUpload" or _status(exc) == 404:
                raise ObjectMissing(f"Storage {self.alias!r} has no multipart upload {upload_id!r}.") from exc
            if code in ("InvalidPart", "InvalidPartOrder", "BadDigest", "EntityTooSmall", "InvalidDigest"):
                raise PartMismatch(f"The storage refused the parts of this upload ({code}): {exc}") from exc
            raise wrap_errors("complete the multipart upload of", params["Key"], exc) from exc
        stat = self.stat(identifiers)
        return ObjectStat(
            size=stat.size, checksum=None, identifiers=stat.identifiers, composite_checksum=stat.composite_checksum
        )

    def abort_multipart(self, identifiers: Identifiers, upload_id: str) -> None:
        params = self._part_params(identifiers, upload_id)
        try:
            self.client.abort_multipart_upload(**params)
        except ClientError as exc:
            if _error_code(exc) != "NoSuchUpload" and _status(exc) != 404:
                raise wrap_errors("abort the multipart upload of", params["Key"], exc) from exc

    def list_multipart(self) -> Iterator[IncompleteUpload]:
        key_prefix = self.key_of(app_settings.KEY_PREFIX)
        if not key_prefix.endswith("/"):
            key_prefix += "/"
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key_prefix):
                for upload in page.get("Uploads", []):
                    yield IncompleteUpload(
                        name=self._name_from_key(upload["Key"]),
                        upload_id=str(upload["UploadId"]),
                        started=upload["Initiated"],
                    )
        except ClientError as exc:
            raise StorageError(
                f"Could not list the multipart uploads of {self.alias!r} under {key_prefix!r}: {exc}"
            ) from exc

    def stat(self, identifiers: Identifiers) -> ObjectStat:
        params = self._object_params(identifiers)
        try:
            response = self.client.head_object(**params, ChecksumMode="ENABLED")
        except ClientError as exc:
            if _status(exc) == 404:
                raise ObjectMissing(f"Storage {self.alias!r} has no object {params['Key']!r}.") from exc
            raise wrap_errors("inspect", params["Key"], exc) from exc
        except BotoCoreError as exc:
            raise wrap_errors("inspect", params["Key"], exc) from exc
        # A multipart object's ETag ends in "-N"; a service may report a checksum for it that it never verified.
        checksum = self._full_object_checksum(response)
        completed: Identifiers = {
            "storage": self.alias,
            "name": self.name_of(identifiers),
            "bucket": params["Bucket"],
            "key": params["Key"],
            "region": self.client.meta.region_name,
            "etag": str(response.get("ETag", "")).strip('"'),
        }
        version = response.get("VersionId") or params.get("VersionId")
        if version and version != "null":
            completed["version_id"] = version
        return ObjectStat(
            size=int(response["ContentLength"]),
            checksum=checksum,
            identifiers=completed,
            composite_checksum=self._composite_checksum(response),
        )

    # -- read --------------------------------------------------------------------

    def _object_params(self, identifiers: Identifiers) -> dict[str, Any]:
        name = self.name_of(identifiers)
        params: dict[str, Any] = {
            "Bucket": identifiers.get("bucket") or self.bucket,
            "Key": identifiers.get("key") or self.key_of(name),
        }
        if identifiers.get("version_id"):
            params["VersionId"] = identifiers["version_id"]
        return params

    def open(self, identifiers: Identifiers, *, start: int = 0, end: int | None = None) -> RangeReader:
        params = self._object_params(identifiers)
        if start or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = self.client.get_object(**params)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "NoSuchVersion", "404") or _status(exc) == 404:
                raise ObjectMissing(f"Storage {self.alias!r} has no object {params['Key']!r}.") from exc
            raise wrap_errors("open", params["Key"], exc) from exc
        except BotoCoreError as exc:  # the connection, not the service: the storage failed all the same
            raise wrap_errors("open", params["Key"], exc) from exc
        return RangeReader(response["Body"], response.get("ContentLength"))

    def exists(self, identifiers: Identifiers) -> bool:
        params = self._object_params(identifiers)
        try:
            self.client.head_object(**params)
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise wrap_errors("inspect", params["Key"], exc) from exc
        except BotoCoreError as exc:
            raise wrap_errors("inspect", params["Key"], exc) from exc
        return True

    def url(
        self,
        identifiers: Identifiers,
        *,
        expires: int,
        content_disposition: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        storage = self.storage
        # A custom domain (CloudFront) would drop the response overrides below,
        # and an unsigned URL never expires: serve those through the app instead.
        if not storage.querystring_auth or storage.custom_domain:
            return None
        params = self._object_params(identifiers)
        extra: dict[str, Any] = {}
        if content_disposition:
            extra["ResponseContentDisposition"] = content_disposition
        if content_type:
            extra["ResponseContentType"] = content_type
        if "VersionId" in params:
            extra["VersionId"] = params["VersionId"]
        # Signed with SigV4 whatever the storage's settings: with django-storages' defaults in
        # us-east-1 the storage's own client signs the older way (SigV2), whose URLs S3 refuses for
        # new buckets, and which S3-compatible servers reject with response-* overrides.
        return self.presigner.generate_presigned_url(
            "get_object", Params={"Bucket": params["Bucket"], "Key": params["Key"], **extra}, ExpiresIn=int(expires)
        )

    # -- delete ------------------------------------------------------------------

    def delete(self, identifiers: Identifiers) -> None:
        params = self._object_params(identifiers)
        try:
            self.client.delete_object(**params)
        except ClientError as exc:
            if _status(exc) != 404:
                raise wrap_errors("delete", params["Key"], exc) from exc

    def delete_many(self, identifiers_list: Iterable[Identifiers]) -> list[DeleteFailure]:
        by_bucket: dict[str, list[dict[str, str]]] = {}
        for identifiers in identifiers_list:
            params = self._object_params(identifiers)
            entry = {"Key": params["Key"]}
            if "VersionId" in params:
                entry["VersionId"] = params["VersionId"]
            by_bucket.setdefault(params["Bucket"], []).append(entry)
        failures: list[DeleteFailure] = []
        for bucket, objects in by_bucket.items():
            for i in range(0, len(objects), DELETE_BATCH):
                batch = objects[i : i + DELETE_BATCH]
                try:
                    response = self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
                except ClientError as exc:
                    failures.extend(DeleteFailure(self._name_from_key(o["Key"]), str(exc)) for o in batch)
                    continue
                for error in response.get("Errors", []):
                    if error.get("Code") != "NoSuchKey":
                        failures.append(
                            DeleteFailure(
                                self._name_from_key(error["Key"]), f"{error.get('Code')}: {error.get('Message')}"
                            )
                        )
        return failures

    # -- list --------------------------------------------------------------------

    def list(self, prefix: str | None = None) -> Iterator[StoredObject]:
        key_prefix = self.key_of(prefix or app_settings.KEY_PREFIX)
        if not key_prefix.endswith("/"):
            key_prefix += "/"
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key_prefix):
                for obj in page.get("Contents", []):
                    yield StoredObject(
                        name=self._name_from_key(obj["Key"]), modified=obj["LastModified"], size=obj["Size"]
                    )
        except ClientError as exc:
            raise StorageError(f"Could not list storage {self.alias!r} under {key_prefix!r}: {exc}") from exc


class _PartBody:
    """A streamed part's bytes as the chunks that hold them, sent one after another, never joined.

    urllib3 sends an iterable body item by item (a ``sendall`` each), where it
    would read a file 16 KiB at a time, a copy each; joining the chunks into
    one buffer would be a copy of every byte. A retry sends it again from the
    start (``seek(0)``).
    """

    def __init__(self, chunks: list[bytes | memoryview]) -> None:
        self.chunks = chunks
        self.size = sum(len(chunk) for chunk in chunks)

    def __iter__(self) -> Iterator[bytes | memoryview]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return self.size

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            raise io.UnsupportedOperation("A part is only sent again from its start.")
        return 0

    def tell(self) -> int:
        return 0


class _S3StreamedWrite(StreamedWrite):
    """:meth:`S3Store.open_stream`'s multipart upload: parts sent by a small pool as the bytes come.

    A part is the chunks written to it, kept as they are (``bytes``, which
    nobody changes; a mutable buffer is copied) and sent one after another:
    no byte is copied into a part buffer. A stream holds at most
    ``max_parts_in_flight`` parts being sent and the one being filled.
    """

    store: S3Store
    #: Parts of each size before the next doubles it (a test makes it small).
    parts_per_size = PARTS_PER_SIZE

    def __init__(
        self, store: S3Store, client: Any, identifiers: Identifiers, upload_id: str, *, part_client: Any
    ) -> None:
        self.store = store
        self.identifiers = identifiers
        self.upload_id = upload_id
        self.size = 0
        self.state = "open"
        self._client = client
        self._part_client = part_client
        self._key = identifiers["key"]
        self._base_part_size = store.options.part_size
        self._part_size = self._base_part_size
        self._most = store.options.max_parts_in_flight
        self._chunks: list[bytes | memoryview] = []
        self._filled = 0
        self._number = 0
        self._parts: list[dict[str, Any]] = []
        self._in_flight: set[Future[dict[str, Any]]] = set()
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=self._most, thread_name_prefix="attachments-part"
        )

    def _check_open(self) -> None:
        if self.state != "open":
            raise StorageError(f"The streamed upload of {self.identifiers['name']!r} is {self.state}.")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        if type(data) is not bytes:
            data = bytes(data)  # the caller may fill its buffer again while the part waits to be sent
        view = memoryview(data)
        self.size += len(view)
        while view:
            if not self._filled:
                self._part_size = self._base_part_size << min(self._number // self.parts_per_size, GROWTHS)
            taken = min(len(view), self._part_size - self._filled)
            self._chunks.append(data if taken == len(data) else view[:taken])
            self._filled += taken
            view = view[taken:]
            if self._filled == self._part_size:
                self._send()

    def _send(self) -> None:
        """Hand the chunks over as the next part; wait for a part to finish if too many are in flight."""
        assert self._pool is not None
        chunks, self._chunks, self._filled = self._chunks, [], 0
        self._number += 1
        if self._number > MAX_PARTS:
            self._fail(StorageError(f"Could not write object {self._key!r}: it would need over {MAX_PARTS} parts."))
        self._in_flight.add(self._pool.submit(self._upload, self._number, _PartBody(chunks)))
        if len(self._in_flight) >= self._most:
            done, self._in_flight = wait(self._in_flight, return_when=FIRST_COMPLETED)
            self._collect(done)

    def _upload(self, number: int, body: _PartBody) -> dict[str, Any]:
        # CRC-32, not SHA-256: the object's SHA-256 is computed as the bytes arrive (it is the blob's
        # checksum); a part's checksum has only to show the service got the part as sent, which S3 (and
        # SeaweedFS) check before keeping it. CRC-32 costs 0.02 s per GiB here with zlib-ng (0.26 s with
        # zlib), SHA-256 about 0.55 s: CPU the service and the parser share (docs/benchmarks.md).
        return self.store._upload_part(self._part_client, self._key, self.upload_id, number, body, "CRC32")

    def _collect(self, done: Iterable[Future[dict[str, Any]]]) -> None:
        for future in done:
            try:
                part = future.result()
            except (ClientError, BotoCoreError) as exc:
                self._fail(wrap_errors("write a part of", self.identifiers["name"], exc), cause=exc)
            except BaseException as exc:
                self._fail(exc)
            self._parts.append(part)

    def _fail(self, exc: BaseException, cause: BaseException | None = None) -> NoReturn:
        self.abort()
        if cause is not None:
            raise exc from cause
        raise exc

    def finish_parts(self) -> None:
        self._check_open()
        if self._filled:
            self._send()
        in_flight, self._in_flight = self._in_flight, set()
        self._collect(wait(in_flight).done)
        self._shutdown()  # no part follows: no thread waits for one

    def complete(self) -> Identifiers:
        self.finish_parts()
        if self._number == 0:
            self._fail(StorageError(f"Could not write object {self._key!r}: no bytes were streamed."))
        try:
            response = self.store._complete(self._client, self._key, self.upload_id, self._parts)
        except ClientError as exc:
            self.abort()
            if _error_code(exc) == "PreconditionFailed" or _status(exc) == 412:
                raise ObjectExists(f"Storage {self.store.alias!r} already has an object {self._key!r}.") from exc
            raise wrap_errors("complete the multipart upload of", self.identifiers["name"], exc) from exc
        except BotoCoreError as exc:
            # No answer: the service may have joined the parts. The key is fresh, so what is there is ours.
            self._abort_or_delete()
            raise wrap_errors("complete the multipart upload of", self.identifiers["name"], exc) from exc
        self.state = "completed"
        self._shutdown()
        identifiers = {
            **self.identifiers,
            "region": self._client.meta.region_name,
            "etag": str(response.get("ETag", "")).strip('"'),
        }
        if response.get("VersionId") and response["VersionId"] != "null":
            identifiers["version_id"] = response["VersionId"]
        self.identifiers = identifiers
        return identifiers

    def abort(self) -> None:
        if self.state != "open":
            return
        self.state = "aborted"
        self._chunks, self._filled = [], 0
        # Parts being sent finish first: an upload aborted while a part is in flight may keep that part.
        self._shutdown()
        self._in_flight = set()
        self.store._abort_quietly(self._client, self._key, self.upload_id)

    def _abort_or_delete(self) -> None:
        """After a join whose answer was lost: abort the upload, and delete the object it may have become.

        The key is fresh, so an object there is this upload's, and no blob's.
        """
        self.state = "aborted"
        self._shutdown()
        bucket, key = self.store.bucket, self._key
        try:
            self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=self.upload_id)
        except (ClientError, BotoCoreError):
            pass  # joined already (NoSuchUpload), or the service is unreachable: the HEAD tells
        try:
            head = self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound") or _status(exc) == 404:
                return  # not joined: nothing there
            head = {}
        except BotoCoreError:
            head = {}
        try:
            version = {"VersionId": head["VersionId"]} if head.get("VersionId") not in (None, "null") else {}
            self._client.delete_object(Bucket=bucket, Key=key, **version)
        except (ClientError, BotoCoreError):
            logger.warning("Could not delete %r, joined without an answer: stray until the next purge --stray.", key)

    def _shutdown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)
