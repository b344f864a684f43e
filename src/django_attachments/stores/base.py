"""The contract every store adapter fulfils.

A store adapts one Django storage (an alias of ``settings.STORAGES``) to what
django_attachments needs: write a stream under a fresh random key, read it
back as a stream (optionally a byte range), delete one or many objects, sign a
download URL where the storage can, and list what lies under the app's key
prefix. ``save`` returns *identifiers*: a JSON-able dict that the database
keeps as opaque data and hands back to the same store later. Identifiers
always hold ``storage`` (the alias) and ``name`` (the storage's name for the
object); adapters may add more (bucket, ETag, version, ...).

What a store can do beyond the core (save, open, exists, delete, list) it
declares in capability flags, so that callers ask instead of trying::

    store = get_store("attachments")
    if store.can_sign_uploads:
        target = store.upload_target(identifiers, size=size, checksum=checksum, expires=3600)

A method whose flag is False raises ``NotImplementedError`` ("... is not
supported by this store"), or returns None where its contract says so
(:meth:`BaseStore.url`, :meth:`BaseStore.upload_target`).

A store's tunables come from ``DJANGO_ATTACHMENTS["STORE_OPTIONS"][alias]``:
each store class names a frozen dataclass of them, with their defaults, in
``options_class`` (:class:`StoreOptions`).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import IO, Any, NoReturn, cast

from django.core.files import File
from django.core.files.storage import Storage

from ..conf import SETTINGS_NAME, app_settings
from ..exceptions import AttachmentsImproperlyConfigured, ObjectExists, StorageError

Identifiers = dict[str, Any]


@dataclass(frozen=True)
class StoreOptions:
    """A store's tunables, set per storage alias in ``DJANGO_ATTACHMENTS["STORE_OPTIONS"]``.

    A store that takes options subclasses this with one field per option,
    each with its default, names it in :attr:`BaseStore.options_class`, and
    overrides :meth:`problems`. The base takes none.
    """

    def problems(self) -> dict[str, str]:
        """Each option whose value is wrong -> what it must be (empty when every value is right)."""
        return {}


@dataclass(frozen=True)
class StoredObject:
    """One object found by :meth:`BaseStore.list`."""

    name: str
    modified: datetime
    size: int


@dataclass(frozen=True)
class ObjectStat:
    """What a store says about one object without reading it (:meth:`BaseStore.stat`).

    ``checksum`` is a SHA-256 (hex) of the whole object that the backend
    computed itself, or None where it reports none. ``identifiers`` are the
    object's identifiers, completed with what the backend knows (ETag, version).
    ``composite_checksum``, for an object joined from parts, is the SHA-256
    (hex) of its parts' SHA-256 digests one after the other, as the backend
    computed it from the parts it holds (S3's ``COMPOSITE`` checksum, without
    its ``-N``), or None where it reports none: it is not the object's SHA-256,
    but it tells whether every part is the one signed (:func:`composite_of`).
    """

    size: int
    checksum: str | None
    identifiers: Identifiers
    composite_checksum: str | None = None


def composite_of(part_checksums: Sequence[str]) -> str:
    """The composite SHA-256 (hex) of parts whose SHA-256 digests (hex) these are, in part order."""
    return hashlib.sha256(b"".join(bytes.fromhex(checksum) for checksum in part_checksums)).hexdigest()


@dataclass(frozen=True)
class UploadTarget:
    """Where and how a client sends an object's bytes itself (:meth:`BaseStore.upload_target`)."""

    method: str
    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class UploadedPart:
    """A part a multipart upload holds (:meth:`BaseStore.list_parts`), or one to join (``complete_multipart``).

    ``checksum`` is the part's SHA-256 (hex): where the store reports one when
    listing, and always when completing (the one its request was signed with).
    ``modified``: when the store received it, where it says when listing.
    """

    number: int
    size: int
    etag: str = ""
    checksum: str | None = None
    modified: datetime | None = None


@dataclass(frozen=True)
class IncompleteUpload:
    """A multipart upload begun under the key prefix, neither completed nor aborted (``list_multipart``)."""

    name: str
    upload_id: str
    started: datetime


