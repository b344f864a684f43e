"""Previews of DICOM images with pydicom and NumPy: the first frame, windowed as the file says.

::

    DicomRenderer().render(stream, VariantSpec("fit", 256, 256, "webp"))
    # Rendered(data=b"RIFF...", width=256, height=256, content_type="image/webp")

Greyscale (MONOCHROME1 and MONOCHROME2, 1 to 32 bits, signed or not, integer
or floating point) is shown the way the file asks a viewer to show it:

1. the modality transform: Rescale Slope and Intercept (CT's Hounsfield
   units), or a Modality LUT;
2. the VOI transform: the first Window Center and Width the file gives
   (with its VOI LUT Function: LINEAR, LINEAR_EXACT or SIGMOID, as PS3.3
   C.11.2.1.2 defines them), else its first VOI LUT, else the frame's own
   range (8-bit data without a rescale: as stored); an enhanced multi-frame
   image's values come from its functional groups (the shared ones, else
   the first frame's);
3. MONOCHROME1 is inverted (its lowest value is white).

Colour is converted to RGB: RGB and the YCbCr family (YBR_FULL, YBR_FULL_422,
and what JPEG and JPEG 2000 decoders give for YBR_ICT and YBR_RCT), and
PALETTE COLOR through its palette; samples of more than 8 bits are scaled
over their range.

What is read (the stream must be seekable): the header up to the pixel data,
each value the renderer does not need skipped by seeking; then only the first
frame: for native (uncompressed) data, its bytes alone; for encapsulated
(compressed) data, the item headers up to it and its fragments. The other
frames of a multi-frame image are never read.

Compression: native transfer syntaxes always; compressed ones where pydicom
has a decoder that can run here -- RLE Lossless is built in, JPEG Baseline,
Extended and JPEG 2000 are decoded by Pillow, the others (JPEG Lossless,
JPEG-LS, HTJ2K) need a pixel-data plugin such as pylibjpeg or GDCM. Without
one the file is :class:`~.base.PreviewUnsupported`, naming the transfer
syntax and what to install; so is a file with no pixel data (a structured
report), a colour model not listed above, and a data set stored deflated
(pydicom would inflate it whole in memory).

Decompression bombs: a frame of more than ``max_pixels`` pixels is refused
(:class:`~.base.RenderError`) from the header's Rows and Columns, before
anything is decoded.
"""

from __future__ import annotations

import math
from typing import IO, Any

from ..analyzers.base import ReadGuard
from .base import (
    PreviewUnsupported,
    Rendered,
    Renderer,
    RenderError,
    RenderUnavailable,
    VariantSpec,
    finish,
    positive_int,
    require,
)

DEFAULT_MAX_PIXELS = 50_000_000
#: The most bytes one read of the header may take (a value the renderer needs; real ones take a few KiB).
DEFAULT_MAX_HEADER_READ = 8 * 1024 * 1024

NOT_DICOM = "The file is not a DICOM file: it has no 'DICM' marker after a 128-byte preamble."
CORRUPT = "The file is not a readable DICOM image: it is corrupt or truncated."
TRUNCATED = "The DICOM file is truncated: it declares an image but holds no pixel data."
NO_PIXELS = "The DICOM file holds no image (it has no pixel data): there is nothing to preview."
DEFLATED = "The DICOM file is stored deflated, which is not previewed."

_DEFLATED = "1.2.840.10008.1.2.1.99"
_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
#: What the header pass keeps: the image's shape and encoding.
_SHAPE_TAGS = [0x00280002, 0x00280004, 0x00280008, 0x00280010, 0x00280011, 0x00280100]
#: The functional groups of an enhanced multi-frame image, read with the pixels for the VOI values.
_FUNCTIONAL_GROUPS = [0x52009229, 0x52009230]
_GREY = {"MONOCHROME1", "MONOCHROME2"}
_COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}
#: Pixels transformed at a time: a float64 copy of so many, not of the whole frame.
_CHUNK_PIXELS = 1 << 20


