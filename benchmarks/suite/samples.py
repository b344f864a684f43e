"""The processing benchmarks' inputs, made at run time: a camera-sized JPEG, a long PDF, a video, scan payloads.

Each maker writes one file per label (``"disk"``, ``"s3"``): the same content
with a few bytes that differ (a JPEG comment, the PDF's /Subject, a trailing
MP4 ``free`` atom, a payload's first bytes), so that no upload is a dedup hit
of another (blobs are unique per checksum, whatever their storage).

- :func:`make_jpegs`: width x height pixels of gradients under noise, so that
  the file has a camera's size (about 12 MB at 24 megapixels, quality 90), with
  an EXIF block (orientation 6) as a phone writes;
- :func:`make_pdfs`: pages of 46 lines of text each (Helvetica, compressed
  content streams) and a 320x200 JPEG figure each: about 32 KB a page;
- :func:`make_video`: H.264 (lossless, so a cheap test pattern makes many
  bytes) 1080p at 30 fps with AAC audio, as ffmpeg writes it by default (the
  ``moov`` index at the end, as a camera leaves it): one short segment encoded,
  then copied end to end by ffmpeg's concat demuxer up to the size asked;
- :func:`make_scan_payload`: random bytes ending with the test clamd's marker
  signature, so that a verdict proves the whole stream was scanned.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

from .config import CHUNK

WORDS = (
    "patient clinic report scan result normal follow up dose image review signed note plan history "
    "allergy referral consent discharge summary laboratory value within range repeat next visit"
).split()


def make_jpegs(folder: Path, width: int, height: int, labels: list[str]) -> dict[str, Path]:
    """One JPEG per label (label -> path): encoded once, a COM segment naming the label inserted after SOI."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((width, height), Image.Resampling.NEAREST)
    channels = []
    for i, amount in enumerate((0.3, 0.25, 0.35)):
        noise = Image.frombytes("L", (width, height), os.urandom(width * height))
        source = gradient.transpose(Image.Transpose.ROTATE_180) if i == 1 else gradient
        channels.append(Image.blend(source, noise, amount))
    image = Image.merge("RGB", channels)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotated, as a phone held upright writes it
    exif[0x010F] = "django-attachments benchmarks"  # Make
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    data = out.getvalue()
    paths = {}
    for label in labels:
        comment = f"bench {label}".encode()
        segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
        paths[label] = folder / f"photo-{label}.jpg"
        paths[label].write_bytes(data[:2] + segment + data[2:])
    return paths


def make_pdfs(folder: Path, pages: int, labels: list[str]) -> dict[str, Path]:
    """One PDF per label (label -> path): the same pages, the label in the document's /Subject."""
    from PIL import Image
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, NumberObject, StreamObject

    rng = random.Random(15)
    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    for number in range(1, pages + 1):
        page = writer.add_blank_page(width=595, height=842)
        figure = io.BytesIO()
        Image.frombytes("L", (320, 200), os.urandom(320 * 200)).convert("RGB").save(figure, "JPEG", quality=60)
        image = StreamObject()
        image._data = figure.getvalue()
        image.update(
            {
                NameObject("/Type"): NameObject("/XObject"),
                NameObject("/Subtype"): NameObject("/Image"),
                NameObject("/Width"): NumberObject(320),
                NameObject("/Height"): NumberObject(200),
                NameObject("/ColorSpace"): NameObject("/DeviceRGB"),
                NameObject("/BitsPerComponent"): NumberObject(8),
                NameObject("/Filter"): NameObject("/DCTDecode"),
            }
        )
        lines = ["BT /F1 10 Tf 72 790 Td 12 TL", f"(Page {number} of {pages}) Tj T*"]
        lines += [f"({' '.join(rng.choice(WORDS) for _ in range(12))}) Tj T*" for _ in range(45)]
        lines.append("ET q 320 0 0 200 137 60 cm /Im1 Do Q")
        content = DecodedStreamObject()
        content.set_data("\n".join(lines).encode())
        page[NameObject("/Contents")] = writer._add_object(content)
        page[NameObject("/Resources")] = DictionaryObject(
            {
                NameObject("/Font"): DictionaryObject({NameObject("/F1"): font}),
                NameObject("/XObject"): DictionaryObject({NameObject("/Im1"): writer._add_object(image)}),
            }
        )
        page.compress_content_streams()
    paths = {}
    for label in labels:
        writer.add_metadata({"/Title": "Benchmark document", "/Subject": f"bench {label}"})
        paths[label] = folder / f"document-{label}.pdf"
        with open(paths[label], "wb") as out:
            writer.write(out)
    return paths


def ffmpeg_missing() -> str | None:
    """Why no video can be made here, or None."""
    missing = [name for name in ("ffmpeg", "ffprobe") if shutil.which(name) is None]
    return f"{' and '.join(missing)} not installed" if missing else None


def make_video(folder: Path, size: int, *, segment_seconds: int) -> Path:
    """An MP4 of at least ``size`` bytes: one segment encoded, then copied end to end (no re-encoding)."""
    segment = folder / "segment.mp4"
    encode = [
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(segment_seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k",
        str(segment),
    ]  # fmt: skip
    subprocess.run(encode, check=True, capture_output=True, timeout=600)
    copies = max(1, math.ceil(size / segment.stat().st_size))
    listing = folder / "segments.txt"
    listing.write_text(f"file '{segment.name}'\n" * copies)
    video = folder / "video.mp4"
    concat = ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(video)]
    subprocess.run(concat, check=True, capture_output=True, timeout=1800, cwd=folder)
    segment.unlink()
    listing.unlink()
    return video


def mark_video(path: Path, label: str) -> None:
    """Append (or replace) a trailing ``free`` atom naming ``label``: the MP4 stays valid, its checksum changes."""
    payload = f"bench {label}".ljust(16).encode()[:16]
    with open(path, "r+b") as video:
        video.seek(-24, os.SEEK_END)
        tail = video.read(24)
        if tail[4:8] == b"free" and struct.unpack(">I", tail[:4])[0] == 24:
            video.seek(-24, os.SEEK_END)
        else:
            video.seek(0, os.SEEK_END)
        video.write(struct.pack(">I", 24) + b"free" + payload)
        video.truncate()


def make_scan_payload(path: Path, size: int, marker: bytes) -> None:
    """``size`` random bytes whose last ones are ``marker``."""
    with open(path, "wb") as out:
        remaining = size - len(marker)
        while remaining:
            n = min(CHUNK, remaining)
            out.write(os.urandom(n))
            remaining -= n
        out.write(marker)


def mark_payload(path: Path, label: str) -> None:
    """Overwrite the payload's first 16 bytes with a digest of ``label``."""
    with open(path, "r+b") as out:
        out.write(hashlib.sha256(label.encode()).digest()[:16])
