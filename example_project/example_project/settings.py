"""Settings of the example project: a dental practice group whose records own files.

Out of the box it runs on SQLite (``db.sqlite3``) with uploads on local disk
(``media/``), both next to ``manage.py``, with ``DEBUG`` off; it needs a
``DJANGO_SECRET_KEY``. ``make demo`` runs it in demo mode instead, which says
so loudly on every start. The environment can change that::

    DJANGO_SECRET_KEY=...                     # required unless DJANGO_DEBUG=1
    DJANGO_DEBUG=1                            # demo mode: DEBUG on, a secret key made for this checkout
    DJANGO_API_BASIC_AUTH=1                   # also accept HTTP Basic auth in the API (curl -u); off by default
    DJANGO_ALLOWED_HOSTS=demo.example.com
    DJANGO_DB_HOST=127.0.0.1 DJANGO_DB_PORT=5432 DJANGO_DB_NAME=demo DJANGO_DB_USER=demo [DJANGO_DB_PASSWORD=...]
                                              # PostgreSQL instead of SQLite
    STORAGE_BACKEND=s3 AWS_STORAGE_BUCKET_NAME=... [AWS_S3_ENDPOINT_URL=...] [AWS_S3_REGION_NAME=...]
    DJANGO_DB_PATH=/tmp/demo.sqlite3 DJANGO_MEDIA_ROOT=/tmp/demo-media   # elsewhere than next to manage.py
    ATTACHMENTS_MAX_UPLOAD_SIZE=1073741824                               # bytes (25 MiB by default)
    CLAMD_SOCKET=/run/clamav/clamd.ctl        # scan every new file with ClamAV's daemon on this unix socket
                                              # (no scanner by default: files are served unscanned)
    ATTACHMENTS_MIRROR_ROOT=/mnt/backup/attachments   # also copy every file (and thumbnail) to this folder,
                                              # verified; reads fall back to it (no mirror by default)

Each new file is scanned (with ``CLAMD_SOCKET``) and analyzed (images, PDFs:
their values show as the attachment's ``metadata`` in the API and on the
blob's admin page) right after its upload commits, inside the request: the
Tasks framework's immediate backend, so no worker needs to run. A project
with workers names another backend in ``TASKS`` (e.g. django-tasks-db's
database backend, run by ``manage.py db_worker``).

With ``STORAGE_BACKEND=s3`` the credentials come from boto3's usual sources
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance role).
"""

import os
import secrets
import sys
from pathlib import Path

import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"


def _demo_secret_key() -> str:
    """A key made once for this checkout (never a key published in the source), kept beside manage.py."""
    path = BASE_DIR / ".demo-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (_demo_secret_key() if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for a local demo).")
#: HTTP Basic auth sends credentials a browser may replay on a cross-site form, without CSRF: only when asked.
API_BASIC_AUTH = os.environ.get("DJANGO_API_BASIC_AUTH", "0") == "1"
if DEBUG or API_BASIC_AUTH:
    sys.stderr.write(
        "*** DEMO MODE: "
        + ", ".join(
            part
            for part, on in (("DEBUG is on", DEBUG), ("the API accepts HTTP Basic auth without CSRF", API_BASIC_AUTH))
            if on
        )
        + ". Never expose this server beyond your own machine. ***\n"
    )
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_attachments",
    # The Tasks framework's backport, before Django 6.0 has it built in (django.tasks).
    *(["django_tasks"] if django.VERSION < (6, 0) else []),
    "clinics",
    "patients",
    "treatment_plan",
    "clinical_notes",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH") or BASE_DIR / "db.sqlite3",
        # SQLite has no row locks: a transaction that starts by reading and then writes
        # fails with "database is locked" if another one wrote meanwhile (two completions
        # of one direct upload at once). Taking the write lock at BEGIN makes it wait instead.
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20} if django.VERSION >= (5, 1) else {"timeout": 20},
    }
}
if os.environ.get("DJANGO_DB_HOST"):
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ["DJANGO_DB_HOST"],
        "PORT": os.environ.get("DJANGO_DB_PORT", "5432"),
        "NAME": os.environ.get("DJANGO_DB_NAME", "example"),
        "USER": os.environ.get("DJANGO_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("DJANGO_DB_PASSWORD", ""),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Uploads are served through django_attachments (streamed, or a signed URL),
# never from MEDIA_URL, so no URL pattern serves this folder.
MEDIA_ROOT = os.environ.get("DJANGO_MEDIA_ROOT") or BASE_DIR / "media"

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if os.environ.get("STORAGE_BACKEND") == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["AWS_STORAGE_BUCKET_NAME"],
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL"),
            "region_name": os.environ.get("AWS_S3_REGION_NAME"),
        },
    }

