"""The example project as tests/test_worker.py runs it: on its own Tasks backend, or on a real worker.

A settings module of the example project (``manage.py`` run from
``example_project/``, with the repository on ``PYTHONPATH`` so that ``tests``
imports)::

    DJANGO_SETTINGS_MODULE=tests.worker_settings WORKER_TASKS_BACKEND=database python manage.py db_worker

It keeps every setting of ``example_project.settings`` (its immediate Tasks
backend, its ``CLAMD_SOCKET`` scanner, its analyzers) and changes only:

- ``WORKER_TASKS_BACKEND=database``: the Tasks framework's database backend
  (django-tasks-db), whose ``db_worker`` processes run the pipeline. Its app
  is installed either way where it can be (Django 5.2+), so that processes on
  either backend share one database;
- ``ATTACHMENTS_SCAN_RETRY_DELAY`` (seconds): the first retry of a scan that
  could not run, instead of a minute;
- ``WORKER_INFECTED_LOG``: a file that :mod:`tests.worker_receivers` appends a
  line to each time ``blob_infected`` is sent, whichever process sends it;
- a fast password hasher, so that seeding and logging in take no seconds.
"""

import os
from importlib.util import find_spec

import django
from example_project.settings import *  # noqa: F403
from example_project.settings import DJANGO_ATTACHMENTS, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.worker_receivers.WorkerReceiversConfig"]
if django.VERSION >= (5, 2) and find_spec("django_tasks_db") is not None:
    INSTALLED_APPS.append("django_tasks_db")

if os.environ.get("WORKER_TASKS_BACKEND") == "database":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

DJANGO_ATTACHMENTS = {**DJANGO_ATTACHMENTS}
if os.environ.get("ATTACHMENTS_SCAN_RETRY_DELAY"):
    DJANGO_ATTACHMENTS["SCAN_RETRY_DELAY"] = float(os.environ["ATTACHMENTS_SCAN_RETRY_DELAY"])

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
