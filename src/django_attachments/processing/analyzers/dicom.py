"""DICOM metadata with pydicom: the image's technical attributes, never who or where it is of.

::

    DicomAnalyzer().analyze(stream)
    # {"dicom.modality": "CT", "dicom.rows": 512, "dicom.columns": 512, "dicom.frames": 1,
    #  "dicom.bits_allocated": 16, "dicom.bits_stored": 12, "dicom.samples_per_pixel": 1,
    #  "dicom.photometric_interpretation": "MONOCHROME2", "dicom.transfer_syntax": "1.2.840.10008.1.2.1",
    #  "dicom.sop_class": "1.2.840.10008.5.1.4.1.1.2"}

A DICOM file's header holds the patient's name, identifiers and birth date,
the institution, the physicians, dates and times, and UIDs that link the file
to a study, a series and a device. None of it is returned: only the tags
below, each a number or a term the DICOM standard defines. A value that is
not one (a Modality or PhotometricInterpretation outside the standard's
defined terms, a UID that is not a standard SOP class or transfer syntax, a
number out of range) is returned as None: a writer that puts a name where a
code belongs cannot leak it through.

| Key                              | Tag                                   | Why it is safe to keep                 |
|----------------------------------|---------------------------------------|----------------------------------------|
| dicom.modality                   | Modality (0008,0060)                  | a kind of equipment: CT, MR, US        |
| dicom.rows                       | Rows (0028,0010)                      | the image's height in pixels           |
| dicom.columns                    | Columns (0028,0011)                   | the image's width in pixels            |
| dicom.frames                     | NumberOfFrames (0028,0008)            | how many frames the pixel data holds   |
| dicom.bits_allocated             | BitsAllocated (0028,0100)             | bits per sample in storage (8, 16, 32) |
| dicom.bits_stored                | BitsStored (0028,0101)                | bits per sample used (12 for most CT)  |
| dicom.samples_per_pixel          | SamplesPerPixel (0028,0002)           | 1 for greyscale, 3 for colour          |
| dicom.photometric_interpretation | PhotometricInterpretation (0028,0004) | a code: MONOCHROME2, RGB, YBR_FULL_422 |
| dicom.transfer_syntax            | TransferSyntaxUID (0002,0010)         | a UID of the standard: the encoding    |
| dicom.sop_class                  | SOPClassUID (0008,0016)               | a UID naming a class, not an instance  |

``dicom.frames`` is 1 for an image without NumberOfFrames, None for a file
without image attributes (a structured report). ``dicom.sop_class`` falls
back on the file meta's MediaStorageSOPClassUID. A vendor's private SOP class
or transfer syntax is None.

Left out on purpose, among others: PatientName, PatientID, PatientBirthDate,
PatientSex and PatientAge, OtherPatientIDs, InstitutionName and address,
ReferringPhysicianName, OperatorsName, AccessionNumber, every date and time,
StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID (and the file meta's
MediaStorageSOPInstanceUID), FrameOfReferenceUID, StationName,
DeviceSerialNumber, private tags.

What is read (the stream must be seekable): the 128-byte preamble and the
"DICM" marker, and the file meta information (group 0002); then pydicom reads
the data set's elements in tag order up to the last kept tag (0028,0101):
each element's header is read and, unless it is one of the kept tags, its
value is skipped by seeking, never read -- the patient's name is not even in
memory. Only a sequence of undefined length before (0028,0101) is parsed
whole, as it has to be to find its end; the reading stops after
``max_header_size`` bytes. After the kept tags, the remaining elements'
headers are walked to the end of the file, seeking past every value (the
pixel data too), so that a file cut short is refused: pixel data missing
from a file that declares an image counts as a cut. A cut falling exactly
between two elements before the image attributes cannot be told from a file
that has no image.

A data set stored deflated (transfer syntax 1.2.840.10008.1.2.1.99) would be
inflated whole in memory by pydicom: it is not read, and only the transfer
syntax and the SOP class of its file meta are returned.
"""

from __future__ import annotations

import struct
from typing import IO, Any

from .base import AnalysisError, AnalysisUnavailable, Analyzer, Metadata, ReadGuard, ReadTooLarge

#: The most bytes read from a file's header (skipped values do not count); real headers take a few KiB.
DEFAULT_MAX_HEADER_SIZE = 8 * 1024 * 1024

