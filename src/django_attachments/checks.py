"""System checks, run by ``manage.py check`` and at server start.

Ids are stable; a retired id stays reserved and is never reused.

- ``django_attachments.E001``: a setting in ``DJANGO_ATTACHMENTS`` is wrong.
- ``django_attachments.E002``: ``DJANGO_ATTACHMENTS["STORAGE"]`` is not an alias of ``STORAGES``.
- ``django_attachments.E003``: libmagic cannot be loaded, so content types cannot be sniffed.
- ``django_attachments.E004``: ``DJANGO_ATTACHMENTS["STORE_OPTIONS"]`` sets options for an alias
  that is not in ``STORAGES`` (a wrong option of a defined alias is an ``E001``).
- ``django_attachments.W002``: blobs reference a storage alias that is not in ``STORAGES``
  (only checked with ``--database``; a warning, so that it never blocks ``migrate``).
- ``django_attachments.E006``: ``DJANGO_ATTACHMENTS["MIRRORS"]`` names an alias that is not in
  ``STORAGES``, or the ``STORAGE`` alias itself.
- ``django_attachments.W001``: uploads go to local disk at a relative (or empty) location.
- ``django_attachments.W003``: ``ADMIN_CROSS_TENANT`` is set without ``TENANT_RESOLVER``, where it does nothing.
- ``django_attachments.E005``: ``TASK_BACKEND`` is not an alias of ``settings.TASKS``, or that backend
  refuses the pipeline's task (its queue, say).
- ``django_attachments.W004``: an analyzer listed in ``ANALYZERS`` cannot run here (its library or
  program is missing); it is skipped.
- ``django_attachments.W005``: the scanner does not answer (only with ``--deploy``: it asks the daemon).
- ``django_attachments.W006``: a renderer listed in ``RENDERERS`` cannot run here (its library or
  program is missing); it is skipped.
- ``django_attachments.W007``: variants are declared that cannot be made here: no renderer can run,
  or Pillow (which encodes every variant) is missing or cannot write the variant's format.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core import checks

from .conf import SETTINGS_NAME, app_settings
from .exceptions import AttachmentsImproperlyConfigured

TAG = "django_attachments"


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    app_settings.reload()
    errors: list[checks.CheckMessage] = [
        checks.Error(
            str(exc), hint="See the settings reference in the django_attachments docs.", id="django_attachments.E001"
        )
        for exc in app_settings.errors()
    ]
    if errors:
        return errors
    alias = app_settings.STORAGE
    defined = getattr(settings, "STORAGES", {}) or {}
    if alias not in defined:
        candidates = sorted(name for name in defined if name != "staticfiles")
        return [
            checks.Error(
                f"DJANGO_ATTACHMENTS['STORAGE'] is {alias!r}, which is not an alias of settings.STORAGES.",
                hint=f"Add {alias!r} to STORAGES"
                + (f", or use one of: {', '.join(candidates)}." if candidates else "."),
                id="django_attachments.E002",
            ),
            *_check_store_options(defined),
        ]
    return [
        *_check_store_options(defined),
        *_check_mirrors(alias, defined),
        *_check_cross_tenant(),
        *_check_local_location(alias, defined[alias]),
        *_check_analyzers(),
        *_check_renderers(),
        *_check_variant_formats(),
    ]


def _check_mirrors(primary: str, defined: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for alias in app_settings.MIRRORS:
        if alias == primary:
            problem = "is DJANGO_ATTACHMENTS['STORAGE'] itself: a copy in the same storage is no copy"
            hint = "Name another storage."
        elif alias in defined:
            continue
        else:
            problem = "is not an alias of settings.STORAGES"
            hint = f"Add {alias!r} to STORAGES, or remove it from MIRRORS."
        errors.append(
            checks.Error(
                f"DJANGO_ATTACHMENTS['MIRRORS'] names {alias!r}, which {problem}.",
                hint=hint,
                id="django_attachments.E006",
            )
        )
    return errors


def _check_analyzers() -> list[checks.CheckMessage]:
    return _check_listed("ANALYZERS", "analyzer", app_settings.ANALYZERS, "django_attachments.W004")


def _check_renderers() -> list[checks.CheckMessage]:
    return _check_listed("RENDERERS", "renderer", app_settings.RENDERERS, "django_attachments.W006")


def _check_listed(setting: str, kind: str, components: Any, check_id: str) -> list[checks.CheckMessage]:
    """A warning for each component listed in ``setting`` that cannot run here (its library missing)."""
    if (getattr(settings, SETTINGS_NAME, None) or {}).get(setting) is None:
        return []  # the default takes the built-ins that can run, silently
    return [
        checks.Warning(
            f"The {kind} {component!r} in DJANGO_ATTACHMENTS[{setting!r}] cannot run here: {reason}",
            hint=f"It is skipped; install what it needs, or remove it from {setting}.",
            id=check_id,
        )
        for component in components
        if (reason := component.unavailable_reason()) is not None
    ]


def _check_variant_formats() -> list[checks.CheckMessage]:
    from .registry import attachment_registry

    declared = dict(app_settings.VARIANTS)
    for spec in attachment_registry:
        declared.update({f"{spec.owner_type}:{name}": value for name, value in (spec.variants or {}).items() if value})
    if not declared:
        return []
    hint = "Install Pillow (with WebP support for WebP variants) and the renderers' libraries, or drop the variants."
    if not any(renderer.unavailable_reason() is None for renderer in app_settings.RENDERERS):
        return [
            checks.Warning(
                f"Variants are declared ({', '.join(sorted(declared))}) but no renderer can run here.",
                hint=hint,
                id="django_attachments.W007",
            )
        ]
    try:
        from PIL import features
    except ImportError:
        return [
            checks.Warning(
                "Variants are declared but Pillow is not installed.", hint=hint, id="django_attachments.W007"
            )
        ]
    unwritable = sorted(name for name, spec in declared.items() if spec.format == "webp" and not features.check("webp"))
    return (
        [
            checks.Warning(
                f"The variant(s) {', '.join(unwritable)} are WebP, which the installed Pillow cannot write.",
                hint=hint,
                id="django_attachments.W007",
            )
        ]
        if unwritable
        else []
    )


def check_tasks(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The pipeline's task must be accepted by the backend and queue the settings name."""
    if app_settings.errors():
        return []  # E001 says it
    try:
        from .tasks import process_blob

        process_blob.using(backend=app_settings.TASK_BACKEND, queue_name=app_settings.TASK_QUEUE)
    except Exception as exc:
        return [
            checks.Error(
                f"The processing pipeline's task cannot go to TASK_BACKEND {app_settings.TASK_BACKEND!r}, "
                f"queue {app_settings.TASK_QUEUE!r}: {exc}",
                hint="Name an alias of settings.TASKS (and a queue its QUEUES allow) in "
                "DJANGO_ATTACHMENTS['TASK_BACKEND'] / ['TASK_QUEUE'].",
                id="django_attachments.E005",
            )
        ]
    return []