def _libraries() -> tuple[Any, Any]:
    require("DicomRenderer", "dicom", "pydicom", "numpy", "PIL")
    import numpy
    import pydicom
    import pydicom.filereader

    try:
        import pydicom.pixels
    except ImportError as exc:  # pydicom 2 reads headers (the analyzer's need), not single frames
        raise RenderUnavailable(
            f"DicomRenderer needs pydicom 3.0 or later; {pydicom.__version__} is installed (install the 'dicom' extra)."
        ) from exc
    return pydicom, numpy


class _StopAtPixels:
    """A ``stop_when`` for pydicom: stops the header at the pixel data, and remembers reaching it."""

    reached = False

    def __call__(self, tag: int, vr: str | None, length: int) -> bool:
        self.reached = tag in _PIXEL_TAGS
        return self.reached


class DicomRenderer(Renderer):
    """Previews of DICOM images: the first frame, through the file's modality and VOI transforms.

    ``max_pixels``: the largest frame (rows x columns) decoded; larger ones
    are refused. ``max_header_read``: the most bytes one read of the header
    may take.
    """

    name = "dicom"
    digest_options = ("max_pixels", "max_header_read")
    version = "1"
    content_types = frozenset({"application/dicom"})

    def __init__(self, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_header_read: int = DEFAULT_MAX_HEADER_READ) -> None:
        self.max_pixels = positive_int("max_pixels", max_pixels)
        self.max_header_read = positive_int("max_header_read", max_header_read)

    def require_libraries(self) -> None:
        _libraries()

    def render(self, stream: IO[bytes], spec: VariantSpec) -> Rendered:
        pydicom, numpy = _libraries()
        self.check_stream(stream)
        guard = ReadGuard(stream, max_read=self.max_header_read)
        try:
            header = self._header(pydicom, guard)
            guard.max_read = max(self.max_header_read, 2 * _frame_bytes(header))  # the frame is read at once
            guard.seek(0)
            dataset = pydicom.Dataset()
            frame = pydicom.pixels.pixel_array(guard, index=0, ds_out=dataset, specific_tags=_FUNCTIONAL_GROUPS)
            pixels = _to_8_bit(pydicom, numpy, frame, dataset, header["PhotometricInterpretation"])
        except RenderError:
            raise
        except Exception as exc:
            guard.reraise_stream_error()
            if guard.refused is not None:
                raise RenderError(
                    "The DICOM header holds a value larger than the renderer reads; it was not read."
                ) from exc
            raise RenderError(CORRUPT) from exc
        from PIL import Image

        return finish(Image.fromarray(pixels), spec)  # uint8: "L" for rows x columns, "RGB" with 3 samples

    def _header(self, pydicom: Any, guard: ReadGuard) -> dict[str, Any]:
        """The image's shape, read up to the pixel data; refuses what cannot be previewed, before decoding."""
        guard.seek(0)
        head = guard.read(132)
        if len(head) < 132 or head[128:] != b"DICM":
            raise RenderError(NOT_DICOM)
        meta = pydicom.filereader.read_dataset(
            guard, is_implicit_VR=False, is_little_endian=True, stop_when=lambda tag, vr, length: tag > 0x0002FFFF
        )
        transfer_syntax = str(meta.get("TransferSyntaxUID", "")).strip("\x00 ")
        if not transfer_syntax:
            raise RenderError(CORRUPT)
        if transfer_syntax == _DEFLATED:
            raise PreviewUnsupported(DEFLATED)
        guard.seek(0)
        stop = _StopAtPixels()
        dataset = pydicom.filereader.read_partial(guard, stop_when=stop, specific_tags=_SHAPE_TAGS)
        if not stop.reached:
            if "Rows" in dataset or "Columns" in dataset:  # an image was declared: the file was cut before it
                raise RenderError(TRUNCATED)
            raise PreviewUnsupported(NO_PIXELS)
        header = {
            keyword: dataset.get(keyword)
            for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "PhotometricInterpretation")
        }
        rows, columns = header["Rows"], header["Columns"]
        if not isinstance(rows, int) or not isinstance(columns, int) or rows < 1 or columns < 1:
            raise RenderError(CORRUPT)
        if rows * columns > self.max_pixels:
            raise RenderError(
                f"The DICOM image is {columns} x {rows} pixels, more than the {self.max_pixels:,} pixels allowed; "
                "it was refused without being decoded."
            )
        photometric = str(header["PhotometricInterpretation"] or "").strip()
        if photometric not in _GREY | _COLOUR:
            raise PreviewUnsupported(
                f"The DICOM image's colour model ({photometric or 'none'}) is not one that is previewed."
            )
        header["PhotometricInterpretation"] = photometric
        _check_decoder(pydicom, pydicom.uid.UID(transfer_syntax))
        return header


