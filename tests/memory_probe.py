"""Measure how much one attach() of a big file grows the peak memory of a fresh process.

Run by ``tests/test_memory.py`` in a subprocess (``sys.executable``), so the
figures are not polluted by pytest or by earlier tests::

    python tests/memory_probe.py --store disk --mode file \\
        --input /tmp/big.bin --sha256 <hex> --workdir /tmp/work
    python tests/memory_probe.py --store s3 --mode stream --endpoint http://127.0.0.1:5000 \\
        --bucket test-abc --input /tmp/big.bin --sha256 <hex> --workdir /tmp/work

``--mode file`` attaches ``File(open(path, "rb"))`` (seekable); ``--mode
stream`` attaches a wrapper whose ``seekable()`` is False, which makes
``ingest.inspect`` spool the bytes to a temporary file.

Steps: set Django up on ``tests.settings`` (SQLite in ``workdir``, the chosen
storage as alias ``attachments``), migrate, warm up (libmagic, the storage's
client, one small attach and read-back), read the baseline peak RSS, attach
the big file, read the peak, stream the stored bytes back through
``services.open_blob`` hashing them, read the peak again. Prints one line
``MEMORY_PROBE {json}`` with the figures (MiB) and the correctness checks.

``--trace`` also runs tracemalloc over the big attach and read-back and
reports the largest Python allocation sites (tracemalloc costs memory itself:
use it to find where memory goes, not for the bound).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import os
import resource
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
READ_CHUNK = 1024 * 1024


def _status_mib(field: str) -> float | None:
    """A ``Vm*`` field of /proc/self/status in MiB (Linux only; None elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def sample() -> dict[str, float | None]:
    """The peak RSS two ways, and the current RSS, in MiB.

    ``maxrss`` is ``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux, bytes on
    macOS). On Linux it never drops below the RSS the *parent* had when this
    process was forked (the kernel carries it over at exec), which can hide a
    few MiB of growth in a small process; ``hwm`` (VmHWM, Linux only) is this
    process's own high-water mark and has no such floor.
    """
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    values = {
        "maxrss": maxrss / MIB if sys.platform == "darwin" else maxrss / 1024,
        "hwm": _status_mib("VmHWM"),
        "rss": _status_mib("VmRSS"),
    }
    return {key: None if value is None else round(value, 1) for key, value in values.items()}


def growth(before: dict, after: dict) -> dict[str, float | None]:
    """How much each peak measure rose from ``before`` to ``after``; ``max`` is the larger one."""
    rises = {
        key: None if before[key] is None or after[key] is None else round(after[key] - before[key], 1)
        for key in ("maxrss", "hwm")
    }
    rises["max"] = max(v for v in rises.values() if v is not None)
    return rises


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False where it cannot.

    Without it, a warm-up peak above the current RSS would hide part of the
    growth that follows.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class NonSeekableReader(io.RawIOBase):
    """A read-only stream over a file that refuses to seek, like a socket or a pipe."""

    name = "big-stream.bin"

    def __init__(self, raw) -> None:
        super().__init__()
        self._raw = raw

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        return self._raw.readinto(buffer)

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()


def storage_config(args: argparse.Namespace, workdir: Path) -> dict:
    from tests.conftest import s3_backend  # importable once setup_django() put the repo on sys.path

    if args.store == "disk":
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(workdir / "store")},
        }
    if not args.endpoint or not args.bucket:
        raise SystemExit("--store s3 needs --endpoint and --bucket")
    return s3_backend(args.endpoint, args.bucket)


def setup_django(args: argparse.Namespace, workdir: Path) -> None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    # Importing the test fixtures points AWS configuration away from a developer's own.
    import tests.conftest  # noqa: F401

    os.environ.pop("DJANGO_ATTACHMENTS_TEST_PG", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

    import django
    from django.conf import settings

    (workdir / "tmp").mkdir(exist_ok=True)
    settings.DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(workdir / "db.sqlite3")}}
    settings.MEDIA_ROOT = str(workdir / "media")
    settings.FILE_UPLOAD_TEMP_DIR = str(workdir / "tmp")  # where a non-seekable stream is spooled
    settings.STORAGES = {**settings.STORAGES, "attachments": storage_config(args, workdir)}
    settings.DJANGO_ATTACHMENTS = {"STORAGE": "attachments", "MAX_UPLOAD_SIZE": None}
    django.setup()

    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def open_source(path: str, mode: str):
    from django.core.files import File

    handle = open(path, "rb")  # noqa: SIM115 (closed by the caller)
    if mode == "file":
        return File(handle, name=os.path.basename(path))
    return NonSeekableReader(handle)