@dataclass(frozen=True)
class DeleteFailure:
    """An object :meth:`BaseStore.delete_many` could not delete, and why."""

    name: str
    error: str


class RangeReader(io.RawIOBase):
    """A read-only binary stream over ``raw`` that stops after ``length`` bytes.

    Used to serve byte ranges without reading past them, and to give every
    store's ``open`` the same streaming interface (``read(n)``, iteration by
    chunks with :meth:`chunks`, ``close``, context manager).
    """

    def __init__(self, raw: IO[bytes] | Any, length: int | None = None) -> None:
        super().__init__()
        self._raw = raw
        self._remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = len(view) if self._remaining is None else min(len(view), self._remaining)
        if want <= 0:
            return 0
        data = self._raw.read(want)
        n = len(data)
        view[:n] = data
        if self._remaining is not None:
            self._remaining -= n
        return n

    def read(self, size: int = -1) -> bytes:
        # Read straight from the underlying stream instead of through a
        # readinto() buffer: one copy less per chunk on the hot download path.
        if self._remaining is not None:
            size = self._remaining if size is None or size < 0 else min(size, self._remaining)
        if size == 0:
            return b""
        if size is None or size < 0:
            data = self._raw.read()
        else:
            data = self._raw.read(size)
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        size = chunk_size or app_settings.CHUNK_SIZE
        while chunk := self.read(size):
            yield chunk

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()


class _Mismatch(Exception):
    """Raised from inside a read of :class:`VerifyingReader`; deliberately not an ``OSError``.

    An ``OSError`` raised while an HTTP client sends a body reads as a broken
    connection to it, which it retries (and cannot, as the body does not
    rewind); this passes through unchanged, and the caller raises
    :attr:`VerifyingReader.failure` as a ``StorageError``.
    """


class VerifyingReader(io.RawIOBase):
    """A read-only, non-seekable stream over ``raw`` that must hold exactly ``size`` bytes (and, given
    ``checksum``, bytes with that SHA-256).

    The bytes are counted and hashed as they pass. Stopping short, going on
    past ``size`` or other bytes make a read fail (with a private exception;
    :attr:`failure` says why) *before* the last byte is handed out, so that a
    writer fed from it never completes an object that is not those bytes. A
    read of ``raw`` that fails is recorded the same way. ``read(n)`` returns
    ``n`` bytes but at the end, whatever ``raw`` returns per call.
    """

    def __init__(self, raw: IO[bytes] | Any, *, size: int, checksum: str | None = None) -> None:
        super().__init__()
        self._raw = raw
        self._size, self._checksum = size, checksum
        self._hasher = hashlib.sha256() if checksum else None
        #: Bytes handed out so far.
        self.bytes_read = 0
        #: What is wrong with the stream, to follow its name in a message ("ended after 10 of
        #: 20 bytes"); None while nothing is.
        self.failure: str | None = None
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if self.failure is not None:
            raise _Mismatch(self.failure)
        remaining = self._size - self.bytes_read
        want = remaining if size is None or size < 0 else min(size, remaining)
        chunks: list[bytes] = []
        got = 0
        while got < want:
            data = self._read_raw(want - got)
            if not data:
                self._fail(f"ended after {self.bytes_read + got} of {self._size} bytes")
            chunks.append(data)
            got += len(data)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self._hasher is not None:
            self._hasher.update(data)
        if self.bytes_read + got == self._size and not self._checked:
            self._check_end()  # before the last bytes leave: a writer never sees them if they are wrong
        self.bytes_read += got
        return data

    def _read_raw(self, n: int) -> bytes:
        try:
            return self._raw.read(n)
        except Exception as exc:
            self._fail(f"could not be read: {exc}")

    def _check_end(self) -> None:
        self._checked = True
        if self._read_raw(1):
            self._fail(f"holds more than {self._size} bytes")
        if self._hasher is not None and self._hasher.hexdigest() != self._checksum:
            self._fail(f"has SHA-256 {self._hasher.hexdigest()}, not {self._checksum}")

    def _fail(self, why: str) -> NoReturn:
        self.failure = why
        raise _Mismatch(why)

    def finish(self) -> None:
        """Raise :class:`~django_attachments.exceptions.StorageError` unless every byte was read and checked."""
        if self.failure is None and not self._checked:
            if self.bytes_read == self._size:  # nothing to read (an empty object), and nobody asked
                with contextlib.suppress(_Mismatch):
                    self._check_end()
            else:
                self.failure = f"was read up to byte {self.bytes_read} of {self._size} only"
        if self.failure is not None:
            raise StorageError(f"The stream {self.failure}.")

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()


