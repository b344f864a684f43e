"""The contract every store adapter fulfils.

A store adapts one Django storage (an alias of ``settings.STORAGES``) to what
django_attachments needs: write a stream under a fresh random key, read it
back as a stream (optionally a byte range), delete one or many objects, sign a
download URL where the storage can, and list what lies under the app's key
prefix. ``save`` returns *identifiers*: a JSON-able dict that the database
keeps as opaque data and hands back to the same store later. Identifiers
always hold ``storage`` (the alias) and ``name`` (the storage's name for the
object); adapters may add more (bucket, ETag, version, ...).

A store's tunables come from ``DJANGO_ATTACHMENTS["STORE_OPTIONS"][alias]``:
each store class names a frozen dataclass of them, with their defaults, in
``options_class`` (:class:`StoreOptions`).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import IO, Any

from django.core.files import File
from django.core.files.storage import Storage

from ..conf import SETTINGS_NAME, app_settings
from ..exceptions import AttachmentsImproperlyConfigured, StorageError

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
    """

    size: int
    checksum: str | None
    identifiers: Identifiers


@dataclass(frozen=True)
class UploadTarget:
    """Where and how a client sends an object's bytes itself (:meth:`BaseStore.upload_target`)."""

    method: str
    url: str
    headers: dict[str, str]


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


class BaseStore:
    """Adapter over one Django storage. Subclasses implement every method below."""

    #: Whether :meth:`url` can return a signed, expiring URL.
    can_sign_urls = False
    #: Whether :meth:`upload_target` can hand clients a signed URL to send bytes to.
    can_sign_uploads = False
    #: The largest object :meth:`upload_target` can take (None: no limit of its own).
    max_upload_target_size: int | None = None

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
        """Identifiers for a fresh object name that a direct upload will write to."""
        return self.identifiers_for(self.new_name())

    # -- the contract ------------------------------------------------------------

    def save(
        self, content: File, *, size: int, checksum: str, content_type: str, name: str | None = None
    ) -> Identifiers:
        """Write ``content`` (positioned at 0) under a new name, or ``name`` (one :meth:`reserve` gave).

        Never overwrites: raises :class:`~django_attachments.exceptions.ObjectExists`
        when ``name`` is taken. ``size``, ``checksum`` (SHA-256 hex) and
        ``content_type`` were computed by the caller from the same bytes;
        stores that can have the backend verify the transfer use them.
        """
        raise NotImplementedError(".save() must be overridden.")

    def stat(self, identifiers: Identifiers) -> ObjectStat:
        """The object's size (and checksum, where the backend computed one); ObjectMissing if absent."""
        raise NotImplementedError(".stat() must be overridden.")

    def upload_target(self, identifiers: Identifiers, *, size: int, checksum: str, expires: int) -> UploadTarget | None:
        """A signed request a client can send the object's bytes with, or None where the store cannot sign.

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


def wrap_errors(action: str, name: str, exc: Exception) -> StorageError:
    """A StorageError that says what was being done to which object."""
    return StorageError(f"Could not {action} object {name!r}: {exc}")
