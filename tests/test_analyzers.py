"""Analyzers read what a file says about itself, from a stream, without decoding it.

Every file here is made by the test: images with Pillow (or by hand, chunk by chunk, where
Pillow would have to allocate what the test is about), PDFs with pypdf.
"""

from __future__ import annotations

import io
import random
import struct
import sys
import time
import tracemalloc
import zlib

import pytest

from django_attachments.exceptions import AttachmentError, AttachmentsImproperlyConfigured
from django_attachments.processing.analyzers import (
    AnalysisError,
    AnalysisUnavailable,
    Analyzer,
    ImageAnalyzer,
    PdfAnalyzer,
)

Image = pytest.importorskip("PIL.Image")
pypdf = pytest.importorskip("pypdf")

CORRUPT_IMAGE = "The file is not a readable PNG, JPEG, GIF or WebP image: it is corrupt or truncated."
CORRUPT_PDF = "The file is not a readable PDF: it is corrupt or truncated."


def image_file(mode="RGB", size=(32, 24), fmt="PNG", **save):
    out = io.BytesIO()
    Image.new(mode, size).save(out, fmt, **save)
    out.seek(0)
    return out


def image_meta(width, height, fmt, mode, orientation=None, frames=1):
    return {
        "image.width": width,
        "image.height": height,
        "image.format": fmt,
        "image.mode": mode,
        "image.orientation": orientation,
        "image.animated": frames > 1,
        "image.frames": frames,
    }


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def crafted_png(width, height, idat=b"not zlib data at all", bit_depth=8, colour_type=2):
    """A PNG of any declared size whose image data is garbage: only a decoder would notice."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def pdf_file(pages=1, size=(595, 842), **encrypt):
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=size[0], height=size[1])
    if encrypt:
        writer.encrypt(**encrypt)
    out = io.BytesIO()
    writer.write(out)
    out.seek(0)
    return out


def pdf_meta(pages, width, height, encrypted=False, version="1.3"):
    return {
        "pdf.pages": pages,
        "pdf.encrypted": encrypted,
        "pdf.page_width": width,
        "pdf.page_height": height,
        "pdf.version": version,
    }


def measured(call):
    """``call()``'s result or error, its peak of traced memory (bytes) and its duration (seconds)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome = call()
    except Exception as exc:
        outcome = exc
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, peak, elapsed


# --- the contract -------------------------------------------------------------


@pytest.mark.parametrize(
    "analyzer, content_type, expected",
    [
        (ImageAnalyzer(), "image/png", True),
        (ImageAnalyzer(), "image/jpeg", True),
        (ImageAnalyzer(), "IMAGE/GIF", True),
        (ImageAnalyzer(), "image/webp; charset=binary", True),
        (ImageAnalyzer(), "image/svg+xml", False),
        (ImageAnalyzer(), "image/tiff", False),
        (ImageAnalyzer(), "application/pdf", False),
        (PdfAnalyzer(), "application/pdf", True),
        (PdfAnalyzer(), "image/png", False),
        (PdfAnalyzer(), "", False),
    ],
)
def test_accepts_by_sniffed_content_type(analyzer, content_type, expected):
    assert analyzer.accepts(content_type) is expected


def test_base_analyze_must_be_overridden():
    with pytest.raises(NotImplementedError, match=r"\.analyze\(\) must be overridden"):
        Analyzer().analyze(io.BytesIO(b""))


def test_errors_sit_under_the_package_roots():
    assert issubclass(AnalysisError, AttachmentError) and issubclass(AnalysisError, ValueError)
    assert AnalysisError("x").code == "analysis_failed"
    assert issubclass(AnalysisUnavailable, AttachmentsImproperlyConfigured)


@pytest.mark.parametrize("analyzer, make", [(ImageAnalyzer(), image_file), (PdfAnalyzer(), pdf_file)])
def test_stream_is_read_from_its_start_and_left_open(analyzer, make):
    stream = make()
    stream.seek(0, io.SEEK_END)  # wherever the caller left it
    analyzer.analyze(stream)
    assert not stream.closed


