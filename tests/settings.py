"""Settings for the test suite.

SQLite by default; PostgreSQL when DJANGO_ATTACHMENTS_TEST_PG="host:port" is
set (``python -m tests.pgcluster -- pytest`` starts a throwaway cluster and
sets it). Storages point at temporary folders and, for S3, at a moto server
that ``tests/conftest.py`` starts on 127.0.0.1.
"""

import atexit
import os
import shutil
import tempfile
from typing import Any

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "drf_spectacular",
    "django_attachments",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

ROOT_URLCONF = "tests.urls"

_pg = os.environ.get("DJANGO_ATTACHMENTS_TEST_PG")
if _pg:
    _host, _port = _pg.rsplit(":", 1)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "attachments",
            "USER": "postgres",
            "HOST": _host,
            "PORT": _port,
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

MEDIA_ROOT = tempfile.mkdtemp(prefix="attachments-media-")
atexit.register(shutil.rmtree, MEDIA_ROOT, ignore_errors=True)
FILE_UPLOAD_TEMP_DIR = None

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

DJANGO_ATTACHMENTS: dict[str, Any] = {}

REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {"TITLE": "django_attachments (tests)", "VERSION": "test"}

# Logins in tests need no slow password hashing.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