#: The result's keys, in order.
KEYS = (
    "dicom.modality",
    "dicom.rows",
    "dicom.columns",
    "dicom.frames",
    "dicom.bits_allocated",
    "dicom.bits_stored",
    "dicom.samples_per_pixel",
    "dicom.photometric_interpretation",
    "dicom.transfer_syntax",
    "dicom.sop_class",
)
#: Kept tag of the data set -> its key in the result.
TAGS = {
    0x00080016: "dicom.sop_class",
    0x00080060: "dicom.modality",
    0x00280002: "dicom.samples_per_pixel",
    0x00280004: "dicom.photometric_interpretation",
    0x00280008: "dicom.frames",
    0x00280010: "dicom.rows",
    0x00280011: "dicom.columns",
    0x00280100: "dicom.bits_allocated",
    0x00280101: "dicom.bits_stored",
}
_LAST_TAG = max(TAGS)
_TRANSFER_SYNTAX = 0x00020010
_MEDIA_STORAGE_SOP_CLASS = 0x00020002
_DEFLATED = "1.2.840.10008.1.2.1.99"
_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
_EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_UNDEFINED = 0xFFFFFFFF
_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
#: Explicit VRs whose length takes 4 bytes, after 2 reserved ones.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
#: The most element headers walked after the kept tags, and the deepest nesting; past them, the walk stops.
_MAX_WALKED = 200_000
_MAX_DEPTH = 32
#: Values longer than this are not read (a kept tag's value is at most 64 bytes).
_DEFER_SIZE = 1024
_SEQUENCE_DELIMITERS = (b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"\xff\xfe\xe0\xdd\x00\x00\x00\x00")

#: Modality's defined terms (PS3.3 C.7.3.1.1.1), retired ones included.
MODALITIES = frozenset(
    "AR AS ASMT AU BDUS BI BMD CD CF CFM CP CR CS CT CTPROTOCOL DD DF DG DM DMS DOC DS DX EC ECG EEG EMG EOG "
    "EPS ES FA FID FS GM HC HD IO IOL IVOCT IVUS KER KO LEN LP LS M3D MA MG MR MS NM OAM OCT OP OPM OPR OPT "
    "OPTBSV OPTENF OPV OSS OT PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD "
    "RTSEGANN RTSTRUCT RWV SEG SM SMR SR SRF ST STAIN TEXTUREMAP TG US VA VF XA XAPROTOCOL XC".split()
)
#: PhotometricInterpretation's defined terms (PS3.3 C.7.6.3.1.2), retired ones included.
PHOTOMETRIC_INTERPRETATIONS = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "PALETTE COLOR",
        "RGB",
        "HSV",
        "ARGB",
        "CMYK",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_422",
        "YBR_PARTIAL_420",
        "YBR_ICT",
        "YBR_RCT",
        "XYB",
    }
)

CORRUPT = "The file is not a readable DICOM file: its header is corrupt."
TRUNCATED = "The DICOM file is truncated: its end is missing."
NO_PIXELS = "The DICOM file is truncated: it declares an image but holds no pixel data."
NOT_DICOM = "The file is not a DICOM file: it has no 'DICM' marker after a 128-byte preamble."


def _pydicom() -> Any:
    try:
        import pydicom
        import pydicom.filereader
    except ImportError as exc:
        raise AnalysisUnavailable(
            "DicomAnalyzer needs pydicom, which is not installed (install the 'dicom' extra)."
        ) from exc
    return pydicom


class _HeaderGuard(ReadGuard):
    """A :class:`ReadGuard` that also refuses to read more than ``budget`` bytes in all."""

    def __init__(self, stream: IO[bytes], budget: int) -> None:
        super().__init__(stream, max_read=budget)
        self.budget = budget
        self.total = 0
        #: Whether a read came back short: the file ended where more was expected.
        self.short = False

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.total += len(data)
        if size is not None and len(data) < size:
            self.short = True
        if self.total > self.budget:
            self.refused = ReadTooLarge(f"more than {self.budget} bytes read in all")
            raise self.refused
        return data


class _Elements:
    """A ``stop_when`` for pydicom that remembers where the last element seen lies, and stops past ``last``."""

    def __init__(self, stream: _HeaderGuard, last: int) -> None:
        self.stream = stream
        self.last_tag = last
        self.stopped = False
        self.last: tuple[int, int] | None = None  # the last element's value offset and length

    def __call__(self, tag: int, vr: str | None, length: int) -> bool:
        self.last = (self.stream.tell(), length)  # called with the stream at the element's value
        self.stopped = tag > self.last_tag
        return self.stopped

    def ended_cleanly(self, size: int) -> bool:
        """Whether the last element read, when nothing stopped the reading, ends where the file does."""
        if self.stopped:
            return True
        if self.last is None:
            return False
        start, length = self.last
        if length != _UNDEFINED:
            return start + length == size
        if size - start < 8:
            return False
        self.stream.seek(size - 8)  # an undefined length ends with a sequence delimiter
        return self.stream.read(8) in _SEQUENCE_DELIMITERS


