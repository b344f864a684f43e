"""8. Metadata analysis of a photo, a long PDF and a video, against reading the same bytes without analyzing.

For each file, on each store (local disk; S3 on a moto server), three cases,
each in a fresh child process per repeat (see ``suite.processing_child``):

- ``read`` (the anchor): the whole object streamed through ``store.open()``
  in CHUNK_SIZE chunks, as the scan or a download reads it;
- ``process()``: ``services.processing.process(blob_id, stages=["analyze"],
  force=True)``, the pipeline's own path (the blob row, the ranged reads, the
  analyzer, the metadata merged under the row's lock);
- ``analyzer``: the analyzer alone on ``SeekableReader.buffered(...)`` (no
  database), to tell its cost from the service's.

Figures: wall time (median, and min–max over the repeats), its ratio to the
read's, the bytes asked of the store (``SeekableReader.fetched``; for
``process()`` counted on the store adapter's ``open``) as a share of the file
and the ranged reads, the child's peak RSS (its whole life: Django set up,
warm-up run, measured run; the largest over the repeats) and that peak above a
baseline child per store that sets Django up, imports the package, makes the
store's adapter (on S3, its boto3 client) and asks whether the object exists,
reading nothing. ffprobe (the
media analyzer) runs as a program of its own: its peak RSS is reported apart.

The video rows need ``processing/analyzers/media.py`` committed (the media
analyzer) and ffmpeg; else they are skipped with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import GIB, MIB, log
from .context import Context
from .pipeline import (
    IMAGE_ANALYZER,
    MEDIA_ANALYZER,
    PDF_ANALYZER,
    fmt_bytes,
    med,
    media_analyzer_missing,
    mib,
    mib_range,
    percent,
    pipeline,
    spread,
)
from .report import Table, fmt_ratio, fmt_size
from .samples import ffmpeg_missing, make_jpegs, make_pdfs, make_video, mark_video

FULL = {"jpeg": (6000, 4000), "pdf": 300, "video": GIB, "segment": 4}
QUICK = {"jpeg": (2000, 1500), "pdf": 30, "video": 8 * MIB, "segment": 1}
CASES = ("read", "pipeline", "analyzer")
SHOWN = {"read": "read (anchor)", "pipeline": "process()", "analyzer": "analyzer"}
#: A video's analysis reads "headers only" when it asks the store for at most this share of the file.
HEADERS_ONLY = 0.05


def bench_analyze(ctx: Context) -> None:
    started = time.perf_counter()
    sizes = QUICK if ctx.args.quick else FULL
    no_media = media_analyzer_missing()
    no_video = no_media or ffmpeg_missing()
    analyzers = [IMAGE_ANALYZER, PDF_ANALYZER] + ([] if no_media else [MEDIA_ANALYZER])
    table = Table(
        "analyze",
        "Metadata analysis against reading the file",
        "Per file and store: the whole object streamed through `store.open()` (the anchor), "
        '`processing.process(blob_id, stages=["analyze"], force=True)`, and the analyzer alone on '
        "`SeekableReader.buffered()`; each a fresh process per repeat, warmed up by one untimed run (the read: "
        "by its first MiB). `vs read` is the median time over the read's. `fetched` is what the case asked of "
        "the store (ranged reads), `reads` the ranged requests. `RSS MiB` is the child's peak over its life, the "
        "largest over the repeats (the smallest in brackets where they differ); `RSS+` that peak above the "
        "baseline child of the store (Django set up, the package imported, the store's adapter made and asked "
        "whether the object exists; nothing read).",
        ["file", "size", "store", "case", "s (median)", "s (min–max)", "vs read", "fetched", "of file", "reads",
         "RSS MiB", "RSS+ MiB", "ffprobe MiB"],
    )  # fmt: skip
    with pipeline(ctx, "analyze", analyzers) as env:
        labels = list(env.stores)
        if env.no_s3:
            table.notes.append(env.no_s3)
        files: list[Sample] = []
        made = time.perf_counter()
        width, height = sizes["jpeg"]
        expect: dict[str, Any] = {
            "image.width": width,
            "image.height": height,
            "image.format": "JPEG",
            "image.orientation": 6,
        }
        for label, path in make_jpegs(env.workdir, width, height, labels).items():
            files.append(Sample("jpeg", label, IMAGE_ANALYZER, expect, path))
        pages = sizes["pdf"]
        for label, path in make_pdfs(env.workdir, pages, labels).items():
            files.append(Sample("pdf", label, PDF_ANALYZER, {"pdf.pages": pages}, path))
        video = None
        if no_video:
            reason = f"video: skipped: {no_video}"
            log(f"  {reason}")
            table.notes.append(reason)
        else:
            video = make_video(env.workdir, sizes["video"], segment_seconds=sizes["segment"])
        log(f"  inputs made in {time.perf_counter() - made:.1f} s")

        uploading = time.perf_counter()
        for sample in files:
            sample.blob = env.attach(sample.path, sample.label)
            sample.path.unlink()
        if video is not None:
            expect = {"media.width": 1920, "media.height": 1080, "media.has_video": True, "media.has_audio": True}
            for label in labels:
                mark_video(video, label)
                sample = Sample("video", label, MEDIA_ANALYZER, expect, video)
                sample.blob = env.attach(video, label)
                files.append(sample)
            video.unlink()
        log(f"  uploaded (and analyzed on upload) in {time.perf_counter() - uploading:.1f} s")
        for sample in files:
            blob = sample.blob
            ctx.check(
                blob.analysis_state == "analyzed" and sample.matches(blob.metadata),
                f"{sample.kind} on {sample.label}: analysis after upload {blob.analysis_state}, "
                f"{blob.analysis_errors}, metadata {blob.metadata}",
            )
            log(f"  {sample.kind} on {sample.label}: {fmt_size(blob.size)} ({blob.content_type}), analyzed on upload")

        results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        baselines: dict[str, list[int]] = {label: [] for label in labels}
        for repeat in range(ctx.args.repeat):
            for label in labels:
                blob = next(sample.blob for sample in files if sample.label == label)
                base = env.child("baseline", alias=blob.storage, identifiers=blob.storage_identifiers)
                if ctx.check(bool(base and base.get("exists") and base.get("peak_kib")), f"baseline {label}: {base}"):
                    assert base is not None
                    baselines[label].append(base["peak_kib"])
            for sample in files:
                blob = sample.blob
                order = CASES if repeat % 2 == 0 else tuple(reversed(CASES))
                for case in order:
                    spec: dict[str, Any] = {
                        "alias": blob.storage,
                        "identifiers": blob.storage_identifiers,
                        "size": blob.size,
                    }
                    if case == "read":
                        spec["warm"] = False
                    elif case == "pipeline":
                        spec["blob_id"] = str(blob.pk)
                    else:
                        spec["analyzer"] = sample.analyzer
                    got = env.child(case, **spec)
                    if got is None:
                        continue
                    check_case(ctx, sample, case, got)
                    results.setdefault((sample.kind, sample.label, case), []).append(got)
            log(f"  repeat {repeat + 1}/{ctx.args.repeat} done")

        base_kib = {label: med([float(b) for b in peaks]) for label, peaks in baselines.items()}
        for sample in files:
            kind, label, size = sample.kind, sample.label, sample.blob.size
            base = base_kib[label]
            read_t = med([r["seconds"] for r in results.get((kind, label, "read"), [])])
            for case in CASES:
                runs = results.get((kind, label, case), [])
                if not runs:
                    continue
                times = [r["seconds"] for r in runs]
                t = med(times)
                peaks = [r["peak_kib"] for r in runs if r.get("peak_kib")]
                fetched = med([r["fetched"] for r in runs])
                requests = med([r["requests"] for r in runs])
                children = [r["children_peak_kib"] for r in runs if r.get("children_peak_kib")]
                table.rows.append([
                    kind, fmt_size(size) if size % MIB == 0 else fmt_bytes(size), label, SHOWN[case],
                    f"{t:.4f}" if t is not None else "-", spread(times, 4),
                    "-" if case == "read" else fmt_ratio(t, read_t),
                    "-" if fetched is None else fmt_bytes(fetched), percent(fetched, size),
                    "-" if requests is None else f"{requests:.0f}",
                    mib_range(peaks), mib(max(peaks) - base if peaks and base else None),
                    mib(max(children)) if kind == "video" and children else "-",
                ])  # fmt: skip
                if case == "pipeline" and t is not None and read_t:
                    if kind in ("jpeg", "pdf"):
                        ctx.target(
                            f"analyze {kind} {fmt_bytes(size)} on {label}: process() / read",
                            "< 10%",
                            percent(t, read_t),
                            t < 0.1 * read_t,
                        )
                    elif fetched is not None:
                        ctx.target(
                            f"analyze video {fmt_bytes(size)} on {label}: fetched / size",
                            f"headers only (<= {HEADERS_ONLY:.0%})",
                            percent(fetched, size),
                            fetched <= HEADERS_ONLY * size if size >= 256 * MIB else None,
                        )
        table.notes.append(
            "baseline child peak RSS: "
            + ", ".join(f"{label} {mib(kib)} MiB" for label, kib in base_kib.items())
            + f" (median of {ctx.args.repeat}); times: median of {ctx.args.repeat} run(s)"
        )
    log(f"  done in {time.perf_counter() - started:.1f} s")
    ctx.add(table)


@dataclass
class Sample:
    """One input file on one store: the analyzer that reads it, the values it must find, its blob once uploaded."""

    kind: str
    label: str
    analyzer: str
    expect: dict[str, Any]
    path: Path
    blob: Any = None

    def matches(self, metadata: dict[str, Any]) -> bool:
        return all(metadata.get(key) == value for key, value in self.expect.items())


def check_case(ctx: Context, sample: Sample, case: str, got: dict[str, Any]) -> None:
    where = f"analyze {sample.kind} on {sample.label}, {case}"
    size = sample.blob.size
    if case == "read":
        ctx.check(got.get("received") == size, f"{where}: read {got.get('received')} of {size} bytes")
        return
    ok = sample.matches(got.get("metadata") or {})
    if case == "pipeline":
        outcome = got.get("outcome") or {}
        ok = ok and outcome.get("ran") == ["analyze"] and outcome.get("analysis") == "analyzed"
    ctx.check(ok, f"{where}: {got.get('outcome')} {got.get('errors')} {got.get('metadata')}")