def read_back(blob) -> tuple[int, str]:
    from django_attachments import services

    hasher = hashlib.sha256()
    size = 0
    with services.open_blob(blob) as reader:
        for chunk in reader.chunks(READ_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return size, hasher.hexdigest()


def small_source(data: bytes, mode: str):
    """The small warm-up file, in the same shape (seekable or not) as the big one."""
    from django.core.files import File

    if mode == "file":
        return File(io.BytesIO(data), name="warm.bin")
    return NonSeekableReader(io.BytesIO(data))


def top_allocations(snapshot, limit: int = 15) -> list[str]:
    import tracemalloc

    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    return [str(stat) for stat in snapshot.statistics("traceback")[:limit]]


def scan_step(blob, socket: str, *, baseline: dict) -> dict:
    """Scan the stored blob through the pipeline (the store's stream to clamd's INSTREAM); its peak growth."""
    from django.conf import settings

    from django_attachments.conf import app_settings
    from django_attachments.models import Blob, ScanState
    from django_attachments.services import processing

    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "SCANNER": {"BACKEND": "django_attachments.processing.scanners.ClamdScanner", "OPTIONS": {"socket": socket}},
    }
    app_settings.reload()
    Blob.objects.filter(pk=blob.pk).update(scan_state=ScanState.PENDING)
    gc.collect()
    before = sample() if reset_peak_rss() else None
    outcome = processing.process(blob.pk, stages=["scan"])
    after = sample()
    return {
        "scan_state": outcome.scan,
        "scan_error": Blob.objects.get(pk=blob.pk).scan_error,
        "scan_growth_mib": growth(baseline, after),
        "scan_alone_growth_mib": None if before is None else growth(before, after),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["disk", "s3"], required=True)
    parser.add_argument("--mode", choices=["file", "stream"], required=True)
    parser.add_argument("--input", required=True, help="the big file to attach")
    parser.add_argument("--sha256", required=True, help="SHA-256 (hex) of --input, computed while writing it")
    parser.add_argument("--workdir", required=True, help="an empty folder for the database, storage and spool")
    parser.add_argument("--endpoint", help="S3 endpoint URL (moto server)")
    parser.add_argument("--bucket", help="an existing, empty bucket")
    parser.add_argument("--trace", action="store_true", help="report tracemalloc's largest allocation sites")
    parser.add_argument(
        "--scan-socket", help="then scan the big blob with the processing pipeline, through clamd at this unix socket"
    )
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    expected_size = os.path.getsize(args.input)

    setup_django(args, workdir)

    from django_attachments import services
    from django_attachments.stores import get_store
    from tests.testapp.models import Clinic, Patient

    clinic = Clinic.objects.create(name="memory")
    warm_patient = Patient.objects.create(clinic=clinic, name="warm-up")
    big_patient = Patient.objects.create(clinic=clinic, name="big")

    # Warm-up: libmagic, the storage (boto3 session and client), the ORM, one
    # small attach through the same mode and one read-back.
    small = os.urandom(256 * 1024)
    warm = services.attach(small_source(small, args.mode), owner_type="patient", owner_id=warm_patient.pk, name="warm")
    assert read_back(warm.blob) == (len(small), hashlib.sha256(small).hexdigest())
    del small

    # Count the spool files ingest.inspect() creates: only the stream must be spooled.
    from django_attachments import ingest

    spools = []

    class CountingSpool(ingest.TemporaryUploadedFile):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            spools.append(self.name)

    ingest.TemporaryUploadedFile = CountingSpool

    if args.trace:
        import tracemalloc

        tracemalloc.start(25)
    gc.collect()
    peak_reset = reset_peak_rss()
    baseline = sample()

    source = open_source(args.input, args.mode)
    try:
        attachment = services.attach(
            source, owner_type="patient", owner_id=big_patient.pk, name="big", filename="big.bin"
        )
    finally:
        source.close()
    after_attach = sample()
    blob = attachment.blob
    trace: dict[str, object] = {}
    if args.trace:
        trace["attach_traced_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / MIB, 1)
        trace["attach_top"] = top_allocations(tracemalloc.take_snapshot())
        tracemalloc.reset_peak()

    # Read-back: its peak counted from the baseline (attach and read-back
    # together, as the bound asks) and, where the peak can be reset, alone.
    gc.collect()
    before_read = sample() if peak_reset and reset_peak_rss() else None
    read_size, read_sha = read_back(blob)
    after_read = sample()
    if args.trace:
        trace["read_traced_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / MIB, 1)
        trace["read_top"] = top_allocations(tracemalloc.take_snapshot())
        tracemalloc.stop()
    since_baseline = {
        key: None if after_read[key] is None else max(after_read[key], after_attach[key]) for key in ("maxrss", "hwm")
    }
    since_baseline["rss"] = after_read["rss"]

    result = {
        "store": args.store,
        "mode": args.mode,
        "size_mib": expected_size / MIB,
        "was_created": attachment.was_created,
        "distinct_from_warm_up": blob.pk != warm.blob.pk,
        "spooled": len(spools),
        "blob_size_ok": blob.size == expected_size,
        "blob_sha256_ok": blob.checksum == args.sha256,
        "read_back_size_ok": read_size == expected_size,
        "read_back_sha256_ok": read_sha == args.sha256,
        "peak_reset_at_baseline": peak_reset,
        "attach_growth_mib": growth(baseline, after_attach),
        "read_back_growth_mib": growth(baseline, since_baseline),
        "read_back_alone_growth_mib": None if before_read is None else growth(before_read, after_read),
        "samples_mib": {
            "baseline": baseline,
            "after_attach": after_attach,
            "before_read_back": before_read,
            "after_read_back": after_read,
        },
    }
    if trace:
        result["trace"] = trace
    if args.scan_socket:
        result.update(scan_step(blob, args.scan_socket, baseline=baseline))

    # Free the space (and the moto server's memory) the stored copies take.
    store = get_store("attachments")
    for identifiers in (blob.storage_identifiers, warm.blob.storage_identifiers):
        store.delete(identifiers)

    print("MEMORY_PROBE " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