class SeekableReader(io.RawIOBase):
    """Random access to a stored object through ranged reads: what a parser that seeks needs.

    ``seek()`` only moves a number; ``read()`` streams from the position with
    one ranged ``open`` of the store, kept while reads go on in order. Each
    range asks for ``window`` bytes, doubled while reads stay sequential (up to
    ``max_window``), so a parser that reads a header and jumps to the end (a
    PDF's cross-reference table, a video's index) fetches little more than it
    reads, and one that reads everything makes few requests. Memory holds at
    most one read's bytes. Wrap it in ``io.BufferedReader`` for many small
    reads (:meth:`buffered`). :attr:`fetched` counts the bytes asked of the
    store, for the benchmarks.
    """

    def __init__(
        self,
        store: BaseStore,
        identifiers: Identifiers,
        size: int,
        *,
        window: int = 64 * 1024,
        max_window: int = 8 * 1024 * 1024,
    ) -> None:
        super().__init__()
        self._store, self._identifiers, self._size = store, identifiers, size
        self._first_window, self._max_window = window, max(window, max_window)
        self._window = window
        self._position = 0
        self._range: RangeReader | None = None
        self._range_end = 0  # exclusive end of the open range
        self._range_position = 0
        #: The bytes asked of the store so far (ranges opened, whether or not read to their end).
        self.fetched = 0
        #: The ranged reads opened so far.
        self.requests = 0

    @classmethod
    def buffered(cls, store: BaseStore, identifiers: Identifiers, size: int, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(cls(store, identifiers, size, **kwargs), buffer_size=64 * 1024)

    @property
    def name(self) -> str:
        return self._store.name_of(self._identifiers)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence!r})")
        if position < 0:
            raise OSError(22, f"negative seek position {position}")
        self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._position)
        if want <= 0:
            return 0
        if self._range is None or self._range_position != self._position or self._position >= self._range_end:
            self._open_range(sequential=self._range is not None and self._range_position == self._position)
        assert self._range is not None
        want = min(want, self._range_end - self._position)
        data = self._range.read(want)
        if not data:
            raise StorageError(f"The object {self.name!r} ended before its recorded size ({self._size} bytes).")
        n = len(data)
        view[:n] = data
        self._position += n
        self._range_position = self._position
        return n

    def _open_range(self, *, sequential: bool) -> None:
        self._close_range()
        self._window = min(self._window * 2, self._max_window) if sequential else self._first_window
        end = min(self._size, self._position + self._window)
        self._range = self._store.open(self._identifiers, start=self._position, end=end - 1)
        self._range_end, self._range_position = end, self._position
        self.fetched += end - self._position
        self.requests += 1

    def _close_range(self) -> None:
        if self._range is not None:
            self._range.close()
            self._range = None

    def close(self) -> None:
        if not self.closed:
            try:
                self._close_range()
            finally:
                super().close()


class StreamedWrite:
    """An object written while its bytes still arrive (:meth:`BaseStore.open_stream`).

    :meth:`write` takes the bytes in order, in chunks of any size; the store
    sends them on in parts, a few side by side, while the caller reads more.
    :meth:`finish_parts` sends the rest and waits for every part. Nothing is an
    object until :meth:`complete` joins the parts; :meth:`abort` drops them
    (nothing is kept). Exactly one of the two ends it; :meth:`abort` after
    :meth:`complete` does nothing, so an owner may always call it when done.
    A failure of a part raises :class:`~django_attachments.exceptions.StorageError`
    from the next call, after aborting.
    """

    #: The store the bytes go to, and the identifiers they will have there (completed by :meth:`complete`).
    store: BaseStore
    identifiers: Identifiers
    #: Bytes taken by :meth:`write` so far.
    size: int = 0

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def finish_parts(self) -> None:
        raise NotImplementedError

    def complete(self) -> Identifiers:
        """Join the parts into the object (after :meth:`finish_parts`, which it calls); its identifiers."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what was sent (idempotent; nothing after :meth:`complete`)."""
        raise NotImplementedError

    #: "open" while it takes bytes, then "completed" or "aborted".
    state: str = "open"

    @property
    def completed(self) -> bool:
        return self.state == "completed"


