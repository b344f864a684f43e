"""Previews of a PDF's first page with pypdfium2 (PDFium, the PDF engine of Chromium).

::

    PdfRenderer().render(stream, VariantSpec("fit", 256, 256, "webp"))
    # Rendered(data=b"RIFF...", width=181, height=256, content_type="image/webp")

The first page is drawn as a viewer shows it (its ``/Rotate`` applied, its
annotations drawn, on white), at the scale that makes it fit or fill the
spec's box: a page is drawings, not pixels, so it is drawn at the variant's
size whatever its own (a ``fill`` draws only the part of the page the crop
keeps). The bitmap is thus about the box, never more than ``max_pixels``;
:func:`~.base.finish` then encodes it.

What is read (the stream must be seekable): PDFium reads the file through
callbacks, block by block, where it needs: the trailer and cross-reference
table at the end, the catalog, the page tree down to the first page, and
that page's objects (its contents, fonts and images). The other pages are
never read -- of a 3 MB PDF of 300 pages, about 28 KB. A file whose
cross-reference table is damaged is rebuilt by PDFium from a scan of the
whole file, read in blocks.

A PDF encrypted with a user password is refused (:class:`~.base.RenderError`):
it cannot be opened without asking for it. One encrypted with an empty user
password (an owner password only, restricting printing or copying) opens, as
viewers open it.

Isolation (the default): PDFium, a C library, cannot be interrupted, and a
hostile file may make it loop or crash. So the page is drawn in a child
process (:mod:`.pdf_child`, one per process), which asks this one for each
block PDFium reads (``max_read_bytes`` at the most), and is killed after
``timeout`` seconds (:class:`~.base.RenderTimeout`,
retried later by the service). A child killed by a signal (PDFium crashed)
is a refusal of the file. The child is kept for the next PDFs (starting one
costs about a third of a second); ``isolate=False`` draws in this process instead (:meth:`PdfRenderer.render_here`).

PDFium is not thread-safe: every call this renderer makes into it in this
process, in any thread, holds this module's :data:`PDFIUM_LOCK` (code of a
project's own that uses pypdfium2 in the same process should take it too),
and every object PDFium makes is closed before the lock is released.
"""

from __future__ import annotations

import ctypes
import io
import math
import threading
from typing import IO, Any, cast

from ..analyzers.base import ReadGuard
from .base import (
    Rendered,
    Renderer,
    RenderError,
    VariantSpec,
    finish,
    positive_int,
    require,
)

#: The most pixels drawn: the largest box a spec can ask for.
DEFAULT_MAX_PIXELS = 4096 * 4096
#: The most seconds the child process that draws a page may take.
DEFAULT_TIMEOUT = 30.0
#: The most bytes served to the child process (a damaged file is rebuilt by reading it all).
DEFAULT_MAX_READ_BYTES = 1024 * 1024 * 1024

CORRUPT = "The file is not a readable PDF: it is corrupt or truncated."
ENCRYPTED = "The PDF is encrypted with a password; it cannot be previewed without it."
NO_PAGES = "The PDF has no pages."
#: PDFium's error codes (FPDF_GetLastError) that say something about the file.
_PASSWORD = 4
_SECURITY = 5

#: Serializes every use of PDFium in the process.
PDFIUM_LOCK = threading.Lock()


def _pypdfium2() -> Any:
    require("PdfRenderer", "preview", "pypdfium2", "PIL")
    import pypdfium2

    return pypdfium2


