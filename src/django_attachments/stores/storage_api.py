"""Stores built on the plain Django ``Storage`` API, and the local-disk one.

:class:`StorageAPIStore` works with any storage that implements ``save``,
``open``, ``delete``, ``exists``, ``listdir`` and ``get_modified_time``.
:class:`FileSystemStore` adds a fast directory walk for listing and keeps the
rename fast path of ``FileSystemStorage`` (a temporary upload is moved into
place, not copied).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from datetime import datetime, timezone

from django.core.files import File

from ..conf import app_settings
from ..exceptions import ObjectExists, ObjectMissing
from .base import BaseStore, Identifiers, ObjectStat, RangeReader, StoredObject, wrap_errors


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