class OneWay(io.RawIOBase):
    """A stream that reads but cannot seek, like a store's RangeReader."""

    def __init__(self, data):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        return self._data.readinto(buffer)


@pytest.mark.parametrize("analyzer, make", [(ImageAnalyzer(), image_file), (PdfAnalyzer(), pdf_file)])
def test_a_stream_that_cannot_seek_is_refused(analyzer, make):
    with pytest.raises(TypeError, match="needs a seekable stream; spool the file to a temporary file first"):
        analyzer.analyze(OneWay(make().getvalue()))


class FailingStream(io.BytesIO):
    """A stream whose storage fails after ``good`` bytes."""

    def __init__(self, data, good):
        super().__init__(data)
        self.good = good

    def read(self, size=-1):
        if self.tell() + (size if size is not None and size >= 0 else len(self.getvalue())) > self.good:
            raise OSError("connection reset by storage")
        return super().read(size)


@pytest.mark.parametrize("analyzer, make", [(ImageAnalyzer(), image_file), (PdfAnalyzer(), pdf_file)])
def test_a_failing_stream_is_not_called_a_corrupt_file(analyzer, make):
    data = make().getvalue()
    with pytest.raises(OSError, match="connection reset by storage") as caught:
        analyzer.analyze(FailingStream(data, good=len(data) // 2))
    assert not isinstance(caught.value, AnalysisError)


@pytest.mark.parametrize(
    "analyzer, library, reason",
    [
        (ImageAnalyzer(), "PIL", "ImageAnalyzer needs Pillow, which is not installed (install the 'analyze' extra)."),
        (PdfAnalyzer(), "pypdf", "PdfAnalyzer needs pypdf, which is not installed (install the 'analyze' extra)."),
    ],
)
def test_a_missing_library_is_reported_not_skipped(analyzer, library, reason, monkeypatch):
    assert analyzer.unavailable_reason() is None
    monkeypatch.setitem(sys.modules, library, None)  # import fails as if not installed
    assert analyzer.accepts(next(iter(analyzer.content_types)))
    assert analyzer.unavailable_reason() == reason
    with pytest.raises(AnalysisUnavailable) as caught:
        analyzer.analyze(io.BytesIO(b"anything"))
    assert str(caught.value) == reason


# --- images ---------------------------------------------------------------------


def exif_with_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def animated_gif(frames=3):
    images = [Image.new("RGB", (20, 10), (colour * 100, 0, 0)) for colour in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    out.seek(0)
    return out


def animated_webp(frames=2):
    images = [Image.new("RGBA", (16, 16), (colour * 80, 0, 0, 128)) for colour in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "WEBP", save_all=True, append_images=images[1:], duration=100)
    out.seek(0)
    return out


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: image_file("RGBA", (64, 48)), image_meta(64, 48, "PNG", "RGBA")),
        (lambda: image_file("I;16", (40, 30)), image_meta(40, 30, "PNG", "I;16")),
        (lambda: image_file("P", (33, 17)), image_meta(33, 17, "PNG", "P")),
        (lambda: image_file("L", (10, 1000)), image_meta(10, 1000, "PNG", "L")),
        (lambda: image_file("RGB", (640, 480), "JPEG"), image_meta(640, 480, "JPEG", "RGB")),
        (lambda: image_file("CMYK", (50, 40), "JPEG"), image_meta(50, 40, "JPEG", "CMYK")),
        (
            lambda: image_file("RGB", (300, 200), "JPEG", exif=exif_with_orientation(6)),
            image_meta(300, 200, "JPEG", "RGB", orientation=6),
        ),
        (
            lambda: image_file("RGB", (30, 20), "PNG", exif=exif_with_orientation(3)),
            image_meta(30, 20, "PNG", "RGB", orientation=3),
        ),
        (
            lambda: image_file("RGB", (30, 20), "JPEG", exif=exif_with_orientation(42)),
            image_meta(30, 20, "JPEG", "RGB", orientation=None),
        ),
        pytest.param(
            lambda: image_file("RGB", (30, 20), "JPEG", exif=b"Exif\x00\x00II*\x00garbage"),
            image_meta(30, 20, "JPEG", "RGB", orientation=None),
            marks=pytest.mark.filterwarnings("ignore:Corrupt EXIF data"),  # Pillow's, as it gives up on the block
        ),
        (lambda: image_file("P", (25, 15), "GIF"), image_meta(25, 15, "GIF", "P")),
        (animated_gif, image_meta(20, 10, "GIF", "P", frames=3)),
        (lambda: image_file("RGB", (80, 60), "WEBP"), image_meta(80, 60, "WEBP", "RGB")),
        (
            lambda: image_file("RGB", (80, 60), "WEBP", exif=exif_with_orientation(8)),
            image_meta(80, 60, "WEBP", "RGB", orientation=8),
        ),
        (animated_webp, image_meta(16, 16, "WEBP", "RGBA", frames=2)),
    ],
    ids=[
        "png-rgba",
        "png-16-bit",
        "png-palette",
        "png-grey",
        "jpeg",
        "jpeg-cmyk",
        "jpeg-exif-orientation-6",
        "png-exif-orientation-3",
        "jpeg-exif-orientation-out-of-range",
        "jpeg-exif-broken",
        "gif",
        "gif-animated-3-frames",
        "webp",
        "webp-exif-orientation-8",
        "webp-animated-2-frames",
    ],
)
def test_image_metadata(make, expected):
    assert ImageAnalyzer().analyze(make()) == expected