def _check_decoder(pydicom: Any, transfer_syntax: Any) -> None:
    try:
        decoder = pydicom.pixels.get_decoder(transfer_syntax)
    except NotImplementedError:
        name = transfer_syntax.name if transfer_syntax.is_transfer_syntax else "unknown"
        raise PreviewUnsupported(
            f"The DICOM file's pixel data is encoded as {name} ({transfer_syntax}), which cannot be decoded here."
        ) from None
    if not decoder.is_available:
        plugins = "; ".join(decoder.missing_dependencies)
        raise PreviewUnsupported(
            f"The DICOM file's pixel data is compressed as {transfer_syntax.name} ({transfer_syntax}), and no "
            f"installed pixel-data plugin decodes it: a plugin such as pylibjpeg is needed ({plugins})."
        )


def _frame_bytes(header: dict[str, Any]) -> int:
    samples = header["SamplesPerPixel"] if isinstance(header["SamplesPerPixel"], int) else 1
    bits = header["BitsAllocated"] if isinstance(header["BitsAllocated"], int) else 16
    return math.ceil(header["Rows"] * header["Columns"] * max(1, samples) * max(1, bits) / 8)


# --- from stored values to 8-bit display values -------------------------------------------


def _to_8_bit(pydicom: Any, numpy: Any, frame: Any, dataset: Any, photometric: str) -> Any:
    if photometric == "PALETTE COLOR":
        frame = pydicom.pixels.apply_color_lut(frame, dataset)
    if photometric in _COLOUR:
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise RenderError(CORRUPT)
        if frame.dtype == numpy.uint8:
            return numpy.ascontiguousarray(frame)
        # A palette's entries are 16-bit (its LUT's nominal depth); RGB samples use Bits Stored.
        top = 65535.0 if photometric == "PALETTE COLOR" else max(1.0, float(2 ** _bits_stored(dataset) - 1))
        return _chunked(numpy, frame, 1.0, 0.0, lambda values: values * (255 / top))
    if frame.ndim != 2:
        raise RenderError(CORRUPT)
    grey = _grey(pydicom, numpy, frame, dataset)
    if photometric == "MONOCHROME1":
        numpy.subtract(255, grey, out=grey)
    return grey


def _grey(pydicom: Any, numpy: Any, frame: Any, dataset: Any) -> Any:
    """The VOI transform of the frame's modality values, onto 0-255."""
    if dataset.get("ModalityLUTSequence"):
        frame, slope, intercept = pydicom.pixels.apply_modality_lut(frame, dataset), 1.0, 0.0
    else:
        slope, intercept = _rescale(dataset)
    window = _window(dataset)
    if window is not None:
        centre, width, function = window
        return _chunked(
            numpy, frame, slope, intercept, lambda values: _windowed(numpy, values, centre, width, function)
        )
    if dataset.get("VOILUTSequence"):
        frame = _modality(numpy, frame, slope, intercept)
        lut = pydicom.pixels.apply_voi(frame.astype(numpy.int64) if frame.dtype.kind == "f" else frame, dataset)
        top = max(1.0, float(numpy.max(dataset.VOILUTSequence[0].LUTData)))
        return _chunked(numpy, lut, 1.0, 0.0, lambda values: values * (255 / top))
    if frame.dtype == numpy.uint8 and (slope, intercept) == (1.0, 0.0):
        return numpy.ascontiguousarray(frame)  # 8-bit data: as stored, as a viewer shows it
    ends = (float(numpy.nanmin(frame)) * slope + intercept, float(numpy.nanmax(frame)) * slope + intercept)
    low, high = min(ends), max(ends)
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return numpy.zeros(frame.shape, numpy.uint8)  # one value all over
    return _chunked(numpy, frame, slope, intercept, lambda values: (values - low) * (255 / (high - low)))


