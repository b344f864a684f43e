"""The benchmark project's settings, with the API's default permission (a login) instead of AllowAny."""

from benchproject.settings import *  # noqa: F403

DJANGO_ATTACHMENTS = {k: v for k, v in DJANGO_ATTACHMENTS.items() if k != "PERMISSION_CLASSES"}  # noqa: F405
