"""The example project with more storages to migrate to, for tests/test_migrate_live.py.

A settings module of the example project (``manage.py`` run from
``example_project/``, with the repository on ``PYTHONPATH`` so that ``tests``
imports)::

    DJANGO_SETTINGS_MODULE=tests.migrate_settings MIGRATE_S3_ENDPOINT=http://127.0.0.1:PORT \\
        MIGRATE_S3_BUCKET=bucket python manage.py migrate_attachments --to s3

It keeps every setting of ``example_project.settings`` (uploads on local disk,
``default``; its immediate Tasks backend; its eager thumbnails) and adds:

- ``s3``: a bucket (``MIGRATE_S3_BUCKET``) of the S3 server at
  ``MIGRATE_S3_ENDPOINT``, with ``MIGRATE_S3_ACCESS_KEY`` and
  ``MIGRATE_S3_SECRET_KEY`` (moto's "testing" by default);
- ``slow``: local disk under the media folder (``slow/``) whose writes sleep
  ``MIGRATE_SLOW_SAVE`` seconds half way (:class:`tests.migrate_storages.SlowStorage`);
- a fast password hasher, so that seeding and logging in take no seconds.
"""

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import MEDIA_ROOT, STORAGES

STORAGES = {
    **STORAGES,
    "slow": {
        "BACKEND": "tests.migrate_storages.SlowStorage",
        "OPTIONS": {"location": os.path.join(str(MEDIA_ROOT), "slow")},
    },
}
if os.environ.get("MIGRATE_S3_ENDPOINT"):
    STORAGES["s3"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["MIGRATE_S3_BUCKET"],
            "endpoint_url": os.environ["MIGRATE_S3_ENDPOINT"],
            "access_key": os.environ.get("MIGRATE_S3_ACCESS_KEY", "testing"),
            "secret_key": os.environ.get("MIGRATE_S3_SECRET_KEY", "testing"),
            "region_name": "us-east-1",
        },
    }

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
