"""The renderer contract: a file's stream and a variant's spec in, a small encoded image out.

A *variant* is a picture made from a file -- a thumbnail of a photo, a
preview of a PDF's first page, a frame of a video -- described by a
:class:`VariantSpec` (how to size it, which format) that a project names in
its settings. A renderer turns one file into one such picture without
touching the database or a store: the service that runs it opens the stream,
stores the bytes and records the variant::

    spec = VariantSpec.from_value("thumb", {"operation": "fit", "width": 256, "height": 256, "format": "webp"})
    renderer = ImageRenderer()
    if renderer.accepts(blob.content_type):
        with spooled_copy_of(blob) as stream:          # the caller's business
            rendered = renderer.render(stream, spec)   # Rendered(data=b"RIFF...", width=256, height=171, ...)
        key = spec.digest(renderer)                    # the variant's identity

The stream
    A seekable binary file-like object holding the whole file from offset 0,
    as for the analyzers (:mod:`..analyzers.base`): a stream whose
    ``seekable()`` is False is refused with ``TypeError``. A renderer reads
    only the parts it needs (each one's docstring says which), may leave the
    position anywhere and never closes the stream. An error of the stream
    itself (a storage failing mid-read) propagates as it is: it says nothing
    about the file.

The result
    :class:`Rendered`: the encoded bytes with their size and content type.
    Their size is bounded by the spec's box, never by the input's: every
    renderer decodes, or draws, at most what the box needs and ends with
    :func:`finish`, which sizes, converts and encodes the picture the same way
    for every kind of file, with no metadata at all.

Errors
    :class:`RenderError` -- the file is malformed, truncated or refused (a
    decompression bomb, a PDF locked by a password); :class:`PreviewUnsupported`,
    one of them, says the file is fine but cannot be pictured here (a DICOM
    compression no installed plugin decodes, a video file with no video);
    both messages can be shown to staff as they are and never quote the
    file's contents. :class:`RenderUnavailable` -- the library or program the
    renderer stands on is missing; :meth:`Renderer.unavailable_reason` asks the
    same without a stream.

The identity of a variant
    :meth:`VariantSpec.digest` hashes what decides the output's bytes -- the
    spec's :meth:`~VariantSpec.output` and the renderer's name and
    :attr:`~Renderer.version` -- so that a changed spec, or a renderer whose
    output changed, makes a new variant rather than serving a stale one.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, cast

from ...exceptions import AttachmentError, AttachmentsImproperlyConfigured

if TYPE_CHECKING:
    from PIL import Image as PILImage

#: What a variant's name must look like (it appears in URLs and settings).
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
OPERATIONS = ("fit", "fill")
#: Output format -> (content type, file extension, default quality or None).
FORMATS: dict[str, tuple[str, str, int | None]] = {
    "webp": ("image/webp", "webp", 80),
    "jpeg": ("image/jpeg", "jpg", 85),
    "png": ("image/png", "png", None),
}
MAX_SIZE = 4096
_KEYS = ("operation", "width", "height", "format", "quality", "eager")
_REQUIRED = ("operation", "width", "height", "format")


@dataclass(frozen=True)
class VariantSpec:
    """How to make one variant: size it (``fit`` or ``fill`` a box) and encode it (``format``, ``quality``).

    ``fit``: the whole picture, inside ``width`` x ``height``, its aspect kept.
    ``fill``: the box covered, then cropped about the centre to exactly
    ``width`` x ``height``. Neither ever enlarges: a source smaller than the
    box stays its size (``fit``), or gives the largest centred crop of the
    box's aspect it holds (``fill``). ``quality`` (1-100, JPEG and WebP only)
    defaults to the format's own (JPEG 85, WebP 80). ``eager``: the pipeline
    makes the variant as soon as the file is scanned and analyzed, rather than
    on its first request; it does not change the output.
    """

    operation: str
    width: int
    height: int
    format: str
    quality: int | None = None
    eager: bool = False

    def __post_init__(self) -> None:
        if self.operation not in OPERATIONS:
            raise ValueError(f"'operation' must be 'fit' or 'fill', not {self.operation!r}.")
        for key in ("width", "height"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
                raise ValueError(f"{key!r} must be an integer from 1 to {MAX_SIZE}, not {value!r}.")
        if not isinstance(self.format, str) or self.format not in FORMATS:
            raise ValueError(f"'format' must be one of 'webp', 'jpeg', 'png', not {self.format!r}.")
        if self.quality is not None:
            if FORMATS[self.format][2] is None:
                raise ValueError(f"'quality' applies to 'jpeg' and 'webp' only; leave it out for {self.format!r}.")
            if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
                raise ValueError(f"'quality' must be an integer from 1 to 100, not {self.quality!r}.")
        if not isinstance(self.eager, bool):
            raise ValueError(f"'eager' must be True or False, not {self.eager!r}.")

    @classmethod
    def from_value(cls, name: str, value: Mapping[str, Any]) -> VariantSpec:
        """The spec that settings data describes, e.g. ``{"operation": "fit", "width": 256, ...}``.

        Raises ``ValueError`` naming the variant and the key at fault: a name
        that is not 1-40 of ``[a-z0-9_-]`` (starting with a letter or digit),
        a key that is unknown or missing, a value of the wrong type or range.
        """
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ValueError(
                f"Invalid variant name {name!r}: 1 to 40 lowercase letters, digits, '_' or '-', "
                "starting with a letter or a digit."
            )
        if not isinstance(value, Mapping):
            raise ValueError(f"Variant {name!r} must be a mapping of options, not {type(value).__name__}.")
        unknown = sorted(str(key) for key in value if key not in _KEYS)
        if unknown:
            raise ValueError(
                f"Variant {name!r}: unknown key(s) {', '.join(map(repr, unknown))}; the keys are {', '.join(_KEYS)}."
            )
        missing = [key for key in _REQUIRED if key not in value]
        if missing:
            raise ValueError(f"Variant {name!r}: {', '.join(map(repr, missing))} missing.")
        try:
            return cls(**value)
        except ValueError as exc:
            raise ValueError(f"Variant {name!r}: {exc}") from None

    @property
    def effective_quality(self) -> int | None:
        """The quality the encoder is given: the spec's, or the format's default (None for PNG)."""
        return self.quality if self.quality is not None else FORMATS[self.format][2]

    def output(self) -> dict[str, Any]:
        """The fields that decide the output's bytes (``eager`` does not)."""
        return {
            "operation": self.operation,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "quality": self.effective_quality,
        }

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][0]

    @property
    def extension(self) -> str:
        return FORMATS[self.format][1]

    def digest(self, renderer: Renderer) -> str:
        """The variant's identity with ``renderer``: SHA-256 (hex) of the output fields, the renderer's
        name and version, and its options (a limit raised lets a file refused under the old one be tried)."""
        canonical = json.dumps(
            {
                "output": self.output(),
                "renderer": renderer.name,
                "version": renderer.version,
                "options": renderer.options(),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Rendered:
    """An encoded variant: its bytes, pixel size and content type."""

    data: bytes
    width: int
    height: int
    content_type: str


class RenderError(AttachmentError, ValueError):
    """The file is malformed, truncated or refused; the message says which, for staff to read."""

    code = "render_failed"
    status_code = 422


class PreviewUnsupported(RenderError):
    """The file is sound but cannot be pictured here; the message says why (and what would help)."""

    code = "preview_unsupported"


class RenderTimeout(RenderError):
    """The renderer ran out of time on the file: maybe a hostile file, maybe a busy machine; worth a later try."""

    code = "render_timeout"


class RenderUnavailable(AttachmentsImproperlyConfigured):
    """The library or program a renderer needs is not installed; the message names what brings it."""


class Renderer:
    """Base of every renderer.

    Subclasses set :attr:`name`, :attr:`version` and :attr:`content_types`
    (and :attr:`digest_options`, for limits given to the constructor) and
    implement :meth:`render`; one that stands on an optional library or
    program implements :meth:`require_libraries`.
    """

    #: A short word naming the renderer ("image", "pdf"); part of every variant's digest.
    name: str = ""
    #: Bumped whenever the output for the same input and spec changes, so that old variants are made again.
    version: str = "1"
    #: The sniffed content types the renderer pictures (see :meth:`accepts`).
    content_types: frozenset[str] = frozenset()

    #: The constructor options that decide what the renderer makes or refuses (a size limit), by attribute
    #: name: part of every variant's digest. Not the ones that only say how it runs (a program's path, a
    #: time limit): machines configured differently must agree on the digest of the same variant.
    digest_options: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        """The values of :attr:`digest_options`: part of every variant's digest."""
        return {name: getattr(self, name) for name in sorted(self.digest_options)}

    def accepts(self, content_type: str) -> bool:
        """Whether this renderer pictures files of ``content_type`` (parameters and case ignored).

        Answers for the type alone, whether or not the renderer's library is installed.
        """
        return content_type.split(";", 1)[0].strip().lower() in self.content_types

    def require_libraries(self) -> None:
        """Raise :class:`RenderUnavailable`, naming what brings it, when a library or program it needs is missing."""

    def unavailable_reason(self) -> str | None:
        """Why :meth:`render` cannot run here (a library or program missing), or None when it can."""
        try:
            self.require_libraries()
        except RenderUnavailable as exc:
            return str(exc)
        return None

    def render(self, stream: IO[bytes], spec: VariantSpec) -> Rendered:
        """The variant ``spec`` describes, made from the file in ``stream`` (see the module's docstring).

        Raises :class:`RenderError` (or :class:`PreviewUnsupported`) for a file
        that cannot be rendered, :class:`RenderUnavailable` when the
        renderer's library is missing.
        """
        raise NotImplementedError(".render() must be overridden.")

    def check_stream(self, stream: IO[bytes]) -> None:
        """Refuse a stream this renderer cannot read (a caller's bug, hence TypeError)."""
        if not stream.seekable():
            raise TypeError(f"{type(self).__name__} needs a seekable stream; spool the file to a temporary file first.")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} version {self.version!r}>"


def positive_int(option: str, value: Any) -> int:
    """``value`` if it is a positive integer (not a bool), else ValueError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{option} must be a positive integer, not {value!r}.")
    return value


def require(who: str, extra: str, *packages: str) -> None:
    """Import ``packages`` (top-level names), or raise :class:`RenderUnavailable` naming the missing one.

    Every built-in renderer ends with :func:`finish`, so every one needs Pillow besides its own library.
    """
    for package in packages:
        try:
            importlib.import_module(package)
        except ImportError as exc:
            raise RenderUnavailable(
                f"{who} needs {_PACKAGE_NAMES.get(package, package)}, which is not installed "
                f"(install the {extra!r} extra)."
            ) from exc


_PACKAGE_NAMES = {"PIL": "Pillow", "numpy": "NumPy"}


# --- sizing, converting and encoding: the end of every renderer ---------------------


def source_scale(width: int, height: int, spec: VariantSpec) -> float:
    """The factor (at most 1) by which a ``width`` x ``height`` picture is shrunk to make ``spec``.

    A renderer that can decode or draw at a smaller scale (a JPEG's DCT
    scaling, a PDF page, a video frame) uses it to produce no more pixels than
    :func:`finish` needs: ``fit`` shrinks the whole picture into the box,
    ``fill`` only until it covers it.
    """
    ratios = (spec.width / width, spec.height / height)
    return min(1.0, min(ratios) if spec.operation == "fit" else max(ratios))


def geometry(width: int, height: int, spec: VariantSpec) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
    """The output size for a ``width`` x ``height`` source, and the region of the source it shows.

    ``fit`` shows the whole source; ``fill`` the largest centred region of
    the output's aspect. The output is never larger than the source region.
    """
    if spec.operation == "fit":
        scale = source_scale(width, height, spec)
        size = (max(1, min(spec.width, round(width * scale))), max(1, min(spec.height, round(height * scale))))
        return size, (0.0, 0.0, float(width), float(height))
    shrink = min(1.0, width / spec.width, height / spec.height)  # below 1: the source is smaller than the box
    size = (max(1, round(spec.width * shrink)), max(1, round(spec.height * shrink)))
    per_pixel = min(width / size[0], height / size[1])  # source pixels per output pixel, at least 1
    region_width, region_height = size[0] * per_pixel, size[1] * per_pixel
    left, top = (width - region_width) / 2, (height - region_height) / 2
    return size, (left, top, left + region_width, top + region_height)


def finish(image: PILImage.Image, spec: VariantSpec) -> Rendered:
    """Size ``image`` as ``spec`` says, convert it for the format and encode it with no metadata.

    Every Pillow-based renderer ends here, so that every kind of file gives
    the same kind of output:

    - sizing: :func:`geometry`, resampled with Lanczos (after a quick
      integer reduction for large ratios); never enlarged;
    - colour: a palette (with its transparency) becomes RGB(A), 1-bit becomes
      greyscale, CMYK and images with an ICC profile are converted to sRGB
      (the profile itself is not kept: sRGB is what a browser assumes without
      one), 16- and 32-bit greyscale is scaled to 8 bits over its range rather
      than clipped;
    - alpha: kept for WebP and PNG; a JPEG is composited on white;
    - metadata: none at all is written -- no EXIF (GPS positions), XMP,
      comments, ICC profile or text chunks.
    """
    from PIL import Image

    given, icc = image, image.info.get("icc_profile")
    image = _working_mode(Image, image)
    size, box = geometry(image.width, image.height, spec)
    if size != image.size or box != (0, 0, image.width, image.height):
        image = image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    image = _eight_bit(image)
    image = _to_srgb(image, icc)
    image = _for_format(Image, image, spec.format)
    if image is given:  # nothing to do but encode: the caller's image is not ours to strip
        image = image.copy()
    image.info = {}  # PNG's encoder would carry over a profile, a transparency key, text
    out = io.BytesIO()
    quality = spec.effective_quality
    if spec.format == "jpeg":
        image.save(out, "JPEG", quality=quality, optimize=True)
    elif spec.format == "webp":
        image.save(out, "WEBP", quality=quality, method=4)
    else:
        image.save(out, "PNG", compress_level=6)
    return Rendered(data=out.getvalue(), width=image.width, height=image.height, content_type=spec.content_type)


#: Modes converted before sizing: into a mode that resizes well and keeps the information.
_CONVERT = {"1": "L", "RGBX": "RGB", "RGBa": "RGBA", "La": "LA", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}
#: Modes that are sized as they are (high bit depths are reduced after sizing).
_KEPT = {"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"}


def _working_mode(Image: Any, image: PILImage.Image) -> PILImage.Image:
    mode = image.mode
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if transparent else "RGB")
    if mode in ("L", "RGB") and "transparency" in image.info:  # a PNG's tRNS colour key
        return image.convert("LA" if mode == "L" else "RGBA")
    if mode.startswith("I;16"):
        return image.convert("I")
    if mode in _KEPT:
        return image
    return image.convert(_CONVERT.get(mode, "RGB"))


def _eight_bit(image: PILImage.Image) -> PILImage.Image:
    """Greyscale of more than 8 bits mapped onto 0-255 over its range, not clipped at 255."""
    if image.mode not in ("I", "F"):
        return image
    low, high = cast("tuple[float, float]", image.getextrema())  # one band: a pair, not a pair per band
    if image.mode == "I" and low >= 0 and high <= 0xFFFF:
        low, high = 0, 0xFFFF  # 16-bit data, as stored: its full range, as a viewer shows it
    elif image.mode == "F" and low >= 0 and high <= 1:
        low, high = 0.0, 1.0  # the usual range of floating-point samples
    if high <= low:  # one value all over: nothing to map it against
        return image.point(lambda value: value * 0).convert("L")
    scale = 255 / (high - low)
    # Both modes truncate on conversion: the half rounds.
    return image.point(lambda value: (value - low) * scale + 0.5).convert("L")


def _to_srgb(image: PILImage.Image, icc: bytes | None) -> PILImage.Image:
    if image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=output_mode)
            if converted is not None:
                return converted
        except Exception:  # a broken or unsupported profile: the pixels as they are, like most viewers
            pass
    return image if image.mode == output_mode else image.convert(output_mode)


def _for_format(Image: Any, image: PILImage.Image, format: str) -> PILImage.Image:
    if format == "jpeg":
        if image.mode in ("LA", "RGBA"):
            colour = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            background.alpha_composite(colour)
            return background.convert("L" if image.mode == "LA" else "RGB")
        return image
    if format == "webp" and image.mode in ("L", "LA"):  # libwebp encodes colour only
        return image.convert("RGBA" if image.mode == "LA" else "RGB")
    return image
