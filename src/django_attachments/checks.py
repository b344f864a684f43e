"""System checks, run by ``manage.py check`` and at server start.

Ids are stable; a retired id stays reserved and is never reused.

- ``django_attachments.E001``: a setting in ``DJANGO_ATTACHMENTS`` is wrong.
- ``django_attachments.E002``: ``DJANGO_ATTACHMENTS["STORAGE"]`` is not an alias of ``STORAGES``.
- ``django_attachments.E003``: libmagic cannot be loaded, so content types cannot be sniffed.
- ``django_attachments.E004``: a blob references a storage alias that is not in ``STORAGES``
  (only checked with ``--database``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .conf import app_settings

TAG = "django_attachments"


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        app_settings.reload()
        app_settings.validate_all()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint="See the settings reference in the django_attachments docs.",
                id="django_attachments.E001",
            )
        ]
    alias = app_settings.STORAGE
    defined = getattr(settings, "STORAGES", {}) or {}
    if alias not in defined:
        return [
            checks.Error(
                f"DJANGO_ATTACHMENTS['STORAGE'] is {alias!r}, which is not an alias of settings.STORAGES.",
                hint=f"Use one of: {', '.join(sorted(defined)) or '(none defined)'}, or add {alias!r} to STORAGES.",
                id="django_attachments.E002",
            )
        ]
    return []


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
    errors = []
    for alias in databases:
        try:
            used = set(Blob.objects.using(alias).values_list("storage", flat=True).distinct())
        except DatabaseError:
            continue  # not migrated yet
        for missing in sorted(used - defined):
            errors.append(
                checks.Error(
                    f"Blobs in database {alias!r} are stored in storage {missing!r}, "
                    "which is not in settings.STORAGES.",
                    hint="Keep every storage alias that blobs were written to, even after changing "
                    "DJANGO_ATTACHMENTS['STORAGE'].",
                    id="django_attachments.E004",
                )
            )
    return errors


def register() -> None:
    checks.register(check_settings, TAG)
    checks.register(check_libmagic, TAG)
    checks.register(check_blob_storages, TAG, checks.Tags.database)