def test_the_pixels_are_never_decoded():
    # Garbage where the compressed pixels belong: decoding would fail, reading headers does not.
    stream = io.BytesIO(crafted_png(8000, 6000))
    assert ImageAnalyzer().analyze(stream) == image_meta(8000, 6000, "PNG", "RGB")
    with pytest.raises(Exception):  # noqa: B017 -- the proof that a decoder would have choked
        Image.open(io.BytesIO(stream.getvalue())).load()


def test_a_decompression_bomb_is_refused_fast_and_small():
    bomb = crafted_png(100_000, 100_000, idat=zlib.compress(b"\x00" * 100_000))  # 30 GB of RGB, declared
    assert len(bomb) < 1000
    outcome, peak, elapsed = measured(lambda: ImageAnalyzer().analyze(io.BytesIO(bomb)))
    assert isinstance(outcome, AnalysisError)
    assert str(outcome) == (
        "The image is 100000 x 100000 pixels, more than the 89,478,485 pixels allowed; "
        "it was refused without being decoded."
    )
    assert peak < 256 * 1024
    assert elapsed < 0.5


@pytest.mark.parametrize(
    "make",
    [
        lambda: io.BytesIO(crafted_png(1001, 1000)),
        lambda: image_file("RGB", (1001, 1000), "JPEG"),
        lambda: image_file("P", (1001, 1000), "GIF"),
        lambda: image_file("RGB", (1001, 1000), "WEBP"),
    ],
    ids=["png", "jpeg", "gif", "webp"],
)
def test_the_pixel_limit_is_the_analyzers_own(make):
    stream = make()
    assert ImageAnalyzer(max_pixels=1001 * 1000).analyze(stream)["image.width"] == 1001
    with pytest.raises(AnalysisError) as caught:
        ImageAnalyzer(max_pixels=1_000_000).analyze(stream)
    assert str(caught.value) == (
        "The image is 1001 x 1000 pixels, more than the 1,000,000 pixels allowed; it was refused without being decoded."
    )