class DicomAnalyzer(Analyzer):
    """Modality, image size, frames, sample layout, transfer syntax and SOP class of DICOM files.

    ``max_header_size``: the most bytes read from a file's header before its
    image attributes (values skipped by seeking do not count).
    """

    name = "dicom"
    content_types = frozenset({"application/dicom"})

    def __init__(self, *, max_header_size: int = DEFAULT_MAX_HEADER_SIZE) -> None:
        if max_header_size < 1:
            raise ValueError("max_header_size must be positive.")
        self.max_header_size = max_header_size

    def unavailable_reason(self) -> str | None:
        try:
            _pydicom()
        except AnalysisUnavailable as exc:
            return str(exc)
        return None

    def analyze(self, stream: IO[bytes]) -> Metadata:
        pydicom = _pydicom()
        self.check_stream(stream)
        guard = _HeaderGuard(stream, self.max_header_size)
        walk_guard = ReadGuard(stream)  # the walk after the kept tags reads headers only, outside the budget
        metadata: Metadata = dict.fromkeys(KEYS)
        try:
            size = guard.seek(0, 2)
            guard.seek(0)
            head = guard.read(132)
            if len(head) < 132 or head[128:] != b"DICM":
                raise AnalysisError(NOT_DICOM)
            meta_elements = _Elements(guard, last=0x0002FFFF)
            meta = pydicom.filereader.read_dataset(
                guard, is_implicit_VR=False, is_little_endian=True, stop_when=meta_elements, defer_size=_DEFER_SIZE
            )
            if not meta_elements.stopped:  # the file ends inside its meta information, or right after it
                raise AnalysisError(TRUNCATED)
            transfer_syntax = _uid(pydicom, _value(meta, _TRANSFER_SYNTAX), "Transfer Syntax")
            if transfer_syntax is None:
                raise AnalysisError(CORRUPT)
            metadata["dicom.transfer_syntax"] = transfer_syntax
            if transfer_syntax == _DEFLATED:
                metadata["dicom.sop_class"] = _uid(pydicom, _value(meta, _MEDIA_STORAGE_SOP_CLASS), "SOP Class")
                return metadata
            guard.seek(0)
            elements = _Elements(guard, last=_LAST_TAG)
            dataset = pydicom.filereader.read_partial(
                guard, stop_when=elements, defer_size=_DEFER_SIZE, force=False, specific_tags=list(TAGS)
            )
            if not elements.ended_cleanly(size):
                raise AnalysisError(TRUNCATED)
            pixels = _check_complete(walk_guard, guard.tell(), size, transfer_syntax) if elements.stopped else False
            values = {tag: _value(dataset, tag) for tag in TAGS}
        except AnalysisError:
            raise
        except Exception as exc:
            guard.reraise_stream_error()
            walk_guard.reraise_stream_error()
            if guard.refused is None:
                raise AnalysisError(TRUNCATED if guard.short else CORRUPT) from exc
        if guard.refused is not None:
            raise AnalysisError(
                f"The DICOM header is larger than the {self.max_header_size:,} bytes that may be read "
                "before its image attributes; it was not read further."
            ) from guard.refused
        if pixels is False and values[0x00280010] is not None and values[0x00280011] is not None:
            raise AnalysisError(NO_PIXELS)
        metadata["dicom.modality"] = _code(values[0x00080060], MODALITIES)
        metadata["dicom.photometric_interpretation"] = _code(values[0x00280004], PHOTOMETRIC_INTERPRETATIONS)
        for tag in (0x00280002, 0x00280010, 0x00280011, 0x00280100, 0x00280101):
            metadata[TAGS[tag]] = _count(values[tag], maximum=0xFFFF)
        metadata["dicom.sop_class"] = _uid(pydicom, values[0x00080016], "SOP Class") or _uid(
            pydicom, _value(meta, _MEDIA_STORAGE_SOP_CLASS), "SOP Class"
        )
        frames = values[0x00280008]
        if frames is not None:
            metadata["dicom.frames"] = _count(frames, minimum=1)
        elif values[0x00280010] is not None and values[0x00280011] is not None:
            metadata["dicom.frames"] = 1  # a single-frame image carries no NumberOfFrames
        return metadata


