"""One render of the variants benchmark, in a process of its own (``python -m suite.variants_child SPEC``).

A fresh process per case and per repeat, so that the peak RSS it reports is
this render's and nothing else's. It imports what the case needs, renders a
small file of the same kind once (the warm-up: codecs loaded, PDFium
initialised, the encoders' first call), then renders the benchmark's file
once, measured, writes the output to ``SPEC["out"]`` for the parent to check,
and prints one JSON line:

- ``seconds``: the wall time of the measured render (opening the file
  included, the interpreter's start and the imports not);
- ``peak_kib``: the process's peak RSS over its whole life (``VmHWM`` of
  ``/proc/self/status``), the raw figure; ``base_kib``: the same peak read
  just before the measured render -- the interpreter, the case's libraries
  and the warm-up: the baseline the render is measured above. Not
  ``getrusage()``'s ``ru_maxrss``: Linux carries it over ``fork`` and
  ``execve``, so a child of the benchmark (150 MiB and more) would report the
  parent's peak; ``VmHWM`` belongs to the address space ``execve`` makes;
- ``read``, ``distinct``, ``reads``, ``jumps``: what was read of the file
  through :class:`CountingFile` (bytes handed out, distinct bytes, read
  calls, reads that did not start where the previous one ended) -- ``None``
  for cases whose library opens the file itself (pyvips); ``rchar``: the
  bytes the process read through system calls during the render
  (``/proc/self/io``), for every case;
- ``programs_kib``: the largest peak RSS (``VmHWM``) of the programs the
  render ran (ffmpeg), sampled from ``/proc`` every 5 ms while it ran: not
  part of the Python process's figure;
- ``width``, ``height``, ``size``: the output's.

Cases (``SPEC["case"]``), on ``SPEC["kind"]`` (``image``, ``pdf``, ``dicom``, ``video``):

- ``renderer``: the package's renderer (``SPEC["renderer"]``, a dotted path)
  on the file through ``io.BufferedReader(CountingFile(...), 64 KiB)``, the
  same buffering as the service's ``SeekableReader.buffered()``;
- ``pillow`` (image): the naive thumbnail -- ``Image.open()``, ``load()`` (the
  whole picture decoded), ``resize()`` with Lanczos to the spec's size, saved
  as WebP at the spec's quality;
- ``pyvips`` (image): ``pyvips.Image.thumbnail(path, width, height=height)``
  (libvips' shrink-on-load), ``write_to_buffer(".webp[Q=...]")``;
- ``pdfium`` (pdf): what a project writes by hand with pypdfium2 -- the whole
  file read into memory, ``PdfDocument(data)``, the first page drawn at the
  scale that fits the box, ``to_pil()``, saved;
- ``pydicom`` (dicom): by hand with pydicom -- ``dcmread()`` of the whole
  file (every frame), ``pixel_array`` of the first frame, the window the file
  gives, ``Image.fromarray``, resized with Lanczos, saved.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Any


class CountingFile(io.RawIOBase):
    """A file read through ``readinto``, counting what it hands out: bytes, distinct bytes, reads and jumps."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115  (closed with this object)
        self.name = path  # pydicom's FileDataset keeps it
        self._position = 0
        self._last_end = 0
        self._spans: list[tuple[int, int]] = []
        self.read_bytes = self.reads = self.jumps = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = self._file.seek(offset, whence)
        return self._position

    def readinto(self, buffer: Any) -> int:
        self._file.seek(self._position)
        n = self._file.readinto(buffer) or 0
        if n:
            self.reads += 1
            self.jumps += self._position != self._last_end
            self._spans.append((self._position, self._position + n))
            self.read_bytes += n
            self._position += n
            self._last_end = self._position
        return n

    @property
    def distinct(self) -> int:
        """Bytes of the file read at least once (the union of the spans read)."""
        total, end = 0, -1
        for start, stop in sorted(self._spans):
            if stop <= end:
                continue
            total += stop - max(start, end)
            end = stop
        return total

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class ProgramPeaks:
    """The largest ``VmHWM`` among this process's child processes, sampled every 5 ms while in its ``with``."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ProgramPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            for pid in _children():
                try:
                    with open(f"/proc/{pid}/status") as status:
                        kib = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
                except OSError:  # it ended between the listing and the read
                    continue
                self.peak_kib = max(self.peak_kib, kib)


def _children() -> list[str]:
    pids: list[str] = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as children:
                pids += children.read().split()
        except OSError:
            continue
    return pids


def _rchar() -> int:
    with open("/proc/self/io") as io_file:
        return next(int(line.split()[1]) for line in io_file if line.startswith("rchar:"))


def _peak_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _fit(width: int, height: int, spec: dict[str, Any]) -> tuple[int, int]:
    scale = min(1.0, spec["width"] / width, spec["height"] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _save(image: Any, spec: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    if spec["format"] == "webp":
        image.save(out, "WEBP", quality=spec["quality"], method=4)
    else:
        image.convert("RGB").save(out, "JPEG", quality=spec["quality"])
    return out.getvalue()


def make_case(spec: dict[str, Any]) -> Any:
    """The case's render function: a path in, (encoded bytes, width, height, the CountingFile or None) out."""
    case, variant = spec["case"], spec["spec"]

    if case == "renderer":
        from django.utils.module_loading import import_string

        from django_attachments.processing.renderers import VariantSpec

        renderer = import_string(spec["renderer"])()
        reason = renderer.unavailable_reason()
        if reason:
            raise SystemExit(f"{spec['renderer']} cannot run here: {reason}")
        wanted = VariantSpec(**variant)

        def render(path: str) -> tuple[bytes, int, int, CountingFile | None]:
            counter = CountingFile(path)
            with io.BufferedReader(counter, buffer_size=64 * 1024) as stream:
                rendered = renderer.render(stream, wanted)
            return rendered.data, rendered.width, rendered.height, counter

    elif case == "pillow":
        from PIL import Image

        def render(path: str) -> tuple[bytes, int, int, CountingFile | None]:
            counter = CountingFile(path)
            with io.BufferedReader(counter, buffer_size=64 * 1024) as stream, Image.open(stream) as image:
                image.load()
                small = image.resize(_fit(*image.size, variant), Image.Resampling.LANCZOS)
            return _save(small, variant), small.width, small.height, counter

    elif case == "pyvips":
        import pyvips

        pyvips.cache_set_max(0)  # no operation cache: the measured call does all its work

        def render(path: str) -> tuple[bytes, int, int, CountingFile | None]:
            image = pyvips.Image.thumbnail(path, variant["width"], height=variant["height"])
            data = image.write_to_buffer(f".webp[Q={variant['quality']}]")
            return data, image.width, image.height, None

    elif case == "pdfium":
        import pypdfium2
        from PIL import Image  # noqa: F401  (to_pil's)

        def render(path: str) -> tuple[bytes, int, int, CountingFile | None]:
            counter = CountingFile(path)
            with io.BufferedReader(counter, buffer_size=64 * 1024) as stream:
                data = stream.read()
            document = pypdfium2.PdfDocument(data)
            try:
                page = document[0]
                width, height = page.get_size()
                scale = min(variant["width"] / width, variant["height"] / height)
                bitmap = page.render(scale=scale)
                image = bitmap.to_pil()
                bitmap.close()
                page.close()
            finally:
                document.close()
            return _save(image, variant), image.width, image.height, counter

    elif case == "pydicom":
        import numpy
        import pydicom
        from PIL import Image

        def render(path: str) -> tuple[bytes, int, int, CountingFile | None]:
            counter = CountingFile(path)
            with io.BufferedReader(counter, buffer_size=64 * 1024) as stream:
                dataset = pydicom.dcmread(stream)
            pixels = dataset.pixel_array
            frame = pixels[0] if int(dataset.get("NumberOfFrames", 1) or 1) > 1 else pixels
            values = frame.astype(numpy.float64) * float(dataset.get("RescaleSlope", 1)) + float(
                dataset.get("RescaleIntercept", 0)
            )
            centre, width = float(dataset.WindowCenter), float(dataset.WindowWidth)
            low = centre - width / 2
            grey = numpy.clip((values - low) / width * 255 + 0.5, 0, 255).astype(numpy.uint8)
            image = Image.fromarray(grey)
            small = image.resize(_fit(*image.size, variant), Image.Resampling.LANCZOS)
            return _save(small, variant), small.width, small.height, counter

    elif case == "ffmpeg":
        from PIL import Image

        ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
        scale = f"scale={variant['width']}:{variant['height']}:force_original_aspect_ratio=decrease"

        def render(path: str) -> tuple[bytes, int, int, CountingFile | None]:
            command = [ffmpeg, "-nostdin", "-v", "error", "-ss", "1", "-i", path, "-frames:v", "1", "-vf", scale,
                       "-f", "image2pipe", "-c:v", "png", "pipe:1"]  # fmt: skip
            png = subprocess.run(command, capture_output=True, check=True, timeout=120).stdout
            with Image.open(io.BytesIO(png)) as image:
                image.load()
                return _save(image, variant), image.width, image.height, None

    else:
        raise SystemExit(f"unknown case {case!r}")
    return render


def main() -> None:
    spec = json.loads(sys.argv[1])
    render = make_case(spec)
    render(spec["warm"])  # the warm-up: a small file of the same kind
    base_kib = _peak_kib()
    rchar = _rchar()
    with ProgramPeaks() as programs:
        started = time.perf_counter()
        data, width, height, counter = render(spec["path"])
        seconds = time.perf_counter() - started
    rchar = _rchar() - rchar
    peak_kib = _peak_kib()
    with open(spec["out"], "wb") as out:
        out.write(data)
    result: dict[str, Any] = {
        "case": spec["case"],
        "seconds": seconds,
        "peak_kib": peak_kib,
        "base_kib": base_kib,
        "rchar": rchar,
        "programs_kib": programs.peak_kib or None,
        "width": width,
        "height": height,
        "size": len(data),
        "read": None,
        "distinct": None,
        "reads": None,
        "jumps": None,
    }
    if counter is not None:
        result.update(read=counter.read_bytes, distinct=counter.distinct, reads=counter.reads, jumps=counter.jumps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
