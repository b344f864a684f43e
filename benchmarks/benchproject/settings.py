"""Settings of the benchmark project, from the environment that ``benchmarks/run.py`` sets.

- ``BENCH_WORKDIR``: folder for the SQLite database, the media folders and the upload temp files.
- ``BENCH_STORAGE``: the ``STORAGES`` alias uploads go to: ``default`` (local disk) or ``s3``.
- ``BENCH_S3_ENDPOINT``, ``BENCH_S3_BUCKET``: the moto server and bucket behind the ``s3`` alias.
- ``BENCH_PG_HOST``, ``BENCH_PG_PORT``, ``BENCH_PG_NAME``: PostgreSQL instead of SQLite.
- ``BENCH_CHUNK_SIZE``: the app's ``CHUNK_SIZE`` (bytes), where a run compares chunk sizes.
- ``BENCH_STREAM_UPLOADS`` (``0``/``1``), ``BENCH_S3_PART_SIZE``, ``BENCH_S3_IN_FLIGHT``: how API uploads go to S3.

Single-tenant (no TENANT_RESOLVER), no authentication (AllowAny), no upload
size limit, DEBUG off (no query log growing in the server's memory).
"""

import os
from pathlib import Path

WORKDIR = Path(os.environ["BENCH_WORKDIR"])

DEBUG = False
SECRET_KEY = "benchmarks-only-not-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",  # the authentication benchmark's sessions
    "rest_framework",
    "rest_framework.authtoken",  # and its tokens
    "django_attachments",
    "benchapp",
]

# The same small stack in front of the API and of the bare views.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "benchproject.urls"
WSGI_APPLICATION = "benchproject.wsgi.application"
TEMPLATES: list = []

if os.environ.get("BENCH_PG_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["BENCH_PG_NAME"],
            "USER": "postgres",
            "HOST": os.environ["BENCH_PG_HOST"],
            "PORT": os.environ["BENCH_PG_PORT"],
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(WORKDIR / "db.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"

MEDIA_ROOT = str(WORKDIR / "media")
#: Where the bare views store their uploads (a FileSystemStorage of its own).
BARE_MEDIA_ROOT = str(WORKDIR / "bare-media")
# Upload temp files on the same file system as both media folders: storing is a rename.
FILE_UPLOAD_TEMP_DIR = str(WORKDIR / "tmp")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if os.environ.get("BENCH_S3_ENDPOINT"):
    STORAGES["s3"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["BENCH_S3_BUCKET"],
            "endpoint_url": os.environ["BENCH_S3_ENDPOINT"],
            "access_key": "testing",
            "secret_key": "testing",
            "region_name": "us-east-1",
        },
    }

DJANGO_ATTACHMENTS = {
    "STORAGE": os.environ.get("BENCH_STORAGE", "default"),
    "MAX_UPLOAD_SIZE": None,
    "PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
}
# The parse chunk size of API uploads, to compare them (the parse benchmark picks it; the default otherwise).
if os.environ.get("BENCH_CHUNK_SIZE"):
    DJANGO_ATTACHMENTS["CHUNK_SIZE"] = int(os.environ["BENCH_CHUNK_SIZE"])
# API uploads to S3 sent on while they arrive (the default), or spooled first (BENCH_STREAM_UPLOADS=0);
# and the S3 store's parts (BENCH_S3_PART_SIZE bytes, BENCH_S3_IN_FLIGHT side by side), to compare them.
if os.environ.get("BENCH_STREAM_UPLOADS"):
    DJANGO_ATTACHMENTS["STREAM_UPLOADS"] = os.environ["BENCH_STREAM_UPLOADS"] == "1"
_s3_options = {
    option: int(os.environ[variable])
    for option, variable in (("part_size", "BENCH_S3_PART_SIZE"), ("max_parts_in_flight", "BENCH_S3_IN_FLIGHT"))
    if os.environ.get(variable)
}
if _s3_options:
    DJANGO_ATTACHMENTS["STORE_OPTIONS"] = {"s3": _s3_options}
# The shared servers' direct uploads measure the one-request flow (run.py raises the threshold to its
# maximum for them); the multipart benchmark's own servers keep the default.
if os.environ.get("BENCH_MULTIPART_THRESHOLD"):
    DJANGO_ATTACHMENTS["MULTIPART_THRESHOLD"] = int(os.environ["BENCH_MULTIPART_THRESHOLD"])

REST_FRAMEWORK = {
    # A request without credentials is anonymous: these cost the other benchmarks nothing (no session
    # middleware outside the authentication benchmark, no Authorization header).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
