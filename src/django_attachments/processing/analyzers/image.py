"""Image metadata with Pillow, read from the headers; pixel data is never decoded.

::

    ImageAnalyzer().analyze(stream)
    # {"image.width": 4032, "image.height": 3024, "image.format": "JPEG", "image.mode": "RGB",
    #  "image.orientation": 6, "image.animated": False, "image.frames": 1}

Keys: ``image.width`` and ``image.height`` (pixels, as stored: before any EXIF
rotation), ``image.format`` (Pillow's name: PNG, JPEG, GIF, WEBP),
``image.mode`` (Pillow's colour mode: RGB, RGBA, L, P, CMYK, I;16, ...),
``image.orientation`` (the EXIF Orientation tag, 1-8, or None where the file
has none or an invalid one), ``image.animated`` and ``image.frames``.

What is read (the stream must be seekable):

- PNG: the chunks before the image data (``Image.open``), then a walk over the
  chunk headers to IEND that seeks past each chunk's data without reading it,
  so a file cut short is refused. EXIF orientation comes from an ``eXIf``
  chunk placed before the image data. An APNG's frame count is the one its
  ``acTL`` chunk declares.
- JPEG: the markers up to the first scan (size, mode, the APP1 EXIF block).
  A file cut inside its scan data is not detected: that needs decoding, which
  this analyzer never does.
- GIF: the headers, then every frame's descriptor to count the frames, skipping
  the compressed data block by block (memory stays flat, time grows with the
  file). A GIF cut short counts the frames before the cut.
- WebP: the whole file, read at once by Pillow (libwebp parses one buffer):
  memory is the file's size, refused beyond ``max_read_size``. The canvas size
  is checked from the first 30 bytes before libwebp sees the file.

Decompression bombs: an image of more than ``max_pixels`` pixels is refused
(:class:`AnalysisError`) from its declared size, before anything is decoded or
allocated for it; for PNG, GIF and WebP the size is read from the first bytes
before Pillow parses the file at all. Pillow refuses images above twice its
own ``Image.MAX_IMAGE_PIXELS`` whatever ``max_pixels`` says, and warns
(``DecompressionBombWarning``) above it: the default of ``max_pixels`` is that
threshold, so what this analyzer accepts, a renderer decodes without a warning.
"""

from __future__ import annotations

import struct
from typing import IO, Any

from .base import DEFAULT_MAX_READ_SIZE, AnalysisError, AnalysisUnavailable, Analyzer, Metadata, ReadGuard

#: Pillow's own decompression-bomb threshold (``Image.MAX_IMAGE_PIXELS``), about 89 megapixels.
DEFAULT_MAX_PIXELS = 89_478_485

#: Sniffed content type -> Pillow's format name; Pillow tries no other parser.
FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise AnalysisUnavailable(
            "ImageAnalyzer needs Pillow, which is not installed (install the 'analyze' extra)."
        ) from exc
    return Image


def declared_size(head: bytes) -> tuple[int, int] | None:
    """The width and height a PNG, GIF or WebP declares in its first 30 bytes (None: not one of those)."""
    if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
            width, height = struct.unpack("<HH", head[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L" and head[20] == 0x2F:
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


class ImageAnalyzer(Analyzer):
    """Size, format, colour mode, EXIF orientation and frames of PNG, JPEG, GIF and WebP images.

    ``max_pixels``: the largest width x height analyzed; larger images are
    refused as decompression bombs. ``max_read_size``: the most bytes one read
    may take (a WebP is read whole).
    """

    name = "image"
    content_types = frozenset(FORMATS)

    def __init__(self, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_read_size: int = DEFAULT_MAX_READ_SIZE) -> None:
        if max_pixels < 1 or max_read_size < 1:
            raise ValueError("max_pixels and max_read_size must be positive.")
        self.max_pixels = max_pixels
        self.max_read_size = max_read_size

    def unavailable_reason(self) -> str | None:
        try:
            _pillow()
        except AnalysisUnavailable as exc:
            return str(exc)
        return None

    def analyze(self, stream: IO[bytes]) -> Metadata:
        Image = _pillow()
        self.check_stream(stream)
        guard = ReadGuard(stream, max_read=self.max_read_size)
        try:
            guard.seek(0)
            size = declared_size(guard.read(30))
            if size is not None:
                self._refuse_bomb(*size)
            with Image.open(guard, formats=list(FORMATS.values())) as im:
                width, height = im.size
                self._refuse_bomb(width, height)
                metadata: Metadata = {
                    "image.width": width,
                    "image.height": height,
                    "image.format": im.format,
                    "image.mode": im.mode,
                    "image.orientation": _orientation(Image, im.info.get("exif")),
                }
                frames = getattr(im, "n_frames", 1)
                if im.format == "PNG":
                    _check_png_complete(guard)
        except AnalysisError:
            raise
        except Exception as exc:
            guard.reraise_stream_error()
            if isinstance(exc, Image.DecompressionBombError):
                raise AnalysisError(
                    f"The image declares more than {self._pillow_limit(Image):,} pixels; "
                    "it was refused without being decoded."
                ) from exc
            if guard.refused is None:
                raise AnalysisError(
                    "The file is not a readable PNG, JPEG, GIF or WebP image: it is corrupt or truncated."
                ) from exc
        if guard.refused is not None:
            raise AnalysisError(
                f"The image is too large to analyze: it would be read whole, and it is larger than "
                f"{self.max_read_size:,} bytes."
            ) from guard.refused
        metadata["image.animated"] = frames > 1
        metadata["image.frames"] = frames
        return metadata

    def _refuse_bomb(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise AnalysisError(
                f"The image is {width} x {height} pixels, more than the {self.max_pixels:,} pixels allowed; "
                "it was refused without being decoded."
            )

    def _pillow_limit(self, Image: Any) -> int:
        # Pillow raises above twice its threshold; our own limit refuses earlier where it is lower.
        limit = Image.MAX_IMAGE_PIXELS
        return self.max_pixels if limit is None else min(self.max_pixels, 2 * limit)


def _orientation(Image: Any, raw_exif: bytes | None) -> int | None:
    # Parsed from the raw block the headers carried: Image.getexif() would
    # decode a PNG's pixels to look for an eXIf chunk after them.
    if not raw_exif:
        return None
    exif = Image.Exif()
    try:
        exif.load(raw_exif)
        value = exif.get(_EXIF_ORIENTATION)
    except Exception:  # a broken EXIF block does not make the image unreadable; viewers ignore it too
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _check_png_complete(stream: ReadGuard) -> None:
    """Walk the chunk headers from the signature to IEND, seeking past each chunk's data."""
    position = stream.seek(len(_PNG_SIGNATURE))
    while True:
        header = stream.read(8)
        if len(header) < 8:
            raise AnalysisError("The PNG image is truncated: its end is missing.")
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            return
        position = stream.seek(position + 8 + length + 4)  # data and CRC