# A second copy of every file, on another disk: the "mirror" storage, listed in MIRRORS below.
_mirror_root = os.environ.get("ATTACHMENTS_MIRROR_ROOT", "")
if _mirror_root:
    STORAGES["mirror"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": _mirror_root},
    }

# The processing pipeline (scan, then analyze) runs as a task: inline, once each upload commits.
# Django 6.0+ has the framework built in; before it, the django-tasks backport (in INSTALLED_APPS above).
_tasks_package = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
TASKS = {"default": {"BACKEND": f"{_tasks_package}.backends.immediate.ImmediateBackend"}}
_clamd_socket = os.environ.get("CLAMD_SOCKET", "")

# What the app does after the bytes land (scans, renders) goes to the console, at INFO.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_attachments": {"handlers": ["console"], "level": os.environ.get("ATTACHMENTS_LOG_LEVEL", "INFO")}
    },
}

DJANGO_ATTACHMENTS = {
    "MAX_UPLOAD_SIZE": int(os.environ.get("ATTACHMENTS_MAX_UPLOAD_SIZE", 25 * 1024 * 1024)),
    # Direct uploads above this size go in parts (resumable; each part's SHA-256 checked by the storage).
    "MULTIPART_THRESHOLD": int(os.environ.get("ATTACHMENTS_MULTIPART_THRESHOLD", 64 * 1024 * 1024)),
    "MULTIPART_PART_SIZE": int(os.environ.get("ATTACHMENTS_MULTIPART_PART_SIZE", 16 * 1024 * 1024)),
    # Without a scanner every file is served as soon as it is stored (its scan_state "not_scanned"); with
    # one, a file is served once the scanner passed it, and a file it finds a threat in is quarantined.
    "SCANNER": (
        {"BACKEND": "django_attachments.processing.scanners.ClamdScanner", "OPTIONS": {"socket": _clamd_socket}}
        if _clamd_socket
        else None
    ),
    # Every built-in analyzer whose library or program is installed (Pillow: image.* keys, pypdf: pdf.*, ...).
    "ANALYZERS": None,
    # Each new file and variant is copied there after its upload commits (a task, inline here); a copy that
    # fails never fails the upload: manage.py process_attachments makes it later.
    "MIRRORS": ["mirror"] if _mirror_root else [],
    # Thumbnails for the gallery, made by the pipeline as soon as a file is scanned; a large preview made
    # on its first request. Each built-in renderer whose library is installed makes them (Pillow: images,
    # pypdfium2: a PDF's first page, pydicom: an X-ray's first frame, ffmpeg: a video's frame).
    "VARIANTS": {
        "thumb": {"operation": "fit", "width": 256, "height": 256, "format": "webp", "eager": True},
        "preview": {"operation": "fit", "width": 1600, "height": 1600, "format": "jpeg", "quality": 85},
    },
    # The caller's tenant is their clinic; see clinics/tenancy.py.
    "TENANT_RESOLVER": "clinics.tenancy.clinic_for_request",
    # In the admin, superusers (of no clinic) see and manage every clinic's files;
    # clinic staff only their own clinic's.
    "ADMIN_CROSS_TENANT": "django_attachments.policy.is_superuser",
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Sessions (the browsable API, Swagger UI, the demo pages), with CSRF checks.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        *(["rest_framework.authentication.BasicAuthentication"] if API_BASIC_AUTH else []),
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "django_attachments example API",
    "DESCRIPTION": "Files owned by patients, treatment plan items and clinical notes, per clinic.",
    "VERSION": "0.1.0",
    # Swagger UI's assets come from the drf-spectacular-sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
}
