"""Fault injection for stores: test code, plugged in through ``stores.register_adapter``.

A storage of class ``FaultyFileSystemStorage`` or ``FaultyS3Storage`` gets a
store adapter that fails on demand at each step, with the real store doing
the work otherwise::

    store.storage.faults.arm("save.after")     # the bytes are written, then the call fails
    ...
    store.storage.faults.disarm()

Points: ``save.before`` (nothing written), ``save.partial`` (part of an
object written, as a dropped connection leaves), ``save.after`` (the whole
object written, but the caller never learns its name), ``open``, ``stat``,
``delete``, ``delete_many`` (the whole batch refused), ``delete_many.partial``
(the first half deleted, the rest reported failed), ``list``.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage

from django_attachments.exceptions import StorageError
from django_attachments.stores import DeleteFailure, FileSystemStore, register_adapter, unregister_adapter
from django_attachments.stores.s3 import S3Store

POINTS = (
    "save.before",
    "save.partial",
    "save.after",
    "open",
    "stat",
    "delete",
    "delete_many",
    "delete_many.partial",
    "list",
)


class Faults:
    def __init__(self) -> None:
        self.armed: set[str] = set()
        self.fired: Counter[str] = Counter()

    def arm(self, *points: str) -> None:
        unknown = set(points) - set(POINTS)
        if unknown:
            raise ValueError(f"unknown fault points {unknown}")
        self.armed.update(points)

    def disarm(self) -> None:
        self.armed.clear()

    def hit(self, point: str) -> bool:
        if point in self.armed:
            self.fired[point] += 1
            return True
        return False

    def check(self, point: str) -> None:
        if self.hit(point):
            raise StorageError(f"injected fault: {point}")


class FaultyFileSystemStorage(FileSystemStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = Faults()


class FaultyS3Storage(S3Storage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = Faults()


class FaultInjecting:
    """Mixed in before a real store adapter."""

    def save(self, content: Any, *, size: int, checksum: str, content_type: str, name: str | None = None) -> dict:
        faults = self.storage.faults
        faults.check("save.before")
        if faults.hit("save.partial"):
            content.seek(0)
            self.storage.save(name or self.new_name(), ContentFile(content.read(max(size // 2, 1))))
            raise StorageError("injected fault: save.partial")
        identifiers = super().save(content, size=size, checksum=checksum, content_type=content_type, name=name)
        faults.check("save.after")
        return identifiers

    def open(self, identifiers: dict, **kwargs: Any) -> Any:
        self.storage.faults.check("open")
        return super().open(identifiers, **kwargs)

    def stat(self, identifiers: dict) -> Any:
        self.storage.faults.check("stat")
        return super().stat(identifiers)

    def delete(self, identifiers: dict) -> None:
        self.storage.faults.check("delete")
        super().delete(identifiers)

    def delete_many(self, identifiers_list: Any) -> list[DeleteFailure]:
        identifiers_list = list(identifiers_list)
        faults = self.storage.faults
        faults.check("delete_many")
        if faults.hit("delete_many.partial"):
            keep = len(identifiers_list) // 2
            failures = super().delete_many(identifiers_list[:keep])
            return failures + [DeleteFailure(i["name"], "injected fault") for i in identifiers_list[keep:]]
        return super().delete_many(identifiers_list)

    def list(self, prefix: str | None = None) -> Any:
        self.storage.faults.check("list")
        yield from super().list(prefix)


class FaultyFileSystemStore(FaultInjecting, FileSystemStore):
    pass


class FaultyS3Store(FaultInjecting, S3Store):
    pass


def install() -> None:
    register_adapter(FaultyFileSystemStorage, FaultyFileSystemStore)
    register_adapter(FaultyS3Storage, FaultyS3Store)


def uninstall() -> None:
    unregister_adapter(FaultyFileSystemStorage)
    unregister_adapter(FaultyS3Storage)


def read_all(reader: io.RawIOBase) -> bytes:
    with reader:
        return b"".join(iter(lambda: reader.read(1 << 20), b""))
