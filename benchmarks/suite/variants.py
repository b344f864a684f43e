"""10. Variants: rendering thumbnails and previews, and asking for them over HTTP.

Two halves; this module runs both and measures the first:

- **Renders** (``variants-render`` table): each case in a fresh child process
  per repeat (:mod:`suite.variants_child`), warmed up on a small file of the
  same kind, so that its wall time is the render's and its peak RSS
  (``VmHWM``) its own. The package's renderer against what a project
  writes by hand, on the same file, for the variant ``thumb`` of the example
  project (fit 256 x 256, WebP 80):

  - a 24-megapixel JPEG (6000 x 4000, gradients under noise, about 12 MB):
    ``ImageRenderer`` -- anchors: naive Pillow (``open``, ``load`` of the
    whole picture, ``resize`` with Lanczos, ``save``) and pyvips'
    ``Image.thumbnail`` of the file (libvips' shrink-on-load);
  - the first page of a 300-page PDF: ``PdfRenderer`` -- anchor: pypdfium2
    by hand (the whole file read into memory, ``PdfDocument(data)``, the page
    drawn to fit, saved);
  - a 512 x 512 16-bit DICOM frame, alone (a CT slice) and first of 200 in one
    multi-frame file: ``DicomRenderer`` -- anchor: pydicom by hand
    (``dcmread`` of the whole file, ``pixel_array``, the file's window,
    resized, saved);
  - a still of a 256 MiB 1080p MP4 (``samples.make_video``: lossless H.264,
    its index at the end): ``VideoRenderer`` (ffmpeg served the stream over
    127.0.0.1) -- anchor: ffmpeg by hand on the file's path (``-ss 1``, one
    frame, scaled).

  Each renderer reads through a counting reader (64 KiB buffered, as the
  service's ``SeekableReader.buffered``): the bytes read of the file, the
  distinct ones and the read calls show what is not read. Sanity checks: every
  output decodes as WebP at the size the spec gives (the anchors': within a
  pixel), is not blank, and looks like the renderer's (mean difference per
  channel under :data:`SAME_PICTURE` of 255, the anchor resized to the
  renderer's size).

- **Over HTTP** (:mod:`suite.variants_serving`): 200 concurrent first
  requests for a lazy variant (rendered once, every client the same bytes),
  and a stored variant served against a download of an original of its size.

A renderer whose module is not committed yet, or whose library is missing, is
skipped with the reason; so is pyvips where it is not installed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import MIB, REPO_ROOT, log
from .context import Context
from .pipeline import child_json, fmt_bytes, med, mib, mib_range, percent, spread
from .report import Table
from .samples import make_pdfs, make_video
from .variants_samples import make_clip, make_dicom, make_photo

#: ``frames``: the DICOM files' frame counts (one frame alone, then the first of many); ``video``: the MP4's size
#: (0: a 3-second 640 x 360 clip); ``rounds``: bursts of first requests per mode, ``modes``: the Tasks backends
#: they run on; ``requests``: per serving round.
FULL = {
    "photo": (6000, 4000), "pages": 300, "frames": (1, 200), "video": 256 * MIB, "repeat": 5,
    "clients": 200, "rounds": 3, "modes": ("inline", "worker"), "requests": 200,
}  # fmt: skip
QUICK = {
    "photo": (2000, 1500), "pages": 30, "frames": (20,), "video": 0, "repeat": 2,
    "clients": 40, "rounds": 1, "modes": ("inline",), "requests": 10,
}  # fmt: skip
#: The example project's eager variant, as the renderers' children are given it.
THUMB = {"operation": "fit", "width": 256, "height": 256, "format": "webp", "quality": 80}
#: Mean absolute difference per channel (0-255) under which an anchor's output is "the same picture".
SAME_PICTURE = 12.0
#: The issue's targets for the photo's thumbnail (the renderer against naive Pillow; its peak RSS).
TIME_TARGET = 0.25
RSS_TARGET_MIB = 64

RENDERERS = "django_attachments.processing.renderers"


@dataclass(frozen=True)
class Kind:
    """A kind of file: the renderer that reads it (dotted path, module file) and the cases measured on it."""

    name: str
    renderer: str
    module: str
    cases: tuple[str, ...]  # the renderer first, then its anchors (the first anchor: the ratio's)


KINDS = {
    "image": Kind("image", f"{RENDERERS}.image.ImageRenderer", "image.py", ("renderer", "pillow", "pyvips")),
    "pdf": Kind("pdf", f"{RENDERERS}.pdf.PdfRenderer", "pdf.py", ("renderer", "pdfium")),
    "dicom": Kind("dicom", f"{RENDERERS}.dicom.DicomRenderer", "dicom.py", ("renderer", "pydicom")),
    "video": Kind("video", f"{RENDERERS}.video.VideoRenderer", "video.py", ("renderer", "ffmpeg")),
}
#: What a case's child process is, by the kind of file (its memory is sampled apart from the Python process's).
CHILD_PROCESS = {"video": "ffmpeg", "pdf": "the PDF renderer's child process"}
SHOWN = {
    "renderer": "renderer",
    "pillow": "naive Pillow (anchor)",
    "pyvips": "pyvips thumbnail (anchor 2)",
    "pdfium": "pypdfium2 by hand (anchor)",
    "pydicom": "pydicom by hand (anchor)",
    "ffmpeg": "ffmpeg by hand (anchor)",
}


@dataclass
class Sample:
    """One input: its kind, label, path, the warm-up file of its kind, and what its output must be."""

    kind: Kind
    label: str
    path: Path
    warm: Path
    expect: tuple[int, int]
    #: The most of the file the renderer may read (None: no limit checked).
    read_limit: int | None = None


def bench_variants(ctx: Context) -> None:
    from .variants_serving import bench_serving  # here: it imports this module's sizes

    started = time.perf_counter()
    bench_rendering(ctx)
    log(f"  renders done in {time.perf_counter() - started:.1f} s")
    bench_serving(ctx)
    log(f"  done in {time.perf_counter() - started:.1f} s")


def repeats(ctx: Context) -> int:
    sizes = QUICK if ctx.args.quick else FULL
    return ctx.args.repeat if getattr(ctx.args, "repeat_explicit", False) else sizes["repeat"]


def missing(kind: Kind) -> str | None:
    """Why a kind's renderer is skipped: its module not committed yet (in a checkout), or it cannot run here."""
    import shutil

    path = REPO_ROOT / "src/django_attachments/processing/renderers" / kind.module
    if (REPO_ROOT / ".git").exists() and shutil.which("git"):
        committed = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", str(path)], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        if not committed:
            return f"{kind.renderer.rsplit('.', 1)[1]} is not committed yet"
    from django.utils.module_loading import import_string

    try:
        renderer = import_string(kind.renderer)()
    except ImportError:
        return f"{kind.renderer} does not import"
    return renderer.unavailable_reason()