class _LoadFailed(Exception):
    """PDFium could not open the document; ``code`` is its error (FPDF_GetLastError)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"PDFium error {code}")
        self.err_code = code


def _block_reader(guard: ReadGuard) -> Any:
    """PDFium's read callback over the stream: an error is kept by the guard, never raised.

    An exception raised inside a ctypes callback cannot cross PDFium (it
    would be printed, and the read count as failed): the callback reports the
    failure itself, and the caller raises the guard's error once PDFium has
    returned.
    """

    def read_block(param: Any, position: int, buffer: Any, size: int) -> int:
        try:
            guard.seek(position)
            data = guard.read(size)
        except Exception:
            return 0
        if len(data) != size:
            return 0
        ctypes.memmove(buffer, data, size)
        return 1

    return read_block


class PdfRenderer(Renderer):
    """Previews of the first page of PDF documents, with PDFium.

    ``max_pixels``: the most pixels drawn; a variant whose box holds more
    comes out smaller, of the same shape (PDFium's bitmap takes 3 bytes a
    pixel). ``timeout``: the most seconds the child process may take;
    ``max_read_bytes``: the most bytes served to it; ``isolate``: whether to
    draw in a child process at all (see the module).
    """

    name = "pdf"
    digest_options = ("max_pixels", "max_read_bytes")
    version = "1"
    content_types = frozenset({"application/pdf"})

    def __init__(
        self,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        timeout: float = DEFAULT_TIMEOUT,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
        isolate: bool = True,
    ) -> None:
        self.max_pixels = positive_int("max_pixels", max_pixels)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}.")
        self.timeout = float(timeout)
        self.max_read_bytes = positive_int("max_read_bytes", max_read_bytes)
        if not isinstance(isolate, bool):
            raise ValueError(f"isolate must be True or False, not {isolate!r}.")
        self.isolate = isolate

    def require_libraries(self) -> None:
        _pypdfium2()

    def render(self, stream: IO[bytes], spec: VariantSpec) -> Rendered:
        """The first page; drawn in a process of its own unless ``isolate`` is False (see the module)."""
        _pypdfium2()
        self.check_stream(stream)
        return self._render_isolated(stream, spec) if self.isolate else self.render_here(stream, spec)

    def _render_isolated(self, stream: IO[bytes], spec: VariantSpec) -> Rendered:
        """Draw in the child process, which asks for the blocks it needs; stopped after :attr:`timeout` seconds."""
        from .pdf_child import CHILD

        guard = ReadGuard(stream)
        size = guard.seek(0, io.SEEK_END)
        output = {key: value for key, value in vars(spec).items() if key != "eager"}
        job = {"size": size, "spec": output, "max_pixels": self.max_pixels}
        with CHILD.lock:
            try:
                return CHILD.draw(job, cast(IO[bytes], guard), self.timeout, self.max_read_bytes)
            except Exception:
                guard.reraise_stream_error()  # the storage failing says nothing about the file
                raise

    def render_here(self, stream: IO[bytes], spec: VariantSpec) -> Rendered:
        """The first page, drawn in this process (under :data:`PDFIUM_LOCK`): no time limit, no isolation."""
        pdfium = _pypdfium2()
        self.check_stream(stream)
        guard = ReadGuard(stream)
        with PDFIUM_LOCK:
            try:
                image = self._draw(pdfium, guard, spec)
            except RenderError:
                guard.reraise_stream_error()
                raise
            except Exception as exc:
                guard.reraise_stream_error()
                if getattr(exc, "err_code", None) in (_PASSWORD, _SECURITY):
                    raise RenderError(ENCRYPTED) from exc
                raise RenderError(CORRUPT) from exc
            # PDFium may fail to draw part of a page on a failed read and still return a bitmap.
            guard.reraise_stream_error()
        return finish(image, spec)

    def _draw(self, pdfium: Any, guard: ReadGuard, spec: VariantSpec) -> Any:
        """The first page, drawn to the spec's box, as a Pillow image (PDFium's objects all closed)."""
        # Opened through PDFium's own call rather than pypdfium2's, which refuses a document of no
        # pages with the thread's last error -- that of an earlier file, on success.
        raw = pdfium.raw
        access = raw.FPDF_FILEACCESS()
        access.m_FileLen = guard.seek(0, io.SEEK_END)
        access.m_GetBlock = type(access.m_GetBlock)(_block_reader(guard))  # kept alive by ``access``
        access.m_Param = None
        handle = raw.FPDF_LoadCustomDocument(access, None)
        if not handle:
            raise _LoadFailed(raw.FPDF_GetLastError())
        document = pdfium.PdfDocument(handle)
        try:
            if len(document) < 1:
                raise RenderError(NO_PAGES)
            page = document[0]
            try:
                width, height = page.get_size()  # in points, its /Rotate applied
                if not (width > 0 and height > 0):
                    raise RenderError(CORRUPT)
                scale, crop = self._layout(width, height, spec)
                bitmap = page.render(scale=scale, crop=crop, fill_color=(255, 255, 255, 255), rev_byteorder=True)
                try:
                    return bitmap.to_pil().copy()  # to_pil() shares the bitmap's buffer, freed on close
                finally:
                    bitmap.close()
            finally:
                page.close()
        finally:
            document.close()

    def _layout(self, width: float, height: float, spec: VariantSpec) -> tuple[float, tuple[float, ...]]:
        """The scale (pixels per point) and crop (points cut off left, bottom, right, top) that make ``spec``."""
        box_width, box_height = spec.width, spec.height
        if box_width * box_height > self.max_pixels:  # the same shape, smaller
            shrink = (self.max_pixels / (box_width * box_height)) ** 0.5
            box_width, box_height = max(1, int(box_width * shrink)), max(1, int(box_height * shrink))
        ratios = (box_width / width, box_height / height)
        if spec.operation == "fit":
            # A hair under the exact ratio, so that PDFium's rounding up lands on the box, not a pixel past it.
            return min(ratios) * (1 - 1e-9), (0.0, 0.0, 0.0, 0.0)
        scale = max(ratios)
        # PDFium draws ceil(size x scale) pixels, less the crop (in points) scaled and rounded up: the crop
        # is stated just under whole pixels, so that what is left is exactly the box.
        excess_x = max(0, math.ceil(width * scale) - box_width)
        excess_y = max(0, math.ceil(height * scale) - box_height)
        left, top = excess_x // 2, excess_y // 2
        return scale, tuple(_points(pixels, scale) for pixels in (left, excess_y - top, excess_x - left, top))


def _points(pixels: int, scale: float) -> float:
    return max(0.0, (pixels - 1e-6) / scale) if pixels else 0.0
