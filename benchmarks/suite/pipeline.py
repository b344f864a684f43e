"""What the processing benchmarks (``analyze``, ``scan``) share: their stores, blobs made by the services, children.

Each benchmark starts a moto server of its own (so that its gigabyte objects
leave with it) and adds an S3 alias for it beside the local disk
(``default``), by ``override_settings`` here and in every child process
(:func:`suite.processing_child.overrides`). Blobs are made by
``services.attach()``, the upload's own path; each case is measured in a
child process (:func:`run_child`), one per case and per repeat.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import BENCH_DIR, MIB, REPO_ROOT, log
from .context import Context
from .processes import moto_server
from .processing_child import S3_ALIAS, overrides

#: The analyzers the processing benchmarks configure (the media one is added where it exists).
IMAGE_ANALYZER = "django_attachments.processing.analyzers.ImageAnalyzer"
PDF_ANALYZER = "django_attachments.processing.analyzers.PdfAnalyzer"
MEDIA_ANALYZER = "django_attachments.processing.analyzers.media.MediaAnalyzer"
MEDIA_MODULE = "src/django_attachments/processing/analyzers/media.py"


@dataclass
class Pipeline:
    """The stores a processing benchmark uses (label -> STORAGES alias) and the spec every child gets."""

    ctx: Context
    workdir: Path
    spec: dict[str, Any]
    stores: dict[str, str] = field(default_factory=dict)
    #: Why there is no S3 store (boto3 or django-storages missing), or None.
    no_s3: str | None = None

    def attach(self, path: Path, label: str) -> Any:
        """``services.attach()`` of the file to the store ``label``; its Blob (the upload's commit has run)."""
        from django.conf import settings
        from django.test import override_settings

        from django_attachments import services
        from django_attachments.models import Blob

        alias = self.stores[label]
        with (
            override_settings(DJANGO_ATTACHMENTS={**settings.DJANGO_ATTACHMENTS, "STORAGE": alias}),
            open(path, "rb") as source,
        ):
            attachment = services.attach(source, owner_type="thing", owner_id=self.ctx.thing_id, filename=path.name)
        return Blob.objects.get(pk=attachment.blob_id)

    def child(self, case: str, **spec: Any) -> dict[str, Any] | None:
        return run_child(self.ctx, {**self.spec, "case": case, **spec})


@contextlib.contextmanager
def pipeline(ctx: Context, name: str, analyzers: list[str]) -> Iterator[Pipeline]:
    """The local disk and, where boto3 is installed, an S3 bucket on a moto server of this benchmark's own."""
    from django.test import override_settings

    workdir = ctx.workdir / name
    workdir.mkdir()
    spec: dict[str, Any] = {"analyzers": analyzers}
    with contextlib.ExitStack() as stack:
        no_s3 = None
        try:
            import boto3
            import storages.backends.s3  # noqa: F401
        except ImportError as exc:
            no_s3 = f"no S3 rows: {exc.name} is not installed"
            log(f"  {no_s3}")
        else:
            endpoint = stack.enter_context(moto_server(workdir / "moto"))
            bucket = f"bench-{name}-{uuid.uuid4().hex[:8]}"
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
            spec.update(s3_endpoint=endpoint, s3_bucket=bucket)
        stack.enter_context(override_settings(**overrides(spec)))
        stores = {"disk": "default"}
        if no_s3 is None:
            stores["s3"] = S3_ALIAS
        yield Pipeline(ctx, workdir, spec, stores, no_s3)


def child_env() -> dict[str, str]:
    path = [str(BENCH_DIR), str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}


def child_json(ctx: Context, argv: list[str], what: str, timeout: float) -> dict[str, Any] | None:
    """Run ``python argv`` in a fresh process (in the benchmarks' folder, with the suite's path); the JSON of the
    last line it printed, or None (a failed sanity check naming ``what``)."""
    done = subprocess.run(
        [sys.executable, *argv], cwd=BENCH_DIR, env=child_env(), capture_output=True, text=True, timeout=timeout
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        ctx.check(False, f"{what}: child exited {done.returncode}: {done.stderr[-2000:]}")
        return None
    return json.loads(lines[-1])


def run_child(ctx: Context, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Run one case in a fresh process (``suite.processing_child``); its figures, or None (a failed sanity check)."""
    return child_json(ctx, ["-m", "suite.processing_child", json.dumps(spec)], f"child {spec['case']}", 3600)


def media_analyzer_missing() -> str | None:
    """Why the video rows are skipped: no media analyzer in git yet (in a checkout), or none importable."""
    import shutil

    if (REPO_ROOT / ".git").exists() and shutil.which("git"):
        committed = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", MEDIA_MODULE], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        if not committed:
            return "no media analyzer yet"
    try:
        from django.utils.module_loading import import_string

        analyzer = import_string(MEDIA_ANALYZER)()
    except ImportError:
        return "no media analyzer yet"
    return analyzer.unavailable_reason()


# -- figures -------------------------------------------------------------------------------


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def spread(values: list[float], digits: int = 3) -> str:
    """``min–max`` of the repeats (one value alone: itself)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def mib_range(values: list[int]) -> str:
    """Largest peak over the repeats, with the smallest where they differ by 0.5 MiB or more."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{high / 1024:.1f}" if high - low < 512 else f"{high / 1024:.1f} ({low / 1024:.1f})"


def fmt_bytes(n: float) -> str:
    if n >= 10 * MIB:
        return f"{n / MIB:,.0f} MiB"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    return f"{n / 1024:,.0f} KiB"


def percent(part: float | None, whole: float | None) -> str:
    if part is None or not whole:
        return "-"
    share = 100 * part / whole
    return f"{share:.1f}%" if share >= 0.1 else f"{share:.2f}%"