def make_samples(ctx: Context, folder: Path, table: Table) -> list[Sample]:
    from django_attachments.processing.renderers import VariantSpec
    from django_attachments.processing.renderers.base import geometry

    sizes = QUICK if ctx.args.quick else FULL
    spec = VariantSpec(**THUMB)
    samples: list[Sample] = []
    for kind in KINDS.values():
        reason = missing(kind)
        if reason:
            log(f"  {kind.name}: skipped: {reason}")
            table.notes.append(f"{kind.name}: skipped: {reason}")
            continue
        if kind.name == "image":
            width, height = sizes["photo"]
            photo, warm = folder / "photo.jpg", folder / "warm.jpg"
            photo.write_bytes(make_photo(width, height))
            warm.write_bytes(make_photo(320, 240))
            label = f"JPEG {width} x {height} ({width * height / 1e6:.0f} MP)"
            samples.append(Sample(kind, label, photo, warm, geometry(width, height, spec)[0]))
        elif kind.name == "pdf":
            pages = sizes["pages"]
            document = make_pdfs(folder, pages, ["variants"])["variants"]
            warm = make_pdfs(folder, 2, ["warm"])["warm"]
            # The example's pages are A4 (595 x 842 points): fit 256 draws 181 x 256.
            samples.append(Sample(kind, f"PDF, {pages} pages", document, warm, geometry(595, 842, spec)[0]))
        elif kind.name == "video":
            warm = folder / "warm.mp4"
            make_clip(warm, 320, 240, 2)
            if sizes["video"]:
                video, (width, height) = make_video(folder, sizes["video"], segment_seconds=4), (1920, 1080)
            else:
                video, (width, height) = folder / "clip.mp4", (640, 360)
                make_clip(video, width, height, 3)
            label = f"MP4 {width} x {height}, {fmt_bytes(video.stat().st_size)}"
            samples.append(Sample(kind, label, video, warm, geometry(width, height, spec)[0]))
        else:
            warm = folder / "warm.dcm"
            make_dicom(warm, 1, 64)
            for frames in sizes["frames"]:
                path = folder / f"ct-{frames}.dcm"
                frame = make_dicom(path, frames)
                # The header, the frame, and a 64 KiB buffer's overrun on each side: never the other frames.
                limit = (path.stat().st_size - frames * frame) + frame + 2 * 64 * 1024
                label = "DICOM 512 x 512 x 16 bit" + (f", first of {frames} frames" if frames > 1 else ", 1 frame")
                samples.append(Sample(kind, label, path, warm, (256, 256), limit))
    return samples


