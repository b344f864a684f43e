"""Settings of the example project: a dental practice group whose records own files.

Out of the box it runs on SQLite (``db.sqlite3``) with uploads on local disk
(``media/``), both next to ``manage.py``. The environment can change that::

    DJANGO_DEBUG=0 DJANGO_SECRET_KEY=...      # anything but a local demo
    DJANGO_ALLOWED_HOSTS=demo.example.com
    STORAGE_BACKEND=s3 AWS_STORAGE_BUCKET_NAME=... [AWS_S3_ENDPOINT_URL=...] [AWS_S3_REGION_NAME=...]
    DJANGO_DB_PATH=/tmp/demo.sqlite3 DJANGO_MEDIA_ROOT=/tmp/demo-media   # elsewhere than next to manage.py
    ATTACHMENTS_MAX_UPLOAD_SIZE=1073741824                               # bytes (25 MiB by default)

With ``STORAGE_BACKEND=s3`` the credentials come from boto3's usual sources
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance role).
"""

import os
from pathlib import Path

import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or ("django-insecure-example-project-dev-only" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is off.")
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
    "clinics",
    "patients",
    "treatment_plan",
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

DJANGO_ATTACHMENTS = {
    "MAX_UPLOAD_SIZE": int(os.environ.get("ATTACHMENTS_MAX_UPLOAD_SIZE", 25 * 1024 * 1024)),
    # The caller's tenant is their clinic; see clinics/tenancy.py.
    "TENANT_RESOLVER": "clinics.tenancy.clinic_for_request",
    # In the admin, superusers (of no clinic) see and manage every clinic's files;
    # clinic staff only their own clinic's.
    "ADMIN_CROSS_TENANT": "django_attachments.policy.is_superuser",
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "django_attachments example API",
    "DESCRIPTION": "Files owned by patients and treatment plan items, per clinic.",
    "VERSION": "0.1.0",
    # Swagger UI's assets come from the drf-spectacular-sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
}
