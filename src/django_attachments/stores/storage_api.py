"""Stores built on the plain Django ``Storage`` API, and the local-disk one.

:class:`StorageAPIStore` works with any storage that implements ``save``,
``open``, ``delete``, ``exists``, ``listdir`` and ``get_modified_time``.
:class:`FileSystemStore` adds a fast directory walk for listing and keeps the
rename fast path of ``FileSystemStorage`` (a temporary upload is moved into
place, not copied).

Both take multipart uploads the API receives for them (they cannot sign a
URL): each part, verified by the caller, is kept as an object of its own
under ``<KEY_PREFIX>multipart/<upload id>/``, named after its number and
SHA-256, and completing joins them into the reserved object in one streamed
pass that also computes the whole object's SHA-256.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import posixpath
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import IO, Any, cast

from django.core.files import File

from ..conf import app_settings
from ..exceptions import ObjectExists, ObjectMissing, PartMismatch, StorageError
from .base import (
    BaseStore,
    Identifiers,
    IncompleteUpload,
    ObjectStat,
    RangeReader,
    StoredObject,
    UploadedPart,
    wrap_errors,
)

#: The folder, under the key prefix, where parts of multipart uploads wait to be joined.
MULTIPART_FOLDER = "multipart"
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART_NAME = re.compile(r"(\d{5})\.([0-9a-f]{64})")
_MARKER = "upload"


def multipart_prefix() -> str:
    """Where parts wait: not objects of blobs, so the stray sweep leaves them to the multipart purge."""
    return f"{app_settings.KEY_PREFIX}{MULTIPART_FOLDER}/"


class StorageAPIStore(BaseStore):
    """A store over any Django storage, through its public API only."""

    #: ``Storage.size()`` answers without reading the bytes.
    can_stat = True
    #: ``save(name=...)`` checks the name is free, and gives it up if ``Storage.save()`` picked another.
    can_reserve = True

    def save(
        self, content: File, *, size: int, checksum: str, content_type: str, name: str | None = None
    ) -> Identifiers:
        reserved = name
        name = name or self.new_name()
        if not isinstance(content, File):
            content = File(content)
        if content.seekable():
            content.seek(0)
        if reserved is not None and self.storage.exists(name):
            raise ObjectExists(f"Storage {self.alias!r} already has an object {name!r}.")
        try:
            # Storage.save() never overwrites: on a name clash it picks another
            # name (get_available_name), which is why the returned name is kept.
            saved_name = self.storage.save(name, content)
        except Exception as exc:
            raise wrap_errors("write", name, exc) from exc
        if reserved is not None and saved_name != reserved:
            # Another writer took the reserved name between the check and the save.
            self.delete({"storage": self.alias, "name": saved_name})
            raise ObjectExists(f"Storage {self.alias!r} already has an object {name!r}.")
        return {"storage": self.alias, "name": saved_name}

    def stat(self, identifiers: Identifiers) -> ObjectStat:
        name = self.name_of(identifiers)
        try:
            size = self.storage.size(name)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"Storage {self.alias!r} has no object {name!r}.") from exc
        except Exception as exc:
            raise wrap_errors("inspect", name, exc) from exc
        return ObjectStat(size=size, checksum=None, identifiers={"storage": self.alias, "name": name})

    def open(self, identifiers: Identifiers, *, start: int = 0, end: int | None = None) -> RangeReader:
        name = self.name_of(identifiers)
        try:
            handle = self.storage.open(name, "rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(f"Storage {self.alias!r} has no object {name!r}.") from exc
        except Exception as exc:
            raise wrap_errors("open", name, exc) from exc
        try:
            if start:
                handle.seek(start)
        except Exception:
            handle.close()
            raise
        return RangeReader(handle, None if end is None else end - start + 1)

    def exists(self, identifiers: Identifiers) -> bool:
        return self.storage.exists(self.name_of(identifiers))

    def delete(self, identifiers: Identifiers) -> None:
        name = self.name_of(identifiers)
        try:
            self.storage.delete(name)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise wrap_errors("delete", name, exc) from exc

    def list(self, prefix: str | None = None) -> Iterator[StoredObject]:
        top = (prefix or self._default_prefix()).rstrip("/")
        pending = [top]
        while pending:
            folder = pending.pop()
            try:
                dirs, files = self.storage.listdir(folder)
            except FileNotFoundError:
                continue
            pending.extend(posixpath.join(folder, d) for d in dirs)
            for filename in files:
                name = posixpath.join(folder, filename)
                yield StoredObject(
                    name=name, modified=self.storage.get_modified_time(name), size=self.storage.size(name)
                )

    def _default_prefix(self) -> str:
        return app_settings.KEY_PREFIX

    # -- multipart uploads the API receives ---------------------------------------------

    can_multipart = True

    def _parts_folder(self, upload_id: str) -> str:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise StorageError(f"{upload_id!r} is not a multipart upload id of storage {self.alias!r}.")
        return f"{multipart_prefix()}{upload_id}"

    def start_multipart(self, identifiers: Identifiers, *, content_type: str) -> str:
        self.name_of(identifiers)
        upload_id = uuid.uuid4().hex
        # An empty marker: the upload exists (list_parts, list_multipart) before any part arrives.
        marker = self._marker(upload_id)
        self.save(File(io.BytesIO(b"")), size=0, checksum="", content_type="application/octet-stream", name=marker)
        return upload_id

    def _marker(self, upload_id: str) -> str:
        return f"{self._parts_folder(upload_id)}/{_MARKER}"

    def save_part(
        self, identifiers: Identifiers, upload_id: str, *, number: int, content: File, size: int, checksum: str
    ) -> UploadedPart:
        if not self.storage.exists(self._marker(upload_id)):
            raise ObjectMissing(f"Storage {self.alias!r} has no multipart upload {upload_id!r}.")
        name = f"{self._parts_folder(upload_id)}/{number:05d}.{checksum}"
        part = UploadedPart(number=number, size=size, checksum=checksum)
        for _ in range(2):
            try:
                if self.storage.exists(name):
                    if self.storage.size(name) == size:
                        return part  # the same bytes: its name is their SHA-256
                    # Cut short (a write that died midway): it is no part; this one replaces it.
                    self.delete({"storage": self.alias, "name": name})
                self.save(content, size=size, checksum=checksum, content_type="application/octet-stream", name=name)
                return part
            except ObjectExists:
                continue  # sent twice at once: look again at what the other copy left
        raise StorageError(f"Could not keep part {number} of upload {upload_id!r}: its name stays taken.")

    def _held(self, upload_id: str) -> builtins.list[tuple[UploadedPart, str]]:
        folder = self._parts_folder(upload_id)
        try:
            _, files = self.storage.listdir(folder)
        except FileNotFoundError:
            files = []
        except Exception as exc:
            raise wrap_errors("list the parts of", folder, exc) from exc
        if _MARKER not in files:
            raise ObjectMissing(f"Storage {self.alias!r} has no multipart upload {upload_id!r}.")
        held = []
        for filename in files:
            match = _PART_NAME.fullmatch(filename)
            if match is None:
                continue  # not a part (a copy Storage.save() renamed; removed with the folder)
            name = f"{folder}/{filename}"
            try:
                size = self.storage.size(name)
            except FileNotFoundError:
                continue
            held.append((UploadedPart(number=int(match[1]), size=size, checksum=match[2]), name))
        return sorted(held, key=lambda item: item[0].number)

    def list_parts(self, identifiers: Identifiers, upload_id: str) -> builtins.list[UploadedPart]:
        return [part for part, _ in self._held(upload_id)]

    def complete_multipart(self, identifiers: Identifiers, upload_id: str, parts: Sequence[UploadedPart]) -> ObjectStat:
        name = self.name_of(identifiers)
        by_part = {(part.number, part.checksum): path for part, path in self._held(upload_id)}
        paths = []
        for part in parts:
            path = by_part.get((part.number, part.checksum))
            if path is None:
                raise PartMismatch(f"Part {part.number} with that SHA-256 is not held.", number=part.number)
            paths.append((part, path))
        if self.storage.exists(name):
            raise ObjectExists(f"Storage {self.alias!r} already has an object {name!r}.")
        joined = _JoinedParts(self, paths)
        size = sum(part.size for part in parts)
        content = File(cast(IO[bytes], joined), name=name)
        content.size = size
        try:
            self.save(content, size=size, checksum="", content_type="application/octet-stream", name=name)
        finally:
            joined.close()
        if joined.bytes_read != size:  # a part changed size since it was listed
            self.delete({"storage": self.alias, "name": name})
            raise PartMismatch(f"The parts held {joined.bytes_read} bytes, not {size}.")
        # As S3 forgets an upload it completed: the parts go (a join that died before this
        # point left them, and its partial object, for the next attempt to join again).
        self.abort_multipart(identifiers, upload_id)
        return ObjectStat(size=size, checksum=joined.checksum, identifiers=self.identifiers_for(name))

    def abort_multipart(self, identifiers: Identifiers, upload_id: str) -> None:
        folder = self._parts_folder(upload_id)
        try:
            _, files = self.storage.listdir(folder)
        except FileNotFoundError:
            return
        # The marker last: while it is there the upload is listed, and its remains found by the purge.
        for filename in sorted(files, key=lambda filename: filename == _MARKER):
            self.delete({"storage": self.alias, "name": f"{folder}/{filename}"})
        try:
            self.storage.delete(folder)  # FileSystemStorage removes an empty folder
        except Exception:  # noqa: S110 (other storages have no folders to remove)
            pass

    def list_multipart(self) -> Iterator[IncompleteUpload]:
        top = multipart_prefix().rstrip("/")
        try:
            folders, _ = self.storage.listdir(top)
        except FileNotFoundError:
            return
        for upload_id in folders:
            if not _UPLOAD_ID.fullmatch(upload_id):
                continue
            try:
                started = self.storage.get_modified_time(self._marker(upload_id))
            except FileNotFoundError:
                # Parts without their marker: what an abort left midway. Nothing there can be in flight.
                started = datetime(1970, 1, 1, tzinfo=timezone.utc)
            yield IncompleteUpload(name="", upload_id=upload_id, started=started)


class FileSystemStore(StorageAPIStore):
    """Local disk. Identifiers hold only the storage-relative name: no absolute paths."""

    def open(self, identifiers: Identifiers, *, start: int = 0, end: int | None = None) -> RangeReader:
        name = self.name_of(identifiers)
        try:
            # Unbuffered: reads go straight to the caller's chunk, no extra copy.
            handle = open(self.storage.path(name), "rb", buffering=0)  # noqa: SIM115 (closed by RangeReader)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"Storage {self.alias!r} has no object {name!r}.") from exc
        except OSError as exc:
            raise wrap_errors("open", name, exc) from exc
        if start:
            handle.seek(start)
        return RangeReader(handle, None if end is None else end - start + 1)

    def list(self, prefix: str | None = None) -> Iterator[StoredObject]:
        top = (prefix or self._default_prefix()).rstrip("/")
        root = self.storage.path(top)
        pending = [(root, top)]
        while pending:
            folder, relative = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                name = f"{relative}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, name))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield StoredObject(
                        name=name,
                        modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
                        size=st.st_size,
                    )


class _JoinedParts(io.RawIOBase):
    """The parts of a multipart upload read one after the other, hashed on the way (the whole object's SHA-256)."""

    def __init__(self, store: BaseStore, parts: list[tuple[UploadedPart, str]]) -> None:
        super().__init__()
        self._store, self._parts = store, list(parts)
        self._current: Any = None
        self._hasher = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._current is None:
                if not self._parts:
                    return 0
                _, path = self._parts.pop(0)
                self._current = self._store.open({"storage": self._store.alias, "name": path})
            data = self._current.read(len(view))
            if data:
                n = len(data)
                view[:n] = data
                self._hasher.update(data)
                self.bytes_read += n
                return n
            self._current.close()
            self._current = None

    @property
    def checksum(self) -> str:
        return self._hasher.hexdigest()

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()
