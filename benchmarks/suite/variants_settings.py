"""Settings of the benchmark project as the variants benchmark serves it (``DJANGO_SETTINGS_MODULE``).

Every setting of ``benchproject.settings`` (single tenant, no authentication,
SQLite in the work folder or PostgreSQL, the local disk), plus:

- the example project's two variants: ``thumb`` (fit 256, WebP, eager: made
  by the pipeline after each upload) and ``preview`` (fit 1600, JPEG 85,
  lazy: made on its first request);
- one renderer, :class:`suite.render_counter.CountingImageRenderer`: the
  package's ``ImageRenderer`` that also appends a line to
  ``BENCH_RENDER_LOG`` for every render, whichever process makes it;
- the Tasks backend: the immediate one (a claimed variant is made inline, by
  the request that claimed it), or with ``BENCH_VARIANT_TASKS=worker``
  django-tasks-db's database backend, whose ``db_worker`` makes it while
  requests answer 202.
"""

import os

from benchproject.settings import *  # noqa: F403
from benchproject.settings import DJANGO_ATTACHMENTS, INSTALLED_APPS

DJANGO_ATTACHMENTS = {
    **DJANGO_ATTACHMENTS,
    "VARIANTS": {
        "thumb": {"operation": "fit", "width": 256, "height": 256, "format": "webp", "eager": True},
        "preview": {"operation": "fit", "width": 1600, "height": 1600, "format": "jpeg", "quality": 85},
    },
    "RENDERERS": ["suite.render_counter.CountingImageRenderer"],
}

if os.environ.get("BENCH_VARIANT_TASKS") == "worker":
    INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
else:
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