def _rescale(dataset: Any) -> tuple[float, float]:
    slope = _number(_attribute(dataset, "RescaleSlope", "PixelValueTransformationSequence"))
    intercept = _number(_attribute(dataset, "RescaleIntercept", "PixelValueTransformationSequence"))
    return (slope if slope not in (None, 0.0) else 1.0), (intercept if intercept is not None else 0.0)


def _window(dataset: Any) -> tuple[float, float, str] | None:
    centre = _number(_attribute(dataset, "WindowCenter", "FrameVOILUTSequence"))
    width = _number(_attribute(dataset, "WindowWidth", "FrameVOILUTSequence"))
    function = str(_attribute(dataset, "VOILUTFunction", "FrameVOILUTSequence") or "LINEAR").strip().upper()
    if centre is None or width is None:
        return None
    if width <= 0 or (function == "LINEAR" and width < 1):  # invalid (PS3.3 C.11.2.1.2): the range is used instead
        return None
    return centre, width, function if function in ("LINEAR_EXACT", "SIGMOID") else "LINEAR"


def _attribute(dataset: Any, keyword: str, group: str) -> Any:
    """``keyword`` at the top of the data set, else in an enhanced image's functional ``group`` for frame 0."""
    if keyword in dataset:
        return dataset[keyword].value
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        try:
            item = dataset[groups].value[0][group].value[0]
            return item[keyword].value
        except (KeyError, IndexError, TypeError, AttributeError):
            continue
    return None


def _number(value: Any) -> float | None:
    """The first value of a (possibly multi-valued) number, or None if it is not a finite one."""
    if value is not None and not isinstance(value, (str, bytes, int, float)):
        try:
            value = value[0]
        except (IndexError, TypeError):
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _modality(numpy: Any, frame: Any, slope: float, intercept: float) -> Any:
    if (slope, intercept) == (1.0, 0.0):
        return frame
    return frame.astype(numpy.float64) * slope + intercept


def _windowed(numpy: Any, values: Any, centre: float, width: float, function: str) -> Any:
    """PS3.3 C.11.2.1.2: the window's functions, onto 0-255."""
    if function == "SIGMOID":
        return 255 / (1 + numpy.exp(-4 * (values - centre) / width))
    if function == "LINEAR_EXACT":
        return (values - (centre - width / 2)) / width * 255
    if width == 1:  # a threshold
        return numpy.where(values > centre - 0.5, 255.0, 0.0)
    return ((values - (centre - 0.5)) / (width - 1) + 0.5) * 255


def _chunked(numpy: Any, frame: Any, slope: float, intercept: float, transform: Any) -> Any:
    """``transform`` of the modality values, band of rows by band of rows, clipped and rounded to uint8."""
    out = numpy.empty(frame.shape, numpy.uint8)
    step = max(1, _CHUNK_PIXELS // max(1, math.prod(frame.shape[1:])))
    for start in range(0, frame.shape[0], step):
        values = frame[start : start + step].astype(numpy.float64) * slope + intercept
        shown = transform(values)
        numpy.nan_to_num(shown, copy=False, nan=0.0)
        out[start : start + step] = numpy.rint(numpy.clip(shown, 0, 255))
    return out


def _bits_stored(dataset: Any) -> int:
    bits = dataset.get("BitsStored") or dataset.get("BitsAllocated") or 8
    return int(bits) if isinstance(bits, int) and 1 <= bits <= 64 else 8
