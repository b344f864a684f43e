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
:func:`register_adapter` adds or overrides an adapter for a storage class.

Each store gets the options ``DJANGO_ATTACHMENTS["STORE_OPTIONS"][alias]``
sets for its alias (the S3 store's part sizes, ...), checked against the
options its class declares (``options_class``).
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, InvalidStorageError, storages
from django.core.signals import setting_changed

from ..conf import app_settings
from ..exceptions import AttachmentsImproperlyConfigured
from .base import (
    BaseStore,
    DeleteFailure,
    Identifiers,
    IncompleteUpload,
    ObjectStat,
    RangeReader,
    SeekableReader,
    StoredObject,
    StoreOptions,
    StreamedWrite,
    UploadedPart,
    UploadTarget,
    composite_of,
)
from .storage_api import FileSystemStore, StorageAPIStore

__all__ = [
    "BaseStore",
    "DeleteFailure",
    "FileSystemStore",
    "Identifiers",
    "IncompleteUpload",
    "ObjectStat",
    "RangeReader",
    "SeekableReader",
    "StorageAPIStore",
    "StoreOptions",
    "StoredObject",
    "StreamedWrite",
    "UploadTarget",
    "UploadedPart",
    "composite_of",
    "get_store",
    "register_adapter",
    "store_class_for",
    "unregister_adapter",
]

_stores: dict[str, BaseStore] = {}
_lock = threading.Lock()
#: Storage class -> store adapter class; looked up along the storage's MRO.
_adapters: dict[type, type[BaseStore]] = {FileSystemStorage: FileSystemStore}


def register_adapter(storage_class: type, store_class: type[BaseStore]) -> None:
    """Use ``store_class`` for storages of ``storage_class`` (and its subclasses).

    For storages the built-in adapters do not know, or to wrap one (tests inject
    faults this way). A second registration for the same storage class is refused.
    """
    if not (isinstance(store_class, type) and issubclass(store_class, BaseStore)):
        raise TypeError(f"{store_class!r} is not a BaseStore subclass.")
    with _lock:
        if storage_class in _adapters:
            raise ValueError(
                f"{storage_class.__qualname__} already uses {_adapters[storage_class].__qualname__}; "
                "unregister_adapter() it first."
            )
        _adapters[storage_class] = store_class
        _stores.clear()


def unregister_adapter(storage_class: type) -> None:
    with _lock:
        _adapters.pop(storage_class, None)
        _stores.clear()


def store_class_for(storage_class: type) -> type[BaseStore]:
    """The store adapter class :func:`get_store` uses for storages of ``storage_class``."""
    _register_s3()
    for klass in storage_class.__mro__:
        if klass in _adapters:
            return _adapters[klass]
    return StorageAPIStore


def _register_s3() -> None:
    """The S3 adapter, registered on first use: only where boto3 and django-storages' S3 backend import."""
    global _s3_checked
    if _s3_checked:
        return
    _s3_checked = True
    try:
        from storages.backends.s3 import S3Storage

        from .s3 import S3Store
    except (ImportError, ImproperlyConfigured):
        # django-storages without boto3 raises ImproperlyConfigured: no S3 storage can be configured either.
        return
    _adapters.setdefault(S3Storage, S3Store)


_s3_checked = False


def get_store(alias: str) -> BaseStore:
    """The store adapter for ``settings.STORAGES[alias]``, with its ``STORE_OPTIONS[alias]``.

    A wrong option raises :class:`~django_attachments.exceptions.AttachmentsImproperlyConfigured`
    naming the exact key.
    """
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
            store_class = store_class_for(type(storage))
            options = store_class.parse_options(alias, app_settings.STORE_OPTIONS.get(alias, {}))
            _stores[alias] = store_class(alias, storage, options=options)
        return _stores[alias]


def _reset(*, setting: str, **kwargs: Any) -> None:
    # Django drops its storage instances on these; drop the adapters that wrap them.
    if setting in {"STORAGES", "MEDIA_ROOT", "MEDIA_URL", "DJANGO_ATTACHMENTS"} or setting.startswith("AWS_"):
        with _lock:
            _stores.clear()


setting_changed.connect(_reset)
