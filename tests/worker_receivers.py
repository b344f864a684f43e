"""A ``blob_infected`` receiver that leaves a trace every process can add to: one line per signal sent.

Installed by :mod:`tests.worker_settings`; the file is named by the
``WORKER_INFECTED_LOG`` environment variable (no file, no trace). Each line is
one JSON object ``{"blob": ..., "signature": ..., "pid": ...}``, written with
one ``write`` on a file opened for appending, so that lines of several
processes never mix. tests/test_worker.py counts them: an infected blob is
announced once, however many workers scanned it at once.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.apps import AppConfig

from django_attachments.signals import blob_infected


class WorkerReceiversConfig(AppConfig):
    name = "tests.worker_receivers"
    label = "worker_receivers"

    def ready(self) -> None:
        blob_infected.connect(record_infected, dispatch_uid="tests.worker_receivers.record_infected")


def record_infected(sender: Any, blob: Any, signature: str, **kwargs: Any) -> None:
    path = os.environ.get("WORKER_INFECTED_LOG")
    if not path:
        return
    line = json.dumps({"blob": str(blob.pk), "signature": signature, "pid": os.getpid()}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