class BaseStore:
    """Adapter over one Django storage.

    Subclasses implement :meth:`save`, :meth:`stat`, :meth:`open`,
    :meth:`exists`, :meth:`delete` and :meth:`list`, and the optional methods
    whose capability flag they set to True.
    """

    # -- capabilities: what callers may ask of this store --------------------------
    # can_stat, can_reserve and can_copy are part of the contract every built-in
    # store meets, so they default to True; a store that cannot sets them to False.

    #: Whether :meth:`stat` reports an object's size (and, where the backend
    #: computed one, its SHA-256) without reading the bytes.
    can_stat = True
    #: Whether :meth:`reserve` hands out fresh names and :meth:`save` writes
    #: under one (``name=``), never overwriting an object already there.
    can_reserve = True
    #: Whether :meth:`url` can return a signed, expiring URL.
    can_sign_urls = False
    #: Whether :meth:`upload_target` can hand clients a signed URL to send bytes to.
    can_sign_uploads = False
    #: Whether :meth:`copy_from` copies an object out of another store (for
    #: moving and mirroring blobs between storages). Every store that can
    #: :meth:`save` can: the default streams the source's bytes through
    #: :meth:`save`; :class:`~django_attachments.stores.s3.S3Store` copies
    #: server-side where both stores reach the same service.
    can_copy = True
    #: Whether the multipart operations (:meth:`start_multipart`,
    #: :meth:`part_target`, :meth:`save_part`, :meth:`list_parts`,
    #: :meth:`complete_multipart`, :meth:`abort_multipart`,
    #: :meth:`list_multipart`) work (for resumable direct uploads).
    can_multipart = False
    #: The largest object :meth:`upload_target` can take (None: no limit of its own).
    max_upload_target_size: int | None = None
    #: Whether :meth:`open_stream` writes an object as its bytes arrive (API uploads
    #: go on to the storage while the request body is still being received).
    can_stream_writes = False

    #: The options this store takes from ``STORE_OPTIONS[alias]``, with their defaults.
    options_class: type[StoreOptions] = StoreOptions

    def __init__(self, alias: str, storage: Storage, options: StoreOptions | None = None) -> None:
        self.alias = alias
        self.storage = storage
        self.options = self.options_class() if options is None else options

    @classmethod
    def parse_options(cls, alias: str, raw: Mapping[str, Any]) -> StoreOptions:
        """``STORE_OPTIONS[alias]`` as this store's :attr:`options_class`, checked.

        An unknown option or a wrong value raises
        :class:`~django_attachments.exceptions.AttachmentsImproperlyConfigured`
        naming the exact key, e.g. ``DJANGO_ATTACHMENTS['STORE_OPTIONS']['attachments']['part_size']``.
        """
        where = f"{SETTINGS_NAME}['STORE_OPTIONS'][{alias!r}]"
        known = [field.name for field in fields(cls.options_class)]
        for name in raw:
            if name not in known:
                takes = f"its options are: {', '.join(known)}" if known else "it takes none"
                raise AttachmentsImproperlyConfigured(
                    f"{where}[{name!r}] is not an option of {cls.__name__} (the store of storage {alias!r}); {takes}."
                )
        options = cls.options_class(**raw)
        for name, expected in options.problems().items():
            raise AttachmentsImproperlyConfigured(
                f"{where}[{name!r}] must be {expected}, not {getattr(options, name)!r}."
            )
        return options

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r} storage={type(self.storage).__name__}>"

    # -- names -----------------------------------------------------------------

    def new_name(self) -> str:
        """A fresh random object name under the key prefix, sharded two levels deep.

        Never derived from the user's filename: names carry no user input.
        """
        token = uuid.uuid4().hex
        return f"{app_settings.KEY_PREFIX}{token[:2]}/{token[2:4]}/{token}"

    def name_of(self, identifiers: Identifiers) -> str:
        try:
            name = identifiers["name"]
        except (KeyError, TypeError):
            raise StorageError(f"Storage identifiers {identifiers!r} have no 'name'.") from None
        if identifiers.get("storage", self.alias) != self.alias:
            raise StorageError(f"Identifiers of storage {identifiers.get('storage')!r} given to store {self.alias!r}.")
        return name

    def identifiers_for(self, name: str) -> Identifiers:
        """The minimal identifiers of an object known only by name (for listings)."""
        return {"storage": self.alias, "name": name}

    def reserve(self) -> Identifiers:
        """Identifiers for a fresh object name that a direct upload will write to (where :attr:`can_reserve`).

        Nothing is written. Adapters add what :meth:`upload_target` and
        :meth:`stat` need (the S3 store adds ``bucket`` and ``key``).
        """
        if not self.can_reserve:
            raise self._not_implemented("reserve", "can_reserve")
        return self.identifiers_for(self.new_name())

    def _not_implemented(self, method: str, flag: str) -> NotImplementedError:
        """The error of an optional method: missing where the flag promises it, else unsupported."""
        if getattr(self, flag):
            return NotImplementedError(f".{method}() must be overridden.")
        return NotImplementedError(
            f".{method}() is not supported by this store ({type(self).__name__}.{flag} is False)."
        )

    # -- the contract ------------------------------------------------------------

    def save(
        self, content: File, *, size: int, checksum: str, content_type: str, name: str | None = None
    ) -> Identifiers:
        """Write ``content`` (positioned at 0) under a new name, or ``name`` (one :meth:`reserve` gave).

        Never overwrites: raises :class:`~django_attachments.exceptions.ObjectExists`
        when ``name`` is taken; ``name`` is only given where :attr:`can_reserve`.
        ``size``, ``checksum`` (SHA-256 hex) and ``content_type`` were computed
        by the caller from the same bytes; stores that can have the backend
        verify the transfer use them.
        """
        raise NotImplementedError(".save() must be overridden.")

    def stat(self, identifiers: Identifiers) -> ObjectStat:
        """The object's size (and checksum, where the backend computed one), without reading it.

        Where :attr:`can_stat`. Raises :class:`~django_attachments.exceptions.ObjectMissing`
        when there is no such object.
        """
        raise self._not_implemented("stat", "can_stat")

    def upload_target(self, identifiers: Identifiers, *, size: int, checksum: str, expires: int) -> UploadTarget | None:
        """A signed request a client can send the object's bytes with, or None where the store cannot sign.

        Where :attr:`can_sign_uploads` is False, always None.

        The request must be bound to the reserved name, to exactly ``size``
        bytes and, where the backend verifies checksums, to ``checksum``; it
        must not overwrite an existing object, and it is valid for ``expires``
        seconds.
        """
        return None

    def open(self, identifiers: Identifiers, *, start: int = 0, end: int | None = None) -> RangeReader:
        """Stream the object's bytes from ``start`` to ``end`` inclusive (all by default).

        Raises :class:`~django_attachments.exceptions.ObjectMissing` when there
        is no such object.
        """
        raise NotImplementedError(".open() must be overridden.")

    def exists(self, identifiers: Identifiers) -> bool:
        raise NotImplementedError(".exists() must be overridden.")

    def delete(self, identifiers: Identifiers) -> None:
        """Delete the object; deleting a missing object is not an error."""
        raise NotImplementedError(".delete() must be overridden.")

    def delete_many(self, identifiers_list: Iterable[Identifiers]) -> list[DeleteFailure]:
        """Delete many objects, batched where the backend allows; return what failed."""
        failures = []
        for identifiers in identifiers_list:
            try:
                self.delete(identifiers)
            except Exception as exc:  # report and carry on: the object becomes stray
                failures.append(DeleteFailure(name=str(identifiers.get("name")), error=str(exc)))
        return failures

    def url(
        self,
        identifiers: Identifiers,
        *,
        expires: int,
        content_disposition: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        """A signed URL valid for ``expires`` seconds, or None where the storage cannot sign."""
        return None

    def list(self, prefix: str | None = None) -> Iterator[StoredObject]:
        """Every object under ``prefix`` (the app's key prefix by default)."""
        raise NotImplementedError(".list() must be overridden.")

    # -- copies between stores --------------------------------------------------------

    def copy_from(
        self, source: BaseStore, identifiers: Identifiers, *, size: int, checksum: str, content_type: str
    ) -> ObjectStat:
        """Copy the object ``source`` holds under ``identifiers`` here, under a fresh name; what the copy is.

        The :class:`ObjectStat`'s ``identifiers`` are the copy's; its
        ``checksum`` is the SHA-256 the backend reported for the bytes it
        wrote (it computed it from what it received and checked it against
        the one sent), or None where it reports none.

        Where :attr:`can_copy`. Server-side where both stores reach the same
        service (:class:`~django_attachments.stores.s3.S3Store` between
        buckets of one S3 endpoint, with the same credentials); else streamed
        from ``source.open()`` into :meth:`save`, memory bounded whatever the
        size. Never overwrites, and never touches the source. The identifiers
        are shaped as :meth:`save` returns them, for this store.

        ``size``, ``checksum`` (SHA-256 hex) and ``content_type`` are the
        blob's. A streamed copy checks them on the way: a source that holds
        fewer or more than ``size`` bytes, or other bytes, fails the copy
        before its last byte is handed to :meth:`save` (and the backend, where
        it can, checks the SHA-256 of what it received as :meth:`save` does).
        A server-side copy checks the source's size first and the SHA-256
        where the service reports one. The caller still verifies the copy
        (:meth:`stat`, or reading it back) before pointing at it.

        Raises :class:`~django_attachments.exceptions.ObjectMissing` when the
        source has no such object, and
        :class:`~django_attachments.exceptions.StorageError` when the source
        does not hold exactly those bytes, a read or a write fails; either
        way nothing is left here (a partial write is deleted).
        """
        if not self.can_copy:
            raise self._not_implemented("copy_from", "can_copy")
        return self.stream_from(source, identifiers, size=size, checksum=checksum, content_type=content_type)

    def stream_from(
        self, source: BaseStore, identifiers: Identifiers, *, size: int, checksum: str, content_type: str
    ) -> ObjectStat:
        """:meth:`copy_from` by streaming: ``source.open()`` read through a :class:`VerifyingReader` into :meth:`save`.

        The reader is not seekable; a store's :meth:`save` must take such a
        stream without reading it whole into memory.
        """
        what = f"object {source.name_of(identifiers)!r} of storage {source.alias!r}"
        # A name chosen here, not by save(): what a failed write left under it can be deleted.
        name = self.new_name() if self.can_reserve else None
        with source.open(identifiers) as raw:
            reader = VerifyingReader(raw, size=size, checksum=checksum)
            content = File(cast(IO[bytes], reader), name=name)
            content.size = size
            copied: Identifiers | None = None
            try:
                written = self.save_reporting(
                    content, size=size, checksum=checksum, content_type=content_type, name=name
                )
                copied = written.identifiers
                reader.finish()  # a store that stopped reading early has not copied it all
            except ObjectExists:
                raise  # another's object under that name: never ours to delete
            except BaseException as exc:
                self._discard(copied if copied is not None else name)
                if reader.failure is not None:
                    raise StorageError(
                        f"Could not copy {what} to storage {self.alias!r}: the source {reader.failure}."
                    ) from exc
                raise
        return written

    def save_reporting(
        self, content: File, *, size: int, checksum: str, content_type: str, name: str | None = None
    ) -> ObjectStat:
        """:meth:`save`, and what the backend reported of the bytes it wrote: their SHA-256 where it computed
        one from what it received (a write it checked against ``checksum``), else None."""
        identifiers = self.save(content, size=size, checksum=checksum, content_type=content_type, name=name)
        return ObjectStat(size=size, checksum=None, identifiers=identifiers)

    def _discard(self, what: Identifiers | str | None) -> None:
        """Delete what a failed copy may have left (by identifiers or name); a failure leaves a stray, for the sweep."""
        if what is None:
            return
        try:
            self.delete(what if isinstance(what, dict) else self.identifiers_for(what))
        except Exception:  # noqa: S110 (the copy's own error is the one to raise)
            pass

    # -- optional: writing while the bytes arrive ------------------------------------

    def stream_threshold(self) -> int:
        """Files up to this many bytes are written whole (:meth:`save`); larger ones may be streamed."""
        raise self._not_implemented("stream_threshold", "can_stream_writes")

    def open_stream(self, *, content_type: str) -> StreamedWrite:
        """Begin writing a new object whose bytes are still arriving. Where :attr:`can_stream_writes`.

        How many bytes will come is not known (a declared length is the
        client's word): the memory it holds must not follow a claim.
        """
        raise self._not_implemented("open_stream", "can_stream_writes")

    # -- optional: multipart uploads (for resumable uploads) ---------------------------
    # A multipart upload writes the reserved object (:meth:`reserve`) in parts
    # that a client sends, in any order and more than once, each bound to its
    # exact length and SHA-256. Where :attr:`can_sign_uploads`, the client
    # sends them to the storage (:meth:`part_target`); elsewhere the API
    # receives them and hands them to :meth:`save_part`.

    def start_multipart(self, identifiers: Identifiers, *, content_type: str) -> str:
        """Begin a multipart upload to a reserved name; return the upload's id. Where :attr:`can_multipart`."""
        raise self._not_implemented("start_multipart", "can_multipart")

    def part_target(
        self, identifiers: Identifiers, upload_id: str, *, number: int, size: int, checksum: str, expires: int
    ) -> UploadTarget | None:
        """A signed request a client sends part ``number`` (from 1) with, bound to its ``size`` and ``checksum``.

        None where the store cannot sign (the API then takes the part and calls :meth:`save_part`).
        """
        if not self.can_multipart:
            raise self._not_implemented("part_target", "can_multipart")
        return None

    def save_part(
        self, identifiers: Identifiers, upload_id: str, *, number: int, content: File, size: int, checksum: str
    ) -> UploadedPart:
        """Keep part ``number``, whose ``size`` and ``checksum`` the caller verified (stores that cannot sign).

        A part already held with that checksum is kept as it is (the same bytes).
        """
        raise self._not_implemented("save_part", "can_multipart")

    def list_parts(self, identifiers: Identifiers, upload_id: str) -> builtins.list[UploadedPart]:
        """The parts the upload holds whole, by number.

        Raises :class:`~django_attachments.exceptions.ObjectMissing` when the
        upload is unknown (completed or aborted).
        """
        raise self._not_implemented("list_parts", "can_multipart")

    def complete_multipart(self, identifiers: Identifiers, upload_id: str, parts: Sequence[UploadedPart]) -> ObjectStat:
        """Join ``parts`` (numbers 1..N, each with its checksum) into the reserved object; what it then is.

        Never overwrites an object there (:class:`~django_attachments.exceptions.ObjectExists`);
        :class:`~django_attachments.exceptions.ObjectMissing` when the upload
        is unknown. The stat's ``checksum`` is the whole object's SHA-256 where
        the store read the bytes to join them, else None.
        """
        raise self._not_implemented("complete_multipart", "can_multipart")

    def abort_multipart(self, identifiers: Identifiers, upload_id: str) -> None:
        """Drop an unfinished multipart upload and the parts it holds; an unknown upload is no error."""
        raise self._not_implemented("abort_multipart", "can_multipart")

    def list_multipart(self) -> Iterator[IncompleteUpload]:
        """Every multipart upload begun under the key prefix and not completed nor aborted."""
        raise self._not_implemented("list_multipart", "can_multipart")


def wrap_errors(action: str, name: str, exc: Exception) -> StorageError:
    """A StorageError that says what was being done to which object."""
    return StorageError(f"Could not {action} object {name!r}: {exc}")
