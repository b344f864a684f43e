"""Thumbnails of raster images with Pillow: JPEG, PNG, GIF, WebP, BMP and TIFF.

::

    ImageRenderer().render(stream, VariantSpec("fit", 256, 256, "webp"))
    # Rendered(data=b"RIFF...", width=256, height=171, content_type="image/webp")

Only those six formats are opened: Pillow is told to try no other parser, so
a file sniffed as an image but holding something else (an EPS that Pillow
would hand to Ghostscript, an SVG) is refused as unreadable, never run.

The picture is what a viewer shows: the EXIF orientation is applied, an
animated GIF or WebP gives its first frame, a multi-page TIFF its first page.
Then :func:`~.base.finish` sizes, converts and encodes it (no metadata kept).

What is decoded: a JPEG is decoded at the smallest of its DCT scales (1/2,
1/4, 1/8) that still gives the variant all its pixels -- a 256-pixel
thumbnail of a 6000 x 4000 photo decodes 750 x 500 pixels, not 24 million.
Other formats are decoded whole, then reduced.

What is read (the stream must be seekable): the headers, then the image data
as Pillow's decoder asks for it, in small reads -- except a WebP, and a
compressed TIFF, which Pillow's decoders take as one buffer of the whole
file: refused beyond ``max_read_size``.

Decompression bombs: an image of more than ``max_pixels`` pixels is refused
(:class:`~.base.RenderError`) from the size its header declares, before any
pixel is decoded; for PNG, GIF and WebP that size is read from the first
bytes, before Pillow parses the file. The limit is the renderer's own, not
Pillow's global ``Image.MAX_IMAGE_PIXELS`` (which is left alone; Pillow still
refuses images above twice it, and warns above it, whatever ``max_pixels``
says). A file cut inside its image data, or corrupt, is refused: Pillow's
tolerance of truncated images is never turned on. One that lacks only what
follows its pixels (a PNG's end marker) is rendered: nothing of it is missing.
"""

from __future__ import annotations

import math
from typing import IO, TYPE_CHECKING, Any

from ..analyzers.base import DEFAULT_MAX_READ_SIZE, ReadGuard
from ..analyzers.image import _orientation, declared_size
from .base import Rendered, Renderer, RenderError, RenderUnavailable, VariantSpec, finish, positive_int, source_scale

if TYPE_CHECKING:
    from PIL import Image as PILImage

DEFAULT_MAX_PIXELS = 50_000_000

#: Sniffed content type (libmagic's names) -> Pillow's format name.
FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/x-ms-bmp": "BMP",
    "image/tiff": "TIFF",
}
#: The only parsers Pillow may try, whatever the bytes say.
PILLOW_FORMATS = sorted(set(FORMATS.values()))

CORRUPT = "The file is not a readable JPEG, PNG, GIF, WebP, BMP or TIFF image: it is corrupt or truncated."
#: EXIF orientations that swap width and height (a quarter turn).
_QUARTER_TURNS = {5, 6, 7, 8}


def _pillow() -> Any:
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:
        raise RenderUnavailable(
            "ImageRenderer needs Pillow, which is not installed (install the 'analyze' extra)."
        ) from exc
    return Image, ImageOps


class ImageRenderer(Renderer):
    """Thumbnails of JPEG, PNG, GIF, WebP, BMP and TIFF images, with Pillow.

    ``max_pixels``: the largest width x height decoded; larger images are
    refused as decompression bombs. ``max_read_size``: the most bytes one
    read may take (a WebP or a compressed TIFF is read whole).
    """

    name = "image"
    digest_options = ("max_pixels", "max_read_size")
    version = "1"
    content_types = frozenset(FORMATS)

    def __init__(self, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_read_size: int = DEFAULT_MAX_READ_SIZE) -> None:
        self.max_pixels = positive_int("max_pixels", max_pixels)
        self.max_read_size = positive_int("max_read_size", max_read_size)

    def require_libraries(self) -> None:
        _pillow()

    def render(self, stream: IO[bytes], spec: VariantSpec) -> Rendered:
        return finish(self.load(stream, spec), spec)

    def load(self, stream: IO[bytes], spec: VariantSpec) -> PILImage.Image:
        """The image as a viewer shows it (oriented, first frame), decoded at the smallest scale ``spec`` allows.

        The first half of :meth:`render`, before :func:`~.base.finish`: the
        returned image may be larger than the variant, never smaller than it needs.
        """
        Image, ImageOps = _pillow()
        self.check_stream(stream)
        guard = ReadGuard(stream, max_read=self.max_read_size)
        try:
            guard.seek(0)
            size = declared_size(guard.read(30))
            if size is not None:
                self._refuse_bomb(*size)
            guard.seek(0)
            with Image.open(guard, formats=PILLOW_FORMATS) as opened:
                self._refuse_bomb(*opened.size)
                if opened.format == "JPEG":
                    self._draft(Image, opened, spec)
                opened.load()
                try:
                    ImageOps.exif_transpose(opened, in_place=True)
                except Exception:  # a broken EXIF block does not make the image unreadable; viewers ignore it too
                    guard.reraise_stream_error()
        except RenderError:
            raise
        except Exception as exc:
            guard.reraise_stream_error()
            if guard.refused is not None:
                raise RenderError(
                    f"The image is too large to render: it would be read whole, and it is larger than "
                    f"{self.max_read_size:,} bytes."
                ) from exc
            if isinstance(exc, Image.DecompressionBombError):  # Pillow's own limit, reached before ours was read
                limit = (
                    self.max_pixels
                    if Image.MAX_IMAGE_PIXELS is None
                    else min(self.max_pixels, 2 * Image.MAX_IMAGE_PIXELS)
                )
                raise RenderError(
                    f"The image declares more than the {limit:,} pixels allowed; it was refused without being decoded."
                ) from exc
            raise RenderError(CORRUPT) from exc
        return opened

    def _refuse_bomb(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise RenderError(
                f"The image is {width} x {height} pixels, more than the {self.max_pixels:,} pixels allowed; "
                "it was refused without being decoded."
            )

    def _draft(self, Image: Any, image: PILImage.Image, spec: VariantSpec) -> None:
        """Ask the JPEG decoder for the smallest DCT scale that still holds every pixel the variant needs."""
        width, height = image.size
        quarter_turn = _orientation(Image, image.info.get("exif")) in _QUARTER_TURNS
        if quarter_turn:  # the spec's box applies to the picture upright
            width, height = height, width
        scale = source_scale(width, height, spec)
        needed = (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
        if quarter_turn:
            needed = needed[::-1]
        image.draft(None, needed)