def run_case(ctx: Context, sample: Sample, case: str, out: Path) -> dict[str, Any] | None:
    spec = {
        "case": case,
        "kind": sample.kind.name,
        "renderer": sample.kind.renderer,
        "spec": THUMB,
        "path": str(sample.path),
        "warm": str(sample.warm),
        "out": str(out),
    }
    return child_json(ctx, ["-m", "suite.variants_child", json.dumps(spec)], f"variants: {sample.label}, {case}", 600)


def check_output(ctx: Context, sample: Sample, case: str, got: dict[str, Any], out: Path, reference: Path) -> None:
    """The output decodes as WebP at the expected size, is not blank, and is the renderer's picture."""
    from PIL import Image, ImageChops, ImageStat

    where = f"variants: {sample.label}, {case}"
    try:
        with Image.open(out) as image:
            image.load()
            fmt, size, picture = image.format, image.size, image.convert("RGB")
    except Exception as exc:
        ctx.check(False, f"{where}: the output does not decode ({exc})")
        return
    want = sample.expect
    close = all(abs(a - b) <= (0 if case == "renderer" else 1) for a, b in zip(size, want, strict=True))
    ctx.check(fmt == "WEBP" and close, f"{where}: {fmt} {size[0]} x {size[1]}, expected WEBP {want[0]} x {want[1]}")
    ctx.check((got["width"], got["height"]) == size, f"{where}: reported {got['width']} x {got['height']}, is {size}")
    spread_ = max(ImageStat.Stat(picture).stddev)
    ctx.check(spread_ > 2, f"{where}: the output is blank (standard deviation {spread_:.1f})")
    if case != "renderer" and reference.exists():
        with Image.open(reference) as ref:
            ref_rgb = ref.convert("RGB")
        diff = ImageStat.Stat(ImageChops.difference(ref_rgb, picture.resize(ref_rgb.size))).mean
        ctx.check(
            max(diff) < SAME_PICTURE,
            f"{where}: differs from the renderer's picture by {max(diff):.1f}/255 on average (over {SAME_PICTURE})",
        )
    if case == "renderer":
        ctx.check(bool(got.get("read")), f"{where}: read nothing through the counting reader")
        if sample.read_limit is not None and got.get("distinct") is not None:
            ctx.check(
                got["distinct"] <= sample.read_limit,
                f"{where}: read {got['distinct']:,} distinct bytes, more than the header and one frame "
                f"({sample.read_limit:,})",
            )