def check_scanner(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """With ``--deploy``: the configured scanner answers now (a stopped daemon would leave every scan failing)."""
    if app_settings.errors() or app_settings.SCANNER is None:
        return []
    from .processing.scanners import ScanError

    try:
        app_settings.SCANNER.ping()
    except ScanError as exc:
        return [
            checks.Warning(
                f"The malware scanner does not answer: {exc}",
                hint="Uploads are stored, but their scans fail (and are retried) until it does; "
                "downloads of them wait (SERVE_PENDING_SCANS).",
                id="django_attachments.W005",
            )
        ]
    return []


def _check_store_options(defined: dict[str, Any]) -> list[checks.CheckMessage]:
    """Options for an alias no storage has would silently do nothing; those of the others are
    checked against their store's class here, not only when the store is first used."""
    from django.utils.module_loading import import_string

    from .stores import store_class_for

    messages: list[checks.CheckMessage] = []
    for alias, options in app_settings.STORE_OPTIONS.items():
        if alias not in defined:
            messages.append(
                checks.Error(
                    f"DJANGO_ATTACHMENTS['STORE_OPTIONS'] sets options for {alias!r}, "
                    "which is not an alias of settings.STORAGES.",
                    hint=f"Use one of: {', '.join(sorted(defined))}." if defined else "Define STORAGES.",
                    id="django_attachments.E004",
                )
            )
            continue
        try:
            backend = import_string(defined[alias].get("BACKEND", ""))
        except ImportError:
            continue  # Django reports it when the storage is first used
        if not isinstance(backend, type):
            continue
        try:
            store_class_for(backend).parse_options(alias, options)
        except AttachmentsImproperlyConfigured as exc:
            messages.append(
                checks.Error(
                    str(exc),
                    hint="See the store options in the django_attachments docs.",
                    id="django_attachments.E001",
                )
            )
    return messages


def _check_cross_tenant() -> list[checks.CheckMessage]:
    """Naming who may cross tenants in a single-tenant project is a sign the tenancy is not wired up."""
    if app_settings.ADMIN_CROSS_TENANT is None or app_settings.TENANT_RESOLVER is not None:
        return []
    return [
        checks.Warning(
            "DJANGO_ATTACHMENTS['ADMIN_CROSS_TENANT'] is set, but without a TENANT_RESOLVER the project is "
            "single-tenant and every admin user with the model permissions sees every file.",
            hint="Set DJANGO_ATTACHMENTS['TENANT_RESOLVER'], or remove ADMIN_CROSS_TENANT.",
            id="django_attachments.W003",
        )
    ]


def _check_local_location(alias: str, config: dict[str, Any]) -> list[checks.CheckMessage]:
    """A local-disk storage without an absolute location writes wherever the process happens to run."""
    from django.core.files.storage import FileSystemStorage
    from django.utils.module_loading import import_string

    try:
        backend = import_string(config.get("BACKEND", ""))
    except ImportError:
        return []
    if not (isinstance(backend, type) and issubclass(backend, FileSystemStorage)):
        return []
    location = (config.get("OPTIONS") or {}).get("location") or settings.MEDIA_ROOT
    if location and os.path.isabs(str(location)):
        return []
    return [
        checks.Warning(
            f"Storage {alias!r} keeps attachments on local disk at {str(location)!r}, relative to the "
            "directory the process starts in: files written by one process may be missing for another.",
            hint="Set MEDIA_ROOT (or the storage's OPTIONS['location']) to an absolute path.",
            id="django_attachments.W001",
        )
    ]


def check_libmagic(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .ingest import sniff

    try:
        sniff(b"%PDF-1.4\n")
    except Exception as exc:
        return [
            checks.Error(
                f"libmagic could not be loaded: {exc}",
                hint="Install libmagic (Debian/Ubuntu: apt-get install libmagic1; macOS: brew install libmagic).",
                id="django_attachments.E003",
            )
        ]
    return []


def check_blob_storages(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not databases:
        return []
    from django.db import DatabaseError

    from .models import Blob

    defined = set(getattr(settings, "STORAGES", {}) or {})
    errors: list[checks.CheckMessage] = []
    for alias in databases:
        try:
            used = set(Blob.objects.using(alias).values_list("storage", flat=True).distinct())
        except DatabaseError:
            continue  # not migrated yet
        for missing in sorted(used - defined):
            errors.append(
                checks.Warning(
                    f"Blobs in database {alias!r} are stored in storage {missing!r}, "
                    "which is not in settings.STORAGES.",
                    hint="Keep every storage alias that blobs were written to, even after changing "
                    "DJANGO_ATTACHMENTS['STORAGE'].",
                    id="django_attachments.W002",
                )
            )
    return errors


def register() -> None:
    checks.register(check_settings, TAG)
    checks.register(check_libmagic, TAG)
    checks.register(check_blob_storages, TAG, checks.Tags.database)
    checks.register(check_tasks, TAG)
    checks.register(check_scanner, TAG, deploy=True)
