"""Settings of the drf-attachments project; ``BENCH_WORKDIR`` holds its database, files and upload temp files."""

import os
from pathlib import Path

WORKDIR = Path(os.environ["BENCH_WORKDIR"])

DEBUG = False
SECRET_KEY = "benchmarks-only-not-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",  # the viewset's filter backend
    "drf_attachments",
    "drf_attachments_project",
]
# The same small stack as the benchmark project's (a token needs no session).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "drf_attachments_project.urls"
TEMPLATES: list = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(WORKDIR / "db.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

MEDIA_ROOT = str(WORKDIR / "media")
# Where drf-attachments stores its files (its AttachmentFileStorage).
PRIVATE_ROOT = MEDIA_ROOT
# Upload temp files on the file system of the store: storing is a rename, as for the other contenders.
FILE_UPLOAD_TEMP_DIR = str(WORKDIR / "tmp")

# drf-attachments' settings (its README): no size limit below the benchmark's sizes, one context.
ATTACHMENT_MAX_UPLOAD_SIZE = 64 * 1024**3
ATTACHMENT_DEFAULT_CONTEXT = "attachment"
ATTACHMENT_CONTEXT_OTHER = "other"
ATTACHMENT_CONTENT_OBJECT_FIELD_CALLABLE = "drf_attachments_project.attachments.attachment_content_object_field"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
