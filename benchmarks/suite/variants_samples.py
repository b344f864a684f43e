"""The variants benchmark's inputs, made at run time: a camera-sized photo, DICOM frames (and, from ``samples``, a PDF).

- :func:`make_photo`: a JPEG of width x height pixels, gradients under noise
  at quality 90 (about 12 MB at 24 megapixels, a camera's size), with no EXIF
  block: the naive anchor does not turn a picture upright, so none is asked
  to; :func:`labelled` gives copies that differ by a JPEG comment (no upload
  of one is a dedup hit of another);
- :func:`make_dicom`: a CT-like series of 512 x 512 frames of 16-bit samples
  (a body of soft tissue in air, a ring of bone, noise), with the Rescale and
  Window values a CT scanner writes, uncompressed (Explicit VR Little Endian):
  one frame as a CT slice is stored, or several in one multi-frame file;
- :func:`make_clip`: a few seconds of ffmpeg's test pattern, H.264 in MP4:
  the video renderers' warm-up, and the video of a quick run (a full run's is
  ``samples.make_video``'s, 1080p and hundreds of MiB).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
from pathlib import Path

#: The multi-frame SOP class pydicom and viewers take 16-bit greyscale frames in.
MULTI_FRAME_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def make_photo(width: int, height: int) -> bytes:
    """A JPEG of gradients under noise, quality 90, no EXIF: a photo's size without a photo."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((width, height), Image.Resampling.NEAREST)
    channels = []
    for i, amount in enumerate((0.3, 0.25, 0.35)):
        noise = Image.frombytes("L", (width, height), os.urandom(width * height))
        source = gradient.transpose(Image.Transpose.ROTATE_180) if i == 1 else gradient
        channels.append(Image.blend(source, noise, amount))
    out = io.BytesIO()
    Image.merge("RGB", channels).save(out, "JPEG", quality=90)
    return out.getvalue()


def labelled(data: bytes, label: str) -> bytes:
    """The JPEG ``data`` with a COM segment naming ``label`` after its SOI marker."""
    comment = f"bench {label}".encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]


def make_dicom(path: Path, frames: int, size: int = 512) -> int:
    """A DICOM file of ``frames`` frames of ``size`` x ``size`` unsigned 16-bit samples; the bytes of one frame."""
    import numpy
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = numpy.random.default_rng(512)
    y, x = numpy.mgrid[0:size, 0:size].astype(numpy.float32) / size - 0.5
    radius = numpy.hypot(x * 1.2, y)
    # Stored values are HU + 1024: air -1000, soft tissue about 40, bone about 700.
    base = numpy.where(radius < 0.42, 1064.0, 24.0) + numpy.where((radius > 0.30) & (radius < 0.34), 660.0, 0.0)
    base += 60 * numpy.sin(x * 25) * numpy.cos(y * 19) * (radius < 0.42)
    noise = rng.normal(0, 25, (size, size)).astype(numpy.float32)
    stack = numpy.empty((frames, size, size), dtype=numpy.uint16)
    for index in range(frames):
        frame = numpy.roll(base, index % 37 - 18, axis=1) + numpy.roll(noise, index * 7, axis=0)
        stack[index] = numpy.clip(frame, 0, 65535).astype(numpy.uint16)

    sop_class = MULTI_FRAME_WORD_SC if frames > 1 else CT_IMAGE
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = "CT" if frames == 1 else "OT"
    dataset.PatientName = "Bench^Variants"
    dataset.PatientID = "BENCH-1"
    dataset.Rows = dataset.Columns = size
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.RescaleIntercept = -1024
    dataset.RescaleSlope = 1
    dataset.WindowCenter = 40
    dataset.WindowWidth = 400
    if frames > 1:
        dataset.NumberOfFrames = frames
    dataset.PixelData = stack.tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return size * size * 2


def make_clip(path: Path, width: int, height: int, seconds: int) -> None:
    """``seconds`` of ffmpeg's test pattern at ``width`` x ``height``, H.264 (lossy, ultrafast) in MP4."""
    command = [
        "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
