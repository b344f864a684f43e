"""Real storages that misbehave on purpose, for the migration tests (named in ``STORAGES`` by dotted path).

- :class:`CorruptingStorage` writes every object with its first byte flipped:
  a disk that returns other bytes than it was given;
- :class:`HookedStorage` calls :attr:`HookedStorage.on_save` (set by a test)
  in the middle of each write, after half the bytes are on disk, then goes on,
  and :attr:`HookedStorage.on_open` before an object's path is looked up
  (as each read of local disk starts): moments at which
  another process acts while a copy is in flight;
- :class:`SlowStorage` sleeps ``MIGRATE_SLOW_SAVE`` seconds (an environment
  variable) in the middle of each write: a copy a test kills or interrupts
  in flight, in a subprocess.

Both are local disk (``FileSystemStorage``) underneath, so the store adapter
is the one local disk gets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from django.core.files import File
from django.core.files.storage import FileSystemStorage


class _Flipping:
    """A read-only stream over ``raw`` that hands out its first byte inverted."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._first = True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if self._first and data:
            self._first = False
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data


class CorruptingStorage(FileSystemStorage):
    """Local disk whose writes store other bytes than they were given (the first byte flipped)."""

    def _save(self, name: str, content: Any) -> str:
        return super()._save(name, File(_Flipping(content)))


class _Halfway:
    """A read-only stream over ``raw`` that calls ``hook(name)`` once, when half of ``size`` bytes are read."""

    def __init__(self, raw: Any, size: int, name: str, hook: Callable[[str], None]) -> None:
        self._raw, self._size, self._name, self._hook = raw, size, name, hook
        self._read = 0
        self._called = False

    def read(self, size: int = -1) -> bytes:
        if not self._called and self._read >= self._size // 2:
            self._called = True
            self._hook(self._name)
        want = size
        if not self._called:
            half = max(1, self._size // 2 - self._read)
            want = half if size is None or size < 0 else min(size, half)
        data = self._raw.read(want)
        self._read += len(data)
        return data


class HookedStorage(FileSystemStorage):
    """Local disk that calls ``on_save(name)`` half way through each write, then finishes it."""

    #: Called with the object's name half way through each write; None: a plain disk.
    on_save: Callable[[str], None] | None = None
    #: Called with an object's name before its path is looked up (each read, but also each write, stat and
    #: delete, of which the hook may be one: it guards against running again itself); None: a plain disk.
    on_open: Callable[[str], None] | None = None

    def path(self, name: str) -> str:
        hook = type(self).on_open
        if hook is not None:
            hook(name)
        return super().path(name)

    def _save(self, name: str, content: Any) -> str:
        hook = type(self).on_save
        if hook is None:
            return super()._save(name, content)
        size = getattr(content, "size", None) or 0
        return super()._save(name, File(_Halfway(content, size, name, hook)))


class SlowStorage(HookedStorage):
    """Local disk that sleeps ``MIGRATE_SLOW_SAVE`` seconds (0 if unset) half way through each write."""

    def _save(self, name: str, content: Any) -> str:
        delay = float(os.environ.get("MIGRATE_SLOW_SAVE") or 0)
        if not delay:
            return super()._save(name, content)
        size = getattr(content, "size", None) or 0
        return FileSystemStorage._save(self, name, File(_Halfway(content, size, name, lambda _: time.sleep(delay))))