def test_pillows_own_bomb_error_becomes_an_analysis_error(monkeypatch):
    # A JPEG's size is only known to Pillow's parser, whose own limit (twice MAX_IMAGE_PIXELS) strikes first.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(AnalysisError) as caught:
        ImageAnalyzer().analyze(image_file("RGB", (1000, 201), "JPEG"))
    assert str(caught.value) == "The image declares more than 200,000 pixels; it was refused without being decoded."


def noise_png(size=(256, 256)):
    out = io.BytesIO()
    Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3)).save(out, "PNG")
    return out.getvalue()


def test_a_png_cut_inside_its_pixel_data_is_truncated():
    data = noise_png()
    assert len(data) > 100_000
    with pytest.raises(AnalysisError) as caught:
        ImageAnalyzer().analyze(io.BytesIO(data[: len(data) // 2]))
    assert str(caught.value) == "The PNG image is truncated: its end is missing."
    # Bytes after the end do not make it truncated.
    assert ImageAnalyzer().analyze(io.BytesIO(data + b"trailing"))["image.width"] == 256


@pytest.mark.parametrize(
    "data",
    [
        image_file("RGB", (64, 64), "JPEG").getvalue()[:200],  # cut inside its tables
        image_file("RGB", (64, 64), "PNG").getvalue()[:20],  # cut inside IHDR
        image_file("RGB", (64, 64), "WEBP").getvalue()[:-10],
        image_file("P", (64, 64), "GIF").getvalue()[:12],
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
        b"GIF89a" + struct.pack("<HH", 16, 16),
        b"not an image at all",
        b"",
        b"%PDF-1.4\n",
        image_file("RGB", (8, 8), "BMP").getvalue(),  # a format the analyzer does not parse
    ],
    ids=["jpeg-cut", "png-cut", "webp-cut", "gif-cut", "png-zeros", "gif-header-only", "text", "empty", "pdf", "bmp"],
)
def test_a_corrupt_image_is_an_analysis_error(data):
    with pytest.raises(AnalysisError) as caught:
        ImageAnalyzer().analyze(io.BytesIO(data))
    assert str(caught.value) == CORRUPT_IMAGE


def test_a_webp_is_read_whole_only_up_to_the_read_limit():
    data = image_file("RGB", (64, 64), "WEBP").getvalue()
    assert ImageAnalyzer(max_read_size=len(data)).analyze(io.BytesIO(data))["image.format"] == "WEBP"
    with pytest.raises(AnalysisError) as caught:
        ImageAnalyzer(max_read_size=len(data) - 31).analyze(io.BytesIO(data))
    assert str(caught.value) == (
        f"The image is too large to analyze: it would be read whole, and it is larger than {len(data) - 31:,} bytes."
    )


@pytest.mark.parametrize("kwargs", [{"max_pixels": 0}, {"max_read_size": 0}])
def test_image_limits_must_be_positive(kwargs):
    with pytest.raises(ValueError, match="must be positive"):
        ImageAnalyzer(**kwargs)


# --- PDFs -----------------------------------------------------------------------


def test_pdf_one_page():
    assert PdfAnalyzer().analyze(pdf_file(1, (595, 842))) == pdf_meta(1, 595.0, 842.0)


def test_pdf_300_pages_in_bounded_time_and_memory():
    stream = pdf_file(300, (612, 792))
    small, _, _ = measured(lambda: PdfAnalyzer().analyze(pdf_file(1, (612, 792))))  # imports and caches warmed
    outcome, peak, elapsed = measured(lambda: PdfAnalyzer().analyze(stream))
    assert outcome == pdf_meta(300, 612.0, 792.0)
    assert small == pdf_meta(1, 612.0, 792.0)
    # Only the cross-reference table grows with the pages (~80 KiB here); no page but the first is loaded.
    assert peak < 512 * 1024, peak
    assert elapsed < 1.0


def test_pdf_fractional_page_size_and_version():
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=595.28, height=841.89)
    writer.pdf_header = "%PDF-1.7"
    out = io.BytesIO()
    writer.write(out)
    out.seek(0)
    assert PdfAnalyzer().analyze(out) == pdf_meta(1, 595.28, 841.89, version="1.7")


def test_pdf_media_box_inherited_from_the_page_tree():
    writer = pypdf.PdfWriter()
    page = writer.add_blank_page(width=100, height=100)
    del page[pypdf.generic.NameObject("/MediaBox")]
    pages = writer.root_object["/Pages"].get_object()
    pages[pypdf.generic.NameObject("/MediaBox")] = pypdf.generic.RectangleObject([0, 0, 420, 595])
    out = io.BytesIO()
    writer.write(out)
    out.seek(0)
    assert PdfAnalyzer().analyze(out) == pdf_meta(1, 420.0, 595.0)


def test_pdf_with_no_pages():
    assert PdfAnalyzer().analyze(pdf_file(0)) == pdf_meta(0, None, None)


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_encrypted_pdf_with_a_password_reports_what_it_can(algorithm):
    stream = pdf_file(3, user_password="secret", owner_password="owner", algorithm=algorithm)
    assert PdfAnalyzer().analyze(stream) == pdf_meta(None, None, None, encrypted=True)


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_encrypted_pdf_without_a_user_password_opens_as_viewers_open_it(algorithm):
    stream = pdf_file(3, (612, 792), user_password="", owner_password="owner", algorithm=algorithm)
    assert PdfAnalyzer().analyze(stream) == pdf_meta(3, 612.0, 792.0, encrypted=True)


def test_a_pdf_of_random_bytes_is_corrupt():
    data = b"%PDF-1.7\n" + random.Random(1).randbytes(20_000)
    with pytest.raises(AnalysisError) as caught:
        PdfAnalyzer().analyze(io.BytesIO(data))
    assert str(caught.value) == CORRUPT_PDF


def test_junk_behind_a_pdf_header_is_refused_from_its_tail_not_searched_backwards():
    """pypdf looks for %%EOF line by line back through the whole file: through a store read by ranges,
    a request every few dozen bytes. The tail is read once instead."""

    class Counting(io.BytesIO):
        reads = 0

        def read(self, size=-1):
            Counting.reads += 1
            return super().read(size)

    data = b"%PDF-1.7\n" + random.Random(2).randbytes(10 * 1024 * 1024)
    with pytest.raises(AnalysisError) as caught:
        PdfAnalyzer().analyze(Counting(data))
    assert str(caught.value) == CORRUPT_PDF
    assert Counting.reads <= 3


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.1])
def test_a_truncated_pdf_is_corrupt(keep):
    data = pdf_file(300).getvalue()
    with pytest.raises(AnalysisError) as caught:
        PdfAnalyzer().analyze(io.BytesIO(data[: int(len(data) * keep)]))
    assert str(caught.value) == CORRUPT_PDF


def test_a_damaged_xref_is_repaired_in_memory_only_up_to_the_read_limit():
    original = pdf_file(300).getvalue()
    data = original[:9] + b"% every offset is now wrong\n" + original[9:]  # pypdf rebuilds the table
    assert PdfAnalyzer().analyze(io.BytesIO(data)) == pdf_meta(300, 595.0, 842.0)
    limit = len(data) // 2
    with pytest.raises(AnalysisError) as caught:
        PdfAnalyzer(max_read_size=limit).analyze(io.BytesIO(data))
    assert str(caught.value) == (
        f"The PDF is damaged (its cross-reference table is broken), and larger than the {limit:,} bytes "
        "that can be read at once to repair it."
    )


def test_pdf_limit_must_be_positive():
    with pytest.raises(ValueError, match="must be positive"):
        PdfAnalyzer(max_read_size=0)


@pytest.mark.parametrize("data", [b"", b"%PDF-", b"not a pdf", image_file().getvalue()])
def test_not_a_pdf_is_corrupt(data):
    with pytest.raises(AnalysisError) as caught:
        PdfAnalyzer().analyze(io.BytesIO(data))
    assert str(caught.value) == CORRUPT_PDF
