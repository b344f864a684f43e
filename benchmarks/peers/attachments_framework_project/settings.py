"""Settings of the django-attachments-framework project; ``BENCH_WORKDIR`` holds its database and files."""

import os
from pathlib import Path

WORKDIR = Path(os.environ["BENCH_WORKDIR"])

DEBUG = False
SECRET_KEY = "benchmarks-only-not-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "attachments_framework",
    "attachments_framework_project",
]
# Its views authenticate through Django's session; CSRF is checked as in any project that has sessions.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "attachments_framework_project.urls"
TEMPLATES: list = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(WORKDIR / "db.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

MEDIA_ROOT = str(WORKDIR / "media")
# Upload temp files (a multipart POST's; a PUT spools to the process's temporary folder, TMPDIR) beside the files.
FILE_UPLOAD_TEMP_DIR = str(WORKDIR / "tmp")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

ATTACHMENTS_FRAMEWORK = {
    "STORAGE": "default",  # a FileSystemStorage: uploads go through its proxy view
    "PERMISSION_CLASS": "attachments_framework.permissions.AttachmentPermission",  # its default: login required
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
