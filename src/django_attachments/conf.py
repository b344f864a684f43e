"""Settings for django_attachments, read from one namespaced dict.

Projects configure the app through ``settings.DJANGO_ATTACHMENTS``; every key
is optional and falls back to :data:`DEFAULTS`::

    DJANGO_ATTACHMENTS = {
        "STORAGE": "attachments",          # an alias of settings.STORAGES
        "MAX_UPLOAD_SIZE": 50 * 1024 * 1024,
        "ALLOWED_CONTENT_TYPES": ["image/*", "application/pdf"],
        "TENANT_RESOLVER": "clinics.tenancy.clinic_for_request",
        "ADMIN_CROSS_TENANT": "django_attachments.policy.is_superuser",
    }

Code reads values through the lazy :data:`app_settings` object::

    from django_attachments.conf import app_settings
    app_settings.MAX_UPLOAD_SIZE

Values are validated when first read and cached; the cache is dropped on
Django's ``setting_changed`` signal, so ``override_settings`` works in tests.
A wrong value raises ``ImproperlyConfigured`` naming the exact key to fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .exceptions import AttachmentsImproperlyConfigured

SETTINGS_NAME = "DJANGO_ATTACHMENTS"

DEFAULTS: dict[str, Any] = {
    # Alias in settings.STORAGES that receives new uploads. Blobs remember the
    # alias they were written to, so changing this leaves old files readable.
    "STORAGE": "default",
    # Aliases of settings.STORAGES that every new blob and variant is also
    # copied to, after its storage, each copy verified; reads fall back to them.
    "MIRRORS": [],
    # Every object the app writes lives under this prefix of its storage.
    "KEY_PREFIX": "attachments/",
    # Bytes; None disables the global limit (owner types may still set one).
    "MAX_UPLOAD_SIZE": 100 * 1024 * 1024,
    # Sniffed MIME types that may be stored: exact ("application/pdf") or a
    # family ("image/*"). None accepts any type.
    "ALLOWED_CONTENT_TYPES": None,
    # Whether zero-byte files may be attached.
    "ALLOW_EMPTY_FILES": True,
    # How long an unreferenced blob or stray object is kept before a purge may
    # remove it. A timedelta or a number of seconds.
    "ORPHAN_GRACE_PERIOD": timedelta(hours=24),
    # Lifetime of signed download URLs. A timedelta or a number of seconds.
    "URL_EXPIRY": timedelta(minutes=5),
    # Lifetime of a direct-upload ticket and of the URL it hands out: the
    # client must start sending the bytes, and complete the upload, before it
    # ends. A timedelta or a number of seconds.
    "UPLOAD_EXPIRY": timedelta(hours=1),
    # Direct uploads larger than this many bytes are multipart: sent in parts,
    # each signed with its own length and SHA-256, resumable.
    "MULTIPART_THRESHOLD": 64 * 1024 * 1024,
    # Bytes of each part of a multipart direct upload (5 MiB to 5 GiB); raised
    # for a file that would otherwise need more than 10,000 parts.
    "MULTIPART_PART_SIZE": 16 * 1024 * 1024,
    # Dotted path to a callable ``request -> str | None`` naming the caller's
    # tenant, for the API and the admin. None means single-tenant: every owner
    # is visible.
    "TENANT_RESOLVER": None,
    # Dotted path to a callable ``request -> bool``: whether this admin user
    # acts across tenants (sees and changes every tenant's files in the admin).
    # None: nobody, superusers included. The API has no such mode.
    # "django_attachments.policy.is_superuser" lets active superusers.
    "ADMIN_CROSS_TENANT": None,
    # Size of the chunks every byte path reads and writes.
    "CHUNK_SIZE": 1024 * 1024,
    # Whether an API upload larger than the store's threshold (S3: its
    # multipart_threshold) goes on to a store that can take it in parts (S3)
    # while the request body still arrives. A file refused, or whose bytes a
    # blob holds already, is aborted there: nothing is kept, but its bytes
    # were sent. False: spooled to a temporary file first, then written.
    "STREAM_UPLOADS": True,
    # How many leading bytes libmagic sees to sniff the content type.
    "SNIFF_BYTES": 256 * 1024,
    # Longest filename kept, in characters; longer names are shortened, keeping
    # their extension.
    "MAX_FILENAME_LENGTH": 255,
    # --- the REST API ---
    # DRF permission classes of the API views (classes or dotted paths).
    "PERMISSION_CLASSES": ("rest_framework.permissions.IsAuthenticated",),
    # "proxy": stream downloads through Django; "redirect": 302 to a signed
    # storage URL where the storage can sign one (else proxy).
    "DOWNLOAD_MODE": "proxy",
    # Attachments per page of the list endpoint, and the most a client may ask
    # for with ?page_size=.
    "PAGE_SIZE": 50,
    "MAX_PAGE_SIZE": 500,
    # --- stores ---
    # Per storage alias, the tunables of its store: {alias: {option: value}}.
    # Each store class declares the options it takes and their defaults
    # (S3: multipart_threshold, part_size, max_parts_in_flight); they are
    # checked against it when the store is first used, and by manage.py check.
    "STORE_OPTIONS": {},
    # --- processing after the bytes land (services.processing, on Django's Tasks framework) ---
    # The malware scanner: None (blobs are "not_scanned" and served), or
    # {"BACKEND": "django_attachments.processing.scanners.ClamdScanner",
    #  "OPTIONS": {"socket": "/run/clamav/clamd.ctl"}} (or the dotted path alone).
    "SCANNER": None,
    # Whether a blob the scanner has not passed yet (pending, or failed and
    # being retried) may be downloaded. False: only clean files are served.
    "SERVE_PENDING_SCANS": False,
    # A scan that could not run is retried this many times in all, the first
    # retry after SCAN_RETRY_DELAY, each next one after twice the last (where
    # the task backend can defer tasks; else by manage.py process_attachments).
    "SCAN_MAX_ATTEMPTS": 5,
    "SCAN_RETRY_DELAY": timedelta(minutes=1),
    # The metadata analyzers: None for every built-in whose library is
    # installed, or a list of dotted paths / {"BACKEND": path, "OPTIONS": {...}}.
    "ANALYZERS": None,
    # Named variants (thumbnails, previews) of every blob a renderer reads:
    # {"thumb": {"operation": "fit", "width": 256, "height": 256, "format": "webp", "eager": True}}.
    # An owner type adds or overrides names with OwnerSpec(variants=...).
    "VARIANTS": {},
    # The renderers that make them: None for every built-in whose library or
    # program is installed, or a list of dotted paths / {"BACKEND": path, "OPTIONS": {...}}.
    "RENDERERS": None,
    # The alias in settings.TASKS, and the queue, the pipeline's tasks go to.
    "TASK_BACKEND": "default",
    "TASK_QUEUE": "default",
}

#: The analyzers ANALYZERS = None stands for, each used where its library is installed.
BUILTIN_ANALYZERS = (
    "django_attachments.processing.analyzers.ImageAnalyzer",
    "django_attachments.processing.analyzers.PdfAnalyzer",
    "django_attachments.processing.analyzers.MediaAnalyzer",  # where ffprobe is installed
    "django_attachments.processing.analyzers.DicomAnalyzer",  # with the dicom extra
)


def _positive_int(name: str, value: Any, *, allow_none: bool = False, minimum: int = 1) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise AttachmentsImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}] must be {expected}, not {value!r}.")
    return value


#: The bounds S3 sets on a part of a multipart upload (all but the last are at least the minimum).
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024**3

#: The most scan attempts SCAN_MAX_ATTEMPTS may allow (retries wait at most a day each; enough for months).
MAX_SCAN_ATTEMPTS = 100


def _bounded_int(name: str, value: Any, minimum: int, maximum: int) -> int:
    value = _positive_int(name, value, minimum=minimum)
    if value > maximum:
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be an integer from {minimum} to {maximum}, not {value!r}."
        )
    return int(value)


def _duration(name: str, value: Any) -> timedelta:
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        try:
            result = timedelta(seconds=value)
        except OverflowError:
            raise AttachmentsImproperlyConfigured(
                f"{SETTINGS_NAME}[{name!r}] is too long a duration: {value!r} seconds."
            ) from None
    else:
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be a timedelta or a number of seconds, not {value!r}."
        )
    if result < timedelta(0):
        raise AttachmentsImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}] must not be negative, not {value!r}.")
    return result


def _non_empty_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AttachmentsImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}] must be a non-empty string, not {value!r}.")
    return value


def _aliases(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be a list of storage aliases, not {value!r}."
        )
    for alias in value:
        _non_empty_str(name, alias)
    if len(set(value)) != len(value):
        raise AttachmentsImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}] names an alias twice: {value!r}.")
    return tuple(value)


def _key_prefix(name: str, value: Any) -> str:
    value = _non_empty_str(name, value)
    if value.startswith("/") or ".." in value.split("/") or "\\" in value:
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be a relative path such as 'attachments/', not {value!r}."
        )
    return value.rstrip("/") + "/"


def _content_types(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) and "/" in v for v in value):
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be None or a list of MIME types such as "
            f"['image/*', 'application/pdf'], not {value!r}."
        )
    return tuple(v.strip().lower() for v in value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise AttachmentsImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}] must be True or False, not {value!r}.")
    return value


def _callable_path(name: str, value: Any) -> Callable[..., Any] | None:
    if value is None:
        return None
    if callable(value):
        return value
    if not isinstance(value, str):
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be a dotted path to a callable, not {value!r}."
        )
    try:
        resolved = import_string(value)
    except ImportError as exc:
        raise AttachmentsImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}] could not import {value!r}: {exc}") from exc
    if not callable(resolved):
        raise AttachmentsImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}] = {value!r} is not callable.")
    return resolved


def _class_list(name: str, value: Any) -> tuple[type, ...]:
    if isinstance(value, (str, type)) or not isinstance(value, (list, tuple)):
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be a list of classes or dotted paths, not {value!r}."
        )
    classes = []
    for item in value:
        if isinstance(item, str):
            try:
                item = import_string(item)
            except ImportError as exc:
                raise AttachmentsImproperlyConfigured(
                    f"{SETTINGS_NAME}[{name!r}] could not import {item!r}: {exc}"
                ) from exc
        if not isinstance(item, type):
            raise AttachmentsImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}] holds {item!r}, which is not a class.")
        classes.append(item)
    return tuple(classes)


def _store_options(name: str, value: Any) -> dict[str, dict[str, Any]]:
    """The shape only: which options a store takes, and their values, only its class knows (stores/)."""
    if not isinstance(value, dict):
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be a dict of storage alias -> dict of options, not {value!r}."
        )
    for alias, options in value.items():
        if not isinstance(alias, str) or not isinstance(options, dict):
            raise AttachmentsImproperlyConfigured(
                f"{SETTINGS_NAME}[{name!r}][{alias!r}] must be a dict of option name -> value "
                f"under a storage alias, not {options!r}."
            )
        for option in options:
            if not isinstance(option, str):
                raise AttachmentsImproperlyConfigured(
                    f"{SETTINGS_NAME}[{name!r}][{alias!r}] has an option name that is not a string: {option!r}."
                )
    return {alias: dict(options) for alias, options in value.items()}


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def validate(name: str, value: Any) -> str:
        if value not in choices:
            raise AttachmentsImproperlyConfigured(
                f"{SETTINGS_NAME}[{name!r}] must be one of {', '.join(map(repr, choices))}, not {value!r}."
            )
        return value

    return validate


def _component(name: str, value: Any, *, where: str, base: str) -> Any:
    """A scanner or analyzer named by a dotted path, or by {"BACKEND": path, "OPTIONS": {...}}, built."""
    if isinstance(value, str):
        path, options = value, {}
    elif isinstance(value, dict) and isinstance(value.get("BACKEND"), str) and set(value) <= {"BACKEND", "OPTIONS"}:
        path, options = value["BACKEND"], value.get("OPTIONS", {})
    else:
        raise AttachmentsImproperlyConfigured(
            f"{where} must be a dotted path or a dict {{'BACKEND': dotted path, 'OPTIONS': {{...}}}}, not {value!r}."
        )
    if not isinstance(options, dict):
        raise AttachmentsImproperlyConfigured(f"{where}['OPTIONS'] must be a dict, not {options!r}.")
    try:
        cls = import_string(path)
    except (ImportError, ValueError) as exc:
        raise AttachmentsImproperlyConfigured(f"{where} could not import {path!r}: {exc}") from exc
    from .processing.analyzers import Analyzer
    from .processing.renderers import Renderer
    from .processing.scanners import Scanner

    expected: type = {"scanner": Scanner, "analyzer": Analyzer, "renderer": Renderer}[base]
    if not (isinstance(cls, type) and issubclass(cls, expected)):
        raise AttachmentsImproperlyConfigured(f"{where} = {path!r} is not a subclass of {expected.__qualname__}.")
    if issubclass(cls, Scanner):
        return cls.from_options(options, where=f"{where}['OPTIONS']")
    try:
        return cls(**options)
    except (TypeError, ValueError, OverflowError) as exc:  # an unknown option, or a value out of range
        raise AttachmentsImproperlyConfigured(f"{where}['OPTIONS'] does not fit {cls.__name__}: {exc}") from exc


def _scanner(name: str, value: Any) -> Any:
    if value is None:
        return None
    return _component(name, value, where=f"{SETTINGS_NAME}[{name!r}]", base="scanner")


def _analyzers(name: str, value: Any) -> tuple[Any, ...]:
    if value is None:
        built = (
            _component(name, path, where=f"{SETTINGS_NAME}[{name!r}]", base="analyzer") for path in BUILTIN_ANALYZERS
        )
        return tuple(analyzer for analyzer in built if analyzer.unavailable_reason() is None)
    if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be None or a list of analyzers (dotted paths or "
            f"{{'BACKEND': ..., 'OPTIONS': ...}} dicts), not {value!r}."
        )
    analyzers = tuple(
        _component(name, item, where=f"{SETTINGS_NAME}[{name!r}][{index}]", base="analyzer")
        for index, item in enumerate(value)
    )
    names = [analyzer.name for analyzer in analyzers]
    if len(set(names)) != len(names):
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] lists two analyzers of one name ({names}); each keeps its own metadata keys."
        )
    return analyzers


def _renderers(name: str, value: Any) -> tuple[Any, ...]:
    from .processing.renderers import BUILTIN_RENDERERS

    where = f"{SETTINGS_NAME}[{name!r}]"
    if value is None:
        built = (_component(name, path, where=where, base="renderer") for path in BUILTIN_RENDERERS)
        return tuple(renderer for renderer in built if renderer.unavailable_reason() is None)
    if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
        raise AttachmentsImproperlyConfigured(
            f"{where} must be None or a list of renderers (dotted paths or "
            f"{{'BACKEND': ..., 'OPTIONS': ...}} dicts), not {value!r}."
        )
    return tuple(_component(name, item, where=f"{where}[{index}]", base="renderer") for index, item in enumerate(value))


def _variants(name: str, value: Any) -> dict[str, Any]:
    from .processing.renderers import VariantSpec

    if not isinstance(value, dict):
        raise AttachmentsImproperlyConfigured(
            f"{SETTINGS_NAME}[{name!r}] must be a dict of variant name -> spec, not {value!r}."
        )
    specs = {}
    for variant, spec in value.items():
        try:
            specs[variant] = VariantSpec.from_value(variant, spec)
        except (TypeError, ValueError) as exc:
            raise AttachmentsImproperlyConfigured(f"{SETTINGS_NAME}[{name!r}][{variant!r}]: {exc}") from exc
    return specs


VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "STORAGE": _non_empty_str,
    "MIRRORS": _aliases,
    "KEY_PREFIX": _key_prefix,
    "MAX_UPLOAD_SIZE": lambda n, v: _positive_int(n, v, allow_none=True, minimum=0),
    "ALLOWED_CONTENT_TYPES": _content_types,
    "ALLOW_EMPTY_FILES": _bool,
    "ORPHAN_GRACE_PERIOD": _duration,
    "URL_EXPIRY": _duration,
    "UPLOAD_EXPIRY": _duration,
    "MULTIPART_THRESHOLD": lambda n, v: _bounded_int(n, v, MIN_PART_SIZE, MAX_PART_SIZE),
    "MULTIPART_PART_SIZE": lambda n, v: _bounded_int(n, v, MIN_PART_SIZE, MAX_PART_SIZE),
    "TENANT_RESOLVER": _callable_path,
    "ADMIN_CROSS_TENANT": _callable_path,
    "STREAM_UPLOADS": _bool,
    "CHUNK_SIZE": lambda n, v: _positive_int(n, v, minimum=4096),
    "SNIFF_BYTES": lambda n, v: _positive_int(n, v, minimum=1024),
    "MAX_FILENAME_LENGTH": lambda n, v: _positive_int(n, v, minimum=16),
    "PERMISSION_CLASSES": _class_list,
    "DOWNLOAD_MODE": _choice("proxy", "redirect"),
    "PAGE_SIZE": lambda n, v: _positive_int(n, v),
    "MAX_PAGE_SIZE": lambda n, v: _positive_int(n, v),
    "STORE_OPTIONS": _store_options,
    "SCANNER": _scanner,
    "SERVE_PENDING_SCANS": _bool,
    "SCAN_MAX_ATTEMPTS": lambda n, v: _bounded_int(n, v, 1, MAX_SCAN_ATTEMPTS),
    "SCAN_RETRY_DELAY": _duration,
    "ANALYZERS": _analyzers,
    "VARIANTS": _variants,
    "RENDERERS": _renderers,
    "TASK_BACKEND": _non_empty_str,
    "TASK_QUEUE": _non_empty_str,
}
assert VALIDATORS.keys() == DEFAULTS.keys()  # a new setting needs both entries


class AppSettings:
    """Lazy, validated, cached view of ``settings.DJANGO_ATTACHMENTS``."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}
        self._checked_keys = False

    def _user_settings(self) -> dict[str, Any]:
        user = getattr(settings, SETTINGS_NAME, None) or {}
        if not isinstance(user, dict):
            raise AttachmentsImproperlyConfigured(
                f"settings.{SETTINGS_NAME} must be a dict, not {type(user).__name__}."
            )
        if not self._checked_keys:
            unknown = sorted(set(user) - set(DEFAULTS))
            if unknown:
                raise AttachmentsImproperlyConfigured(
                    f"settings.{SETTINGS_NAME} has unknown key(s) {', '.join(map(repr, unknown))}; "
                    f"valid keys are: {', '.join(sorted(DEFAULTS))}."
                )
            self._checked_keys = True
        return user

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid {SETTINGS_NAME} setting: {name!r}")
        try:
            return self._cache[name]
        except KeyError:
            pass
        raw = self._user_settings().get(name, DEFAULTS[name])
        value = VALIDATORS[name](name, raw)
        self._cache[name] = value
        return value

    def errors(self) -> list[AttachmentsImproperlyConfigured]:
        """Every wrong setting (or the unknown keys), each as the error reading it would raise."""
        try:
            self._user_settings()
        except AttachmentsImproperlyConfigured as exc:
            return [exc]
        found = []
        for name in DEFAULTS:
            try:
                getattr(self, name)
            except AttachmentsImproperlyConfigured as exc:
                found.append(exc)
        return found

    def reload(self) -> None:
        self._cache.clear()
        self._checked_keys = False


app_settings = AppSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        app_settings.reload()


setting_changed.connect(_reload)
