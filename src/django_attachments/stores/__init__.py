"""Store adapters: one per storage family, looked up by ``STORAGES`` alias.

::

    from django_attachments.stores import get_store

    store = get_store("default")          # FileSystemStore, S3Store, ...
    identifiers = store.save(file, size=..., checksum=..., content_type=...)
    with store.open(identifiers) as stream:
        for chunk in stream.chunks():
            ...

The adapter is chosen from the storage's class: ``FileSystemStorage`` ->
:class:`FileSystemStore`, django-storages' ``S3Storage`` -> :class:`S3Store`
(only imported when boto3 is installed), anything else ->
:class:`StorageAPIStore`, which uses the public ``Storage`` API only.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.files.storage import FileSystemStorage, InvalidStorageError, storages
from django.core.signals import setting_changed

from ..exceptions import AttachmentsImproperlyConfigured
from .base import BaseStore, DeleteFailure, Identifiers, RangeReader, StoredObject
from .storage_api import FileSystemStore, StorageAPIStore

__all__ = [
    "BaseStore",
    "DeleteFailure",
    "FileSystemStore",
    "Identifiers",
    "RangeReader",
    "StorageAPIStore",
    "StoredObject",
    "get_store",
]

_stores: dict[str, BaseStore] = {}
_lock = threading.Lock()


def _adapter_for(storage: Any) -> type[BaseStore]:
    if isinstance(storage, FileSystemStorage):
        return FileSystemStore
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # boto3 not installed: no S3 storage can be configured either
        S3Storage = None  # noqa: N806
    if S3Storage is not None and isinstance(storage, S3Storage):
        from .s3 import S3Store

        return S3Store
    return StorageAPIStore


def get_store(alias: str) -> BaseStore:
    """The store adapter for ``settings.STORAGES[alias]``."""
    try:
        return _stores[alias]
    except KeyError:
        pass
    with _lock:
        if alias not in _stores:
            try:
                storage = storages[alias]
            except InvalidStorageError as exc:
                raise AttachmentsImproperlyConfigured(
                    f"Storage alias {alias!r} is not defined in settings.STORAGES "
                    f"(defined: {', '.join(sorted(storages.backends)) or 'none'})."
                ) from exc
            _stores[alias] = _adapter_for(storage)(alias, storage)
        return _stores[alias]


def _reset(*, setting: str, **kwargs: Any) -> None:
    # Django drops its storage instances on these; drop the adapters that wrap them.
    if setting in {"STORAGES", "MEDIA_ROOT", "MEDIA_URL", "DJANGO_ATTACHMENTS"} or setting.startswith("AWS_"):
        with _lock:
            _stores.clear()


setting_changed.connect(_reset)
