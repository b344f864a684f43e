"""Rounds of new blobs raced by every process at once, run inside the example project (tests/test_worker.py).

::

    DRIVER_ROUNDS=20 DRIVER_EXTRA_TASKS=2 python manage.py shell -c "from tests.worker_driver import main; main()"

Each round, in one transaction: three new files for a patient of the seed
(an image, a PDF and a file holding clamd's test marker, its bytes new each
round), a key of the project's own preset in each blob's metadata (one
without a dot, one in a namespace no analyzer uses), and ``DRIVER_EXTRA_TASKS``
more ``process_blob`` tasks per blob beside the one its commit enqueues, so
that several workers take the same blob at once. Once it commits, after a
pause of a few milliseconds, this process runs the backlog too, as
``process_attachments --pending`` would: ``processing.process`` for every blob
of ``processing.unfinished()``. One JSON line per round names its blobs and
the seconds its two steps took; the last line counts the stages this process
ran, and how many times it scanned each blob.
"""

from __future__ import annotations

import json
import os
import random
import time

from demo.sample_files import sample_pdf, sample_png
from django.core.files.base import ContentFile
from django.db import transaction
from patients.models import Patient

from django_attachments import services
from django_attachments.models import Blob
from django_attachments.services import processing
from django_attachments.tasks import enqueue
from tests.clamd import MARKER

#: The keys each blob gets before any stage runs; the pipeline must keep them.
PRESET = {"record_ref": "R-{round}-{kind}", "billing.code": "D0210-{round}"}


def round_files(number: int, rng: random.Random) -> dict[str, tuple[str, bytes]]:
    return {
        "image": (f"race-{number}.png", sample_png((number % 256, 7, 99), size=8 + number % 5)),
        "pdf": (f"race-{number}.pdf", sample_pdf(f"Round {number} of the race")),
        "marked": (f"race-{number}.bin", rng.randbytes(128 * 1024) + MARKER + rng.randbytes(128 * 1024)),
    }


def main() -> None:
    rounds = int(os.environ.get("DRIVER_ROUNDS", "20"))
    extra = int(os.environ.get("DRIVER_EXTRA_TASKS", "2"))
    rng = random.Random(int(os.environ.get("DRIVER_SEED", "15")))
    patient = Patient.objects.get(record_number="N-0002")
    ran = {"scan": 0, "analyze": 0, "variants": 0, "calls": 0}
    scanned: dict[str, int] = {}
    for number in range(rounds):
        blobs = {}
        began = time.monotonic()
        with transaction.atomic():
            for kind, (filename, data) in round_files(number, rng).items():
                attachment = services.attach(
                    ContentFile(data, name=filename),
                    owner_type="patient",
                    owner_id=patient.pk,
                    tenant=patient.clinic_id,
                )
                blob = attachment.blob
                preset = {key: value.format(round=number, kind=kind) for key, value in PRESET.items()}
                Blob.objects.filter(pk=blob.pk).update(metadata={**blob.metadata, **preset})
                for _ in range(extra):
                    enqueue(blob.pk)
                blobs[kind] = str(blob.pk)
        created = time.monotonic() - began
        # The workers poll every 200 ms: start now or a little later, so that each round interleaves differently.
        time.sleep(rng.uniform(0, 0.2))
        began = time.monotonic()
        for pk in list(processing.unfinished().values_list("pk", flat=True)):
            outcome = processing.process(pk)
            ran["calls"] += 1
            for stage in outcome.ran:
                ran[stage] += 1
            if "scan" in outcome.ran:
                scanned[outcome.blob_id] = scanned.get(outcome.blob_id, 0) + 1
        seconds = {"create": round(created, 3), "backlog": round(time.monotonic() - began, 3)}
        print(json.dumps({"round": number, "blobs": blobs, "seconds": seconds}), flush=True)
    print(json.dumps({"driver_ran": ran, "scanned": scanned}), flush=True)