def bench_rendering(ctx: Context) -> None:
    count = repeats(ctx)
    table = Table(
        "variants-render",
        "Variants: renders against what a project writes by hand",
        "The example project's `thumb` (fit 256 x 256, WebP 80) of each file; each case a fresh process per "
        "repeat, warmed up on a small file of its kind. `s` is the measured render's wall time (opening the file "
        "included); `vs anchor` the render's time over the first anchor's in the same repeat, median and "
        "min–max of those paired ratios. `read` is what the case read of the file through a counting reader "
        "(bytes handed out; `distinct`: bytes read at least once; pyvips opens the file itself: `-`), `reads` the "
        "read calls. `RSS MiB` is the child's peak (`VmHWM`: interpreter, libraries, warm-up and render), the "
        "largest over the repeats (the smallest in brackets where they differ); `base` the same peak just before "
        "the measured render (median); `RSS+` the render's rise above it, the largest over the repeats.",
        ["file", "size", "case", "s (median)", "s (min–max)", "vs anchor", "read", "distinct", "of file", "reads",
         "RSS MiB", "base MiB", "RSS+ MiB", "output"],
    )  # fmt: skip
    folder = ctx.workdir / "variants-render"
    folder.mkdir()
    made = time.perf_counter()
    samples = make_samples(ctx, folder, table)
    log(f"  inputs made in {time.perf_counter() - made:.1f} s")
    try:
        import pyvips  # noqa: F401
    except ImportError:
        no_vips = "pyvips is not installed: its anchor is skipped"
        log(f"  {no_vips}")
        table.notes.append(no_vips)
        skip = {"pyvips"}
    else:
        skip = set()

    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for repeat in range(count):
        for index, sample in enumerate(samples):
            cases = [case for case in sample.kind.cases if case not in skip]
            order = cases if repeat % 2 == 0 else list(reversed(cases))
            reference = folder / f"out-{index}-renderer.webp"
            for case in order:
                out = folder / f"out-{index}-{case}.webp"
                got = run_case(ctx, sample, case, out)
                if got is None:
                    continue
                got["repeat"] = repeat
                results.setdefault((sample.label, case), []).append(got)
            for case in order:  # checked once all of the repeat's outputs exist (the reference among them)
                out = folder / f"out-{index}-{case}.webp"
                runs = results.get((sample.label, case), [])
                if runs and out.exists():
                    check_output(ctx, sample, case, runs[-1], out, reference)
                    out.unlink()
            reference.unlink(missing_ok=True)
        log(f"  renders: repeat {repeat + 1}/{count} done")

    for sample in samples:
        size = sample.path.stat().st_size
        anchor = sample.kind.cases[1]
        anchor_runs = results.get((sample.label, anchor), [])
        for case in sample.kind.cases:
            runs = results.get((sample.label, case), [])
            if not runs:
                continue
            times = [r["seconds"] for r in runs]
            ratios = paired(runs, anchor_runs) if case != anchor else []
            peaks = [r["peak_kib"] for r in runs]
            rises = [r["peak_kib"] - r["base_kib"] for r in runs]
            base = med([float(r["base_kib"]) for r in runs])
            read = runs[-1]["read"]
            table.rows.append([
                sample.label, fmt_bytes(size), SHOWN[case], f"{med(times):.3f}", spread(times),
                ratio_text(ratios) if case != anchor else "-",
                "-" if read is None else fmt_bytes(read),
                "-" if read is None else fmt_bytes(runs[-1]["distinct"]),
                "-" if read is None else percent(runs[-1]["distinct"], size),
                "-" if read is None else str(runs[-1]["reads"]),
                mib_range(peaks), mib(base), mib(max(rises)),
                f"{runs[-1]['width']} x {runs[-1]['height']}, {runs[-1]['size']:,} B",
            ])  # fmt: skip
            if case == "renderer" and sample.kind.name == "image":
                full = not ctx.args.quick  # the targets are for 24 megapixels
                ctx.target(
                    f"thumbnail of a {sample.label}: ImageRenderer time / naive Pillow",
                    f"<= {TIME_TARGET:.2f}",
                    ratio_text(ratios),
                    statistics.median(ratios) <= TIME_TARGET if ratios and full else None,
                )
                ctx.target(
                    f"thumbnail of a {sample.label}: ImageRenderer peak RSS",
                    f"< {RSS_TARGET_MIB} MiB",
                    f"{max(peaks) / 1024:.1f} MiB (+{max(rises) / 1024:.1f} above base)",
                    max(peaks) < RSS_TARGET_MIB * 1024 if full else None,
                )
                vips = paired(runs, results.get((sample.label, "pyvips"), []))
                if vips:
                    table.notes.append(f"{sample.label}: ImageRenderer / pyvips thumbnail: {ratio_text(vips)}")
            single = sample.kind.name == "dicom" and sample.read_limit is not None and sample.read_limit >= size
            if case == "renderer" and sample.kind.name != "image" and read is not None and not single:
                ctx.target(
                    f"{sample.label}: what the renderer reads",
                    "the header and the first frame only" if sample.kind.name == "dicom" else "not the whole file",
                    f"{percent(runs[-1]['distinct'], size)} of {fmt_bytes(size)}",
                    runs[-1]["distinct"] < size
                    if sample.read_limit is None
                    else runs[-1]["distinct"] <= sample.read_limit,
                )
            programs = [r["programs_kib"] for r in runs if r.get("programs_kib")]
            if programs:
                table.notes.append(
                    f"{sample.label}, {SHOWN[case]}: {CHILD_PROCESS.get(sample.kind.name, 'its child process')}'s "
                    f"peak RSS {mib_range(programs)} MiB (sampled every 5 ms; "
                    "not in the RSS columns, which are the Python process's)"
                )
    table.notes.append(
        f"{count} repeat(s); the anchors' outputs are checked against the renderer's picture (mean difference per "
        f"channel under {SAME_PICTURE:.0f}/255)"
    )
    ctx.add(table)
    for path in folder.iterdir():
        path.unlink()


def paired(runs: list[dict[str, Any]], anchors: list[dict[str, Any]]) -> list[float]:
    """Per repeat, this case's time over the anchor's (measured next to each other)."""
    by_repeat = {a["repeat"]: a["seconds"] for a in anchors}
    return [r["seconds"] / by_repeat[r["repeat"]] for r in runs if by_repeat.get(r["repeat"])]


def ratio_text(ratios: list[float]) -> str:
    if not ratios:
        return "-"
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}x"
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}–{max(ratios):.2f})"
