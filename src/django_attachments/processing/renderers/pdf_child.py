"""The process a PDF preview is drawn in, so that a hostile PDF can be stopped: ``python -m`` this module.

:class:`~.pdf.PdfRenderer` serves the file on 127.0.0.1 (the media
analyzer's loopback server: ranged requests, a byte limit) and runs::

    python -m django_attachments.processing.renderers.pdf_child URL SIZE SPEC MAX_PIXELS

This process reads the file through ranged requests, one for each block PDFium asks for,
draws the first page in-process (:meth:`~.pdf.PdfRenderer.render_here`) and
writes one line of JSON, then the encoded picture, to stdout::

    {"ok": true, "width": 181, "height": 256, "content_type": "image/webp"}\\n<the bytes>
    {"ok": false, "error": "RenderError", "code": "render_failed", "message": "..."}\\n

The parent kills it after its time limit; a crash of PDFium (a signal) ends
this process, not the worker's. It touches no database, no store and no
setting.
"""

from __future__ import annotations

import http.client
import io
import json
import sys
from typing import IO, Any, cast
from urllib.parse import urlsplit

from .base import PreviewUnsupported, RenderError, RenderTimeout, RenderUnavailable, VariantSpec

#: The errors that cross the process boundary, by name.
ERRORS: dict[str, type[Exception]] = {
    error.__name__: error for error in (RenderError, PreviewUnsupported, RenderTimeout, RenderUnavailable)
}


class RangeFile(io.RawIOBase):
    """A file of ``size`` bytes at ``url``, read by ranged GET requests on one kept-alive connection."""

    def __init__(self, url: str, size: int, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self.path = parts.path
        self.size = size
        self.position = 0
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self.position = base + offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.size - self.position)
        if wanted <= 0:
            return 0
        end = self.position + wanted - 1
        self.connection.request("GET", self.path, headers={"Range": f"bytes={self.position}-{end}"})
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 206 or len(data) != wanted:
            raise OSError(f"the file's server answered {response.status} with {len(data)} of {wanted} bytes")
        buffer[:wanted] = data
        self.position += wanted
        return wanted

    def close(self) -> None:
        self.connection.close()
        super().close()


def main(argv: list[str]) -> int:
    from .pdf import PdfRenderer

    url, size, spec_json, max_pixels = argv[1], int(argv[2]), argv[3], int(argv[4])
    spec = VariantSpec(**json.loads(spec_json))
    out = sys.stdout.buffer
    # Unbuffered: PDFium's own block reads are what is asked for, no more (a buffer read ahead of them).
    with RangeFile(url, size) as raw:
        stream = cast(IO[bytes], raw)
        try:
            rendered = PdfRenderer(max_pixels=max_pixels, isolate=False).render_here(stream, spec)
        except tuple(ERRORS.values()) as exc:
            code = getattr(exc, "code", "")
            report = {"ok": False, "error": type(exc).__name__, "code": code, "message": str(exc)}
            out.write(json.dumps(report).encode() + b"\n")
            return 0
    header = {"ok": True, "width": rendered.width, "height": rendered.height, "content_type": rendered.content_type}
    out.write(json.dumps(header).encode() + b"\n" + rendered.data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