def _value(dataset: Any, tag: int) -> Any:
    """The converted value of ``tag``, or None if absent, left unread (too long) or unreadable."""
    raw = dataset.get_item(tag)
    if raw is None or raw.value is None:  # absent, or longer than _DEFER_SIZE and skipped
        return None
    try:
        value = dataset[tag].value
    except Exception:  # a value pydicom cannot convert: treated as absent, like any invalid one
        return None
    return None if value == "" else value


def _code(value: Any, allowed: frozenset[str]) -> str | None:
    """A defined term of the standard, or None: whatever else a writer put there is not returned."""
    return value.strip() if isinstance(value, str) and value.strip() in allowed else None


def _uid(pydicom: Any, value: Any, kind: str) -> str | None:
    """A UID of the standard of ``kind`` ("SOP Class", "Transfer Syntax"), or None for any other string."""
    if not isinstance(value, str):
        return None
    uid = pydicom.uid.UID(value.strip("\x00 "))
    return str(uid) if uid.type == kind else None


def _count(value: Any, minimum: int = 0, maximum: int | None = None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if value < minimum or (maximum is not None and value > maximum):
        return None
    return int(value)


class _Unsure(Exception):
    """The walk met a structure it does not follow (or too many elements): the file is not judged."""


class _Walk:
    """A walk over element headers, seeking past every value, that finds a file cut short.

    Only the tags, VRs and lengths are read -- never a value. Sequences of
    undefined length are followed item by item, as are the fragments of
    encapsulated pixel data.
    """

    def __init__(self, stream: ReadGuard, size: int, transfer_syntax: str) -> None:
        self.stream = stream
        self.size = size
        self.implicit = transfer_syntax == _IMPLICIT_LITTLE
        self.order = ">" if transfer_syntax == _EXPLICIT_BIG else "<"
        self.walked = 0
        #: Whether the data set holds pixel data (a top-level PixelData, FloatPixelData or DoubleFloatPixelData).
        self.pixels = False

    def header(self, position: int, size: int) -> bytes:
        self.walked += 1
        if self.walked > _MAX_WALKED:
            raise _Unsure
        if position + size > self.size:
            raise AnalysisError(TRUNCATED)
        self.stream.seek(position)
        data = self.stream.read(size)
        if len(data) < size:
            raise AnalysisError(TRUNCATED)
        return data

    def tag_and_length(self, position: int) -> tuple[int, int]:
        group, element, length = struct.unpack(self.order + "HHI", self.header(position, 8))
        return group << 16 | element, length

    def elements(self, position: int, depth: int, in_item: bool) -> int:
        """Walk a data set's elements from ``position``: to its item's end, or to the end of the file."""
        if depth > _MAX_DEPTH:
            raise _Unsure
        while True:
            if position == self.size and not in_item:
                return position
            tag, length = self.tag_and_length(position)
            if tag == _ITEM_END:
                if not in_item:
                    raise _Unsure
                return position + 8
            if depth == 0 and tag in _PIXEL_TAGS:
                self.pixels = True
            if not self.implicit:
                vr = self.header(position + 4, 2)
                if not (b"AA" <= vr <= b"ZZ"):
                    raise _Unsure  # pydicom guesses at implicit VR here; so much guessing is not a verdict
                if vr in _LONG_VRS:
                    length = struct.unpack(self.order + "I", self.header(position + 8, 4))[0]
                    position += 4
                else:
                    length = struct.unpack(self.order + "H", self.header(position + 6, 2))[0]
            position += 8
            if length == _UNDEFINED:
                position = self.items(position, depth + 1)
            else:
                position += length
                if position > self.size:
                    raise AnalysisError(TRUNCATED)

    def items(self, position: int, depth: int) -> int:
        """Walk a sequence of undefined length (or encapsulated pixel data) to its delimiter."""
        while True:
            tag, length = self.tag_and_length(position)
            position += 8
            if tag == _SEQUENCE_END:
                return position
            if tag != _ITEM:
                raise _Unsure
            if length == _UNDEFINED:
                position = self.elements(position, depth, in_item=True)
            else:
                position += length
                if position > self.size:
                    raise AnalysisError(TRUNCATED)


def _check_complete(stream: ReadGuard, position: int, size: int, transfer_syntax: str) -> bool | None:
    """Walk the elements after the kept tags, to the end of the file: one running past it means a cut.

    Returns whether the data set holds pixel data (None: the walk stopped before it could tell).
    """
    walk = _Walk(stream, size, transfer_syntax)
    try:
        walk.elements(position, depth=0, in_item=False)
    except _Unsure:
        return True if walk.pixels else None
    return walk.pixels
