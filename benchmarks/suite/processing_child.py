"""One measured case of the processing benchmarks, in a process of its own (``python -m suite.processing_child SPEC``).

A fresh process per case and per repeat, so that one case's memory does not
show in another's peak: it sets Django up on the benchmark project (the
environment ``run.py`` exported), applies the same settings overrides as the
parent (:func:`overrides`: the suite's own S3 alias, the analyzers), warms up
(the analyses: one whole untimed run; the read and the scan, which take the
whole object: the store's first MiB, and clamd's ping), then runs the case
once, measured, and prints one JSON line: the wall time of the measured run,
its peak RSS (VmHWM reset just before it, where the kernel allows), the
process's peak RSS over its whole life (set-up and warm-up included), and what
the case reports (bytes asked of the store, ranged reads, the verdict, the
metadata).

Cases (``SPEC["case"]``):

- ``baseline``: Django set up, the package's processing service, stores and
  analyzers imported, the store's adapter made (on S3, its boto3 client) and
  asked whether the object exists (one HEAD); nothing read.
- ``read``: the whole object streamed through ``store.open()`` in CHUNK_SIZE
  chunks (the anchor of the analyses).
- ``pipeline``: ``services.processing.process(blob_id, stages=["analyze"],
  force=True)``; the bytes asked of the store are counted by wrapping the
  store adapter's ``open`` (what every ``SeekableReader`` of the run calls).
- ``analyzer``: one analyzer on ``SeekableReader.buffered(...)``, no database;
  its reader's ``fetched`` and ``requests``.
- ``scan``: ``ClamdScanner.scan(store.open(identifiers).chunks())``.
- ``clamdscan``: ``clamdscan --stream`` on a file, as a subprocess (the scan's
  anchor); its peak RSS from ``getrusage(RUSAGE_CHILDREN)``.

The peak RSS of programs the case starts (ffprobe, clamdscan) is reported
apart (``children_peak_kib``): it is not the Python process's.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

#: The STORAGES alias of the suite's own S3 bucket (on its own moto server).
S3_ALIAS = "bench-processing-s3"


def overrides(spec: dict[str, Any]) -> dict[str, Any]:
    """The settings the processing benchmarks change, for ``override_settings`` (parent and children alike)."""
    from django.conf import settings

    storages = dict(settings.STORAGES)
    if spec.get("s3_endpoint"):
        storages[S3_ALIAS] = {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": spec["s3_bucket"],
                "endpoint_url": spec["s3_endpoint"],
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
            },
        }
    attachments = {**settings.DJANGO_ATTACHMENTS, "ANALYZERS": list(spec["analyzers"]), "SCANNER": None}
    return {"STORAGES": storages, "DJANGO_ATTACHMENTS": attachments}


def _kib(field: str) -> int | None:
    from tests.servers import status_kib

    try:
        return status_kib(os.getpid(), field)
    except (OSError, RuntimeError):
        return None


class CountingOpen:
    """Wraps a store adapter's ``open``: the bytes each call asks for, and the calls."""

    def __init__(self, store: Any, size: int) -> None:
        self.store, self.size = store, size
        self.original = store.open
        self.fetched = self.requests = 0
        store.open = self

    def __call__(self, identifiers: Any, *, start: int = 0, end: int | None = None) -> Any:
        self.fetched += (self.size if end is None else end + 1) - start
        self.requests += 1
        return self.original(identifiers, start=start, end=end)

    def reset(self) -> None:
        self.fetched = self.requests = 0


def read_whole(store: Any, identifiers: Any, size: int) -> dict[str, Any]:
    received = 0
    with store.open(identifiers) as stream:
        for chunk in stream.chunks():
            received += len(chunk)
    return {"received": received, "fetched": size, "requests": 1}


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """Set Django up, warm up, measure once; the figures as a dict."""
    import django

    django.setup()
    from django.test import override_settings

    from django_attachments.processing import analyzers  # noqa: F401  (the baseline's imports)
    from django_attachments.services import processing
    from django_attachments.stores import SeekableReader, get_store
    from tests.servers import reset_peak

    case = spec["case"]
    result: dict[str, Any] = {"case": case}
    with override_settings(**overrides(spec)):
        if case == "baseline":
            if "alias" in spec:  # the store's adapter (and client), one look at the object; nothing read
                started = time.perf_counter()
                result["exists"] = get_store(spec["alias"]).exists(spec["identifiers"])
                result["seconds"] = time.perf_counter() - started
            result.update(run_peak_kib=None, peak_kib=_kib("VmHWM"))
            return result

        if case == "clamdscan":
            command = ["clamdscan", "--config-file", spec["conf"], "--stream", "--no-summary", spec["path"]]

            def once() -> dict[str, Any]:
                done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
                return {"returncode": done.returncode, "output": (done.stdout + done.stderr).strip()[-500:]}

        else:
            store = get_store(spec["alias"]) if "alias" in spec else None
            identifiers, size = spec.get("identifiers"), spec.get("size", 0)
            counter = CountingOpen(store, size) if case == "pipeline" else None

            if case == "read":

                def once() -> dict[str, Any]:
                    return read_whole(store, identifiers, size)

            elif case == "pipeline":
                from django_attachments.models import Blob

                def once() -> dict[str, Any]:
                    assert counter is not None
                    counter.reset()
                    outcome = processing.process(spec["blob_id"], stages=["analyze"], force=True)
                    blob = Blob.objects.get(pk=spec["blob_id"])
                    return {
                        "outcome": outcome.as_dict(),
                        "metadata": blob.metadata,
                        "errors": blob.analysis_errors,
                        "fetched": counter.fetched,
                        "requests": counter.requests,
                    }

            elif case == "analyzer":
                from django.utils.module_loading import import_string

                analyzer = import_string(spec["analyzer"])()

                def once() -> dict[str, Any]:
                    stream = SeekableReader.buffered(store, identifiers, size)
                    try:
                        metadata = analyzer.analyze(stream)
                    finally:
                        stream.close()
                    raw = stream.raw
                    return {"metadata": metadata, "fetched": raw.fetched, "requests": raw.requests}

            elif case == "scan":
                from django_attachments.processing.scanners import ClamdScanner

                scanner = ClamdScanner.from_options({"socket": spec["socket"]})

                def once() -> dict[str, Any]:
                    with store.open(identifiers) as stream:
                        verdict = scanner.scan(stream.chunks())
                    return {"clean": verdict.clean, "signature": verdict.signature, "scanned": verdict.size}

            else:
                raise SystemExit(f"unknown case {case!r}")

        if spec.get("warm", True):
            once()
        elif case in ("read", "scan"):  # the store's client, connection and first chunk; not the whole object
            assert store is not None
            with store.open(identifiers, start=0, end=min(size, 1024 * 1024) - 1) as stream:
                stream.read()
            if case == "scan":
                scanner.ping()
        before = _kib("VmHWM")
        reset = reset_peak(os.getpid())
        started = time.perf_counter()
        result.update(once())
        result["seconds"] = time.perf_counter() - started
        after = _kib("VmHWM")
        result["run_peak_kib"] = after if reset else None
        result["peak_kib"] = max(before or 0, after or 0) or None
    return result


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = run_case(spec)
    # ffprobe, clamdscan: the largest of the programs the case ran and waited for (KiB on Linux).
    result["children_peak_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss or None
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
