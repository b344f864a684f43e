"""Renderers make variants (thumbnails, previews) from a stream: real Pillow, pypdfium2, pydicom and ffmpeg.

Every sample is made by the test (tests/samples.py), with colours and grey levels chosen so that
the output's pixels can be checked, not just its size.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from django_attachments.exceptions import AttachmentError, AttachmentsImproperlyConfigured, status_for
from django_attachments.processing.renderers import (
    BUILTIN_RENDERERS,
    DicomRenderer,
    ImageRenderer,
    PdfRenderer,
    PreviewUnsupported,
    Rendered,
    Renderer,
    RenderError,
    RenderTimeout,
    RenderUnavailable,
    VariantSpec,
    VideoRenderer,
    finish,
)
from tests import samples
from tests.test_analyzers import OneWay  # a stream that reads but cannot seek

Image = pytest.importorskip("PIL.Image")

OPERATIONS = ["fit", "fill"]
FORMATS = ["webp", "jpeg", "png"]
PILLOW_FORMAT = {"webp": "WEBP", "jpeg": "JPEG", "png": "PNG"}
CORRUPT_IMAGE = "The file is not a readable JPEG, PNG, GIF, WebP, BMP or TIFF image: it is corrupt or truncated."
CORRUPT_PDF = "The file is not a readable PDF: it is corrupt or truncated."


def spec(operation="fit", width=100, height=100, format="png", quality=None):
    return VariantSpec(operation, width, height, format, quality)


def opened(rendered):
    """The output, decoded back, after checking it is what it says."""
    image = Image.open(io.BytesIO(rendered.data))
    assert image.format == PILLOW_FORMAT[rendered.content_type.split("/")[1]]
    assert image.size == (rendered.width, rendered.height)
    image.load()
    return image


def close(pixel, colour, tolerance=40):
    """Whether an RGB(A) or grey pixel is within ``tolerance`` of ``colour`` on every channel."""
    if isinstance(pixel, int):
        pixel = (pixel,) * 3
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def rgb(image, xy):
    return image.convert("RGB").getpixel(xy)


class FailingStream(io.BytesIO):
    """A stream whose storage fails once a read reaches past ``good`` bytes."""

    def __init__(self, data, good):
        super().__init__(data)
        self.good = good

    def read(self, size=-1):
        if self.tell() + (size if size is not None and size >= 0 else len(self.getvalue())) > self.good:
            raise OSError("connection reset by storage")
        return super().read(size)

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Counting(io.BytesIO):
    """A stream that counts the bytes read from it, and remembers the spans."""

    def __init__(self, data):
        super().__init__(data)
        self.bytes_read = 0
        self.spans = []

    def read(self, size=-1):
        start = self.tell()
        data = super().read(size)
        self.bytes_read += len(data)
        self.spans.append((start, start + len(data)))
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def was_read(self, start, end):
        return any(a < end and start < b for a, b in self.spans)


# --- the spec -------------------------------------------------------------------------


def test_spec_from_settings_data():
    value = {"operation": "fill", "width": 256, "height": 128, "format": "webp", "quality": 70, "eager": True}
    made = VariantSpec.from_value("card-2x", value)
    assert made == VariantSpec("fill", 256, 128, "webp", 70, eager=True)
    assert made.output() == {"operation": "fill", "width": 256, "height": 128, "format": "webp", "quality": 70}
    assert (made.content_type, made.extension) == ("image/webp", "webp")


@pytest.mark.parametrize(
    "format, quality, effective, content_type, extension",
    [
        ("jpeg", None, 85, "image/jpeg", "jpg"),
        ("jpeg", 40, 40, "image/jpeg", "jpg"),
        ("webp", None, 80, "image/webp", "webp"),
        ("png", None, None, "image/png", "png"),
    ],
)
def test_spec_defaults_per_format(format, quality, effective, content_type, extension):
    made = VariantSpec.from_value("thumb", {"operation": "fit", "width": 1, "height": 4096, "format": format} | (
        {} if quality is None else {"quality": quality}
    ))  # fmt: skip
    assert made.output()["quality"] == effective
    assert made.eager is False
    assert (made.content_type, made.extension) == (content_type, extension)


GOOD = {"operation": "fit", "width": 256, "height": 256, "format": "webp"}


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("Thumb", GOOD, "Invalid variant name 'Thumb': 1 to 40 lowercase letters"),
        ("", GOOD, "Invalid variant name ''"),
        ("-thumb", GOOD, "Invalid variant name '-thumb'"),
        ("a" * 41, GOOD, "Invalid variant name 'a{41}'"),
        ("thumb.small", GOOD, "Invalid variant name 'thumb.small'"),
        (None, GOOD, "Invalid variant name None"),
        ("thumb", [("operation", "fit")], "Variant 'thumb' must be a mapping of options, not list"),
        ("thumb", GOOD | {"size": 3}, r"Variant 'thumb': unknown key\(s\) 'size'; the keys are operation, width"),
        ("thumb", GOOD | {"Width": 3, "crop": 1}, r"unknown key\(s\) 'Width', 'crop'"),
        ("thumb", {"operation": "fit", "width": 256}, "Variant 'thumb': 'height', 'format' missing"),
        ("thumb", GOOD | {"operation": "crop"}, "Variant 'thumb': 'operation' must be 'fit' or 'fill', not 'crop'"),
        ("thumb", GOOD | {"operation": "FIT"}, "'operation' must be 'fit' or 'fill', not 'FIT'"),
        ("thumb", GOOD | {"width": 0}, "Variant 'thumb': 'width' must be an integer from 1 to 4096, not 0"),
        ("thumb", GOOD | {"height": 4097}, "'height' must be an integer from 1 to 4096, not 4097"),
        ("thumb", GOOD | {"width": True}, "'width' must be an integer from 1 to 4096, not True"),
        ("thumb", GOOD | {"width": 256.0}, "'width' must be an integer from 1 to 4096, not 256.0"),
        ("thumb", GOOD | {"height": "256"}, "'height' must be an integer from 1 to 4096, not '256'"),
        ("thumb", GOOD | {"format": "jpg"}, "'format' must be one of 'webp', 'jpeg', 'png', not 'jpg'"),
        ("thumb", GOOD | {"format": "gif"}, "'format' must be one of 'webp', 'jpeg', 'png', not 'gif'"),
        ("thumb", GOOD | {"format": ["png"]}, r"'format' must be one of 'webp', 'jpeg', 'png', not \['png'\]"),
        ("thumb", GOOD | {"quality": 0}, "'quality' must be an integer from 1 to 100, not 0"),
        ("thumb", GOOD | {"quality": 101}, "'quality' must be an integer from 1 to 100, not 101"),
        ("thumb", GOOD | {"quality": False}, "'quality' must be an integer from 1 to 100, not False"),
        ("thumb", GOOD | {"quality": 80.5}, "'quality' must be an integer from 1 to 100, not 80.5"),
        ("thumb", GOOD | {"format": "png", "quality": 80}, "'quality' applies to 'jpeg' and 'webp' only"),
        ("thumb", GOOD | {"eager": 1}, "Variant 'thumb': 'eager' must be True or False, not 1"),
        ("thumb", GOOD | {"eager": "yes"}, "'eager' must be True or False, not 'yes'"),
    ],
)
def test_spec_refuses_bad_settings_naming_the_variant_and_key(name, value, message):
    with pytest.raises(ValueError, match=message):
        VariantSpec.from_value(name, value)


def test_spec_built_directly_is_validated_too():
    with pytest.raises(ValueError, match="'width' must be an integer from 1 to 4096, not -5"):
        VariantSpec("fit", -5, 10, "png")
    with pytest.raises(ValueError, match="'quality' applies to 'jpeg' and 'webp' only"):
        VariantSpec("fit", 5, 10, "png", quality=50)


class Named(Renderer):
    def __init__(self, name="image", version="1"):
        self.name, self.version = name, version


def test_digest_is_sha256_of_the_canonical_output_and_renderer():
    made = VariantSpec("fit", 256, 200, "jpeg")
    expected = hashlib.sha256(
        json.dumps(
            {"output": made.output(), "renderer": "image", "version": "1", "options": {}},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    ).hexdigest()
    assert made.digest(Named()) == expected
    assert len(expected) == 64 and expected == expected.lower()


def test_digest_changes_with_the_renderers_options():
    from django_attachments.processing.renderers import ImageRenderer

    spec = VariantSpec("fit", 256, 256, "webp")
    assert spec.digest(ImageRenderer()) == spec.digest(ImageRenderer())
    assert spec.digest(ImageRenderer()) != spec.digest(ImageRenderer(max_pixels=1000))
    assert ImageRenderer(max_pixels=1000).options() == {"max_pixels": 1000, "max_read_size": 32 * 1024 * 1024}


def test_how_a_renderer_runs_is_not_part_of_the_digest():
    """Machines whose ffmpeg lives elsewhere, or with another time limit, agree on a variant's digest."""
    from django_attachments.processing.renderers import VideoRenderer

    spec = VariantSpec("fit", 256, 256, "webp")
    here, there = VideoRenderer(), VideoRenderer(ffmpeg="/opt/ffmpeg/bin/ffmpeg", timeout=120)
    assert spec.digest(here) == spec.digest(there)
    assert spec.digest(here) != spec.digest(VideoRenderer(max_read_bytes=1024))


def test_digest_changes_with_the_output_and_the_renderers_version_not_with_eager():
    base = VariantSpec("fit", 256, 256, "webp")
    renderer = Named()
    changed = [
        VariantSpec("fill", 256, 256, "webp"),
        VariantSpec("fit", 255, 256, "webp"),
        VariantSpec("fit", 256, 257, "webp"),
        VariantSpec("fit", 256, 256, "jpeg"),
        VariantSpec("fit", 256, 256, "webp", quality=81),
    ]
    digests = {base.digest(renderer)} | {other.digest(renderer) for other in changed}
    digests |= {base.digest(Named(version="2")), base.digest(Named(name="pdf"))}
    assert len(digests) == len(changed) + 3
    assert VariantSpec("fit", 256, 256, "webp", eager=True).digest(renderer) == base.digest(renderer)
    # The default quality stated or left out is the same output.
    assert VariantSpec("fit", 256, 256, "webp", quality=80).digest(renderer) == base.digest(renderer)


def test_spec_is_frozen_and_hashable():
    made = spec()
    with pytest.raises(AttributeError):
        made.width = 5
    assert {made, spec()} == {made}


# --- the contract -----------------------------------------------------------------------


def test_errors_sit_under_the_package_roots():
    assert issubclass(RenderError, AttachmentError) and issubclass(RenderError, ValueError)
    assert (RenderError("x").code, RenderError.status_code) == ("render_failed", 422)
    assert issubclass(PreviewUnsupported, RenderError)
    assert (PreviewUnsupported("x").code, PreviewUnsupported.status_code) == ("preview_unsupported", 422)
    assert status_for("preview_unsupported") == status_for("render_failed") == 422
    assert issubclass(RenderUnavailable, AttachmentsImproperlyConfigured)
    assert not issubclass(RenderUnavailable, AttachmentError)


def test_base_render_must_be_overridden():
    with pytest.raises(NotImplementedError, match=r"\.render\(\) must be overridden"):
        Renderer().render(io.BytesIO(b""), spec())


def test_builtin_renderers_resolve_and_are_named():
    names = []
    for path in BUILTIN_RENDERERS:
        module, _, attribute = path.rpartition(".")
        renderer = getattr(importlib.import_module(module), attribute)()
        assert isinstance(renderer, Renderer) and renderer.content_types
        names.append(renderer.name)
        assert repr(renderer) == f"<{attribute} {renderer.name!r} version {renderer.version!r}>"
    assert len(set(names)) == len(names) == len(BUILTIN_RENDERERS)


def test_importing_the_package_imports_no_optional_library():
    code = textwrap.dedent(
        """
        import sys
        import django_attachments.processing.renderers
        print([name for name in ("PIL", "pypdfium2", "pydicom", "numpy") if name in sys.modules])
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "content_type, expected",
    [
        ("image/jpeg", True),
        ("image/png", True),
        ("IMAGE/GIF", True),
        ("image/webp; charset=binary", True),
        ("image/bmp", True),
        ("image/x-ms-bmp", True),
        ("image/tiff", True),
        ("image/svg+xml", False),
        ("text/html", False),
        ("application/postscript", False),
        ("image/x-eps", False),
        ("application/pdf", False),
        ("image/vnd.microsoft.icon", False),
        ("image/heic", False),
        ("", False),
    ],
)
def test_image_accepts_by_sniffed_content_type(content_type, expected):
    assert ImageRenderer().accepts(content_type) is expected


@pytest.mark.parametrize(
    "kwargs", [{"max_pixels": 0}, {"max_read_size": -1}, {"max_pixels": True}, {"max_pixels": 1.5}]
)
def test_image_options_are_checked(kwargs):
    with pytest.raises(ValueError, match="must be a positive integer"):
        ImageRenderer(**kwargs)


def test_image_stream_is_read_from_its_start_and_left_open():
    stream = io.BytesIO(samples.encode(samples.solid(), "PNG"))
    stream.seek(0, io.SEEK_END)
    assert opened(ImageRenderer().render(stream, spec())).size == (100, 67)
    assert not stream.closed


def test_image_refuses_a_stream_that_cannot_seek():
    with pytest.raises(TypeError, match="ImageRenderer needs a seekable stream; spool the file"):
        ImageRenderer().render(OneWay(samples.encode(samples.solid())), spec())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF"])
def test_image_a_failing_stream_is_not_called_a_corrupt_file(fmt):
    data = samples.encode(Image.effect_noise((200, 200), 60).convert("RGB"), fmt)
    with pytest.raises(OSError, match="connection reset by storage") as caught:
        ImageRenderer().render(FailingStream(data, good=len(data) // 2), spec())
    assert not isinstance(caught.value, RenderError)


def test_a_missing_pillow_is_reported_not_skipped(monkeypatch):
    renderer = ImageRenderer()
    assert renderer.unavailable_reason() is None
    monkeypatch.setitem(sys.modules, "PIL", None)
    reason = "ImageRenderer needs Pillow, which is not installed (install the 'analyze' extra)."
    assert renderer.accepts("image/png")
    assert renderer.unavailable_reason() == reason
    with pytest.raises(RenderUnavailable, match=r"ImageRenderer needs Pillow"):
        renderer.render(io.BytesIO(b"anything"), spec())


# --- images: sizes and pixels -------------------------------------------------------------

SOURCES = {
    "jpeg": ("JPEG", {"quality": 95}),
    "png": ("PNG", {}),
    "gif": ("GIF", {}),
    "webp": ("WEBP", {"lossless": True}),
    "bmp": ("BMP", {}),
    "tiff": ("TIFF", {"compression": "tiff_lzw"}),
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("format", FORMATS)
def test_image_renders_in_each_format(source, operation, format):
    fmt, options = SOURCES[source]
    data = samples.encode(samples.halves((400, 200)), fmt, **options)  # red left, blue right
    rendered = ImageRenderer().render(io.BytesIO(data), spec(operation, 120, 90, format))
    image = opened(rendered)
    assert rendered.content_type == f"image/{format}"
    if operation == "fit":
        assert image.size == (120, 60)
    else:  # the centred 266 x 200 of the source, shrunk to exactly the box
        assert image.size == (120, 90)
    assert close(rgb(image, (3, image.height // 2)), samples.RED)
    assert close(rgb(image, (image.width - 4, image.height // 2)), samples.BLUE)


def test_fill_crops_about_the_centre():
    image = opened(
        ImageRenderer().render(io.BytesIO(samples.encode(samples.quadrants((400, 100)))), spec("fill", 50, 50))
    )
    assert image.size == (50, 50)  # the middle 100 x 100: the inner halves of the four quadrants
    assert close(rgb(image, (5, 5)), samples.RED) and close(rgb(image, (44, 5)), samples.GREEN)
    assert close(rgb(image, (5, 44)), samples.BLUE) and close(rgb(image, (44, 44)), samples.WHITE)


@pytest.mark.parametrize(
    "operation, source, box, expected",
    [
        ("fit", (50, 30), (256, 256), (50, 30)),  # never enlarged
        ("fit", (300, 30), (100, 100), (100, 10)),
        ("fit", (30, 300), (100, 100), (10, 100)),
        ("fit", (1000, 1), (100, 100), (100, 1)),  # never below a pixel
        ("fill", (50, 30), (256, 128), (50, 25)),  # smaller: the largest crop of the box's aspect
        ("fill", (50, 30), (20, 40), (15, 30)),
        ("fill", (300, 100), (100, 200), (50, 100)),  # smaller on one side only: still never enlarged
        ("fill", (1000, 1), (100, 100), (1, 1)),
        ("fill", (640, 480), (640, 480), (640, 480)),
    ],
)
def test_sizes_are_never_enlarged(operation, source, box, expected):
    data = samples.encode(samples.solid(size=source))
    assert opened(ImageRenderer().render(io.BytesIO(data), spec(operation, *box))).size == expected


# EXIF orientation -> how the stored pixels are turned from the upright picture (the inverse of what a viewer does).
STORED_AS = {
    1: None,
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_90",  # stored a quarter turn anticlockwise; the viewer turns it clockwise
    7: "TRANSVERSE",
    8: "ROTATE_270",
}


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_is_applied(orientation, fmt):
    upright = samples.quadrants((80, 40))
    method = STORED_AS[orientation]
    stored = upright if method is None else upright.transpose(getattr(Image.Transpose, method))
    data = samples.encode(
        stored, fmt, exif=samples.exif(orientation=orientation), **({"quality": 95} if fmt == "JPEG" else {})
    )
    image = opened(ImageRenderer().render(io.BytesIO(data), spec("fit", 40, 40)))
    assert image.size == (40, 20)
    for (x, y), corner in {(4, 4): "tl", (35, 4): "tr", (4, 15): "bl", (35, 15): "br"}.items():
        assert close(rgb(image, (x, y)), samples.QUADRANTS[corner]), (orientation, corner, rgb(image, (x, y)))


def test_a_broken_exif_block_is_ignored():
    data = samples.encode(samples.solid(), "JPEG", exif=b"Exif\x00\x00II*\x00garbage")
    with pytest.warns(UserWarning, match="Corrupt EXIF data"):  # Pillow's, as it gives up on the block
        assert opened(ImageRenderer().render(io.BytesIO(data), spec())).size == (100, 67)


# --- images: metadata never comes out -------------------------------------------------------------

SECRET = "Flat 3, 12 Secret Street"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("format", FORMATS)
def test_no_metadata_comes_out(fmt, format):
    from PIL import ImageCms, PngImagePlugin

    source = samples.solid(size=(120, 80))
    extra = {"exif": samples.exif(orientation=1, gps=True, description=SECRET)}
    extra["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    if fmt == "JPEG":
        extra["comment"] = SECRET.encode()
    if fmt == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_text("Comment", SECRET)
        text.add_itxt("XML:com.adobe.xmp", f"<x:xmpmeta>{SECRET}</x:xmpmeta>")
        extra["pnginfo"] = text
    if fmt in ("JPEG", "WEBP"):
        extra["xmp"] = f"<x:xmpmeta>{SECRET}</x:xmpmeta>".encode()
    data = samples.encode(source, fmt, **extra)
    assert SECRET.encode() in data
    with Image.open(io.BytesIO(data)) as carrier:  # the sample carries what must not come out
        assert "icc_profile" in carrier.info
        assert carrier.getexif().get(0x010E) == SECRET and carrier.getexif().get_ifd(0x8825)

    rendered = ImageRenderer().render(io.BytesIO(data), spec("fit", 60, 60, format))
    assert SECRET.encode() not in rendered.data
    image = opened(rendered)
    leaked = {"exif", "xmp", "XML:com.adobe.xmp", "comment", "Comment", "icc_profile", "dpi", "transparency"}
    assert not leaked & set(image.info)
    assert not image.getexif()
    assert image.getexif().get_ifd(0x8825) == {}  # no GPS position
    assert close(rgb(image, (30, 20)), samples.RED)


# --- images: colour modes --------------------------------------------------------------------


def test_cmyk_becomes_rgb():
    data = samples.encode(Image.new("CMYK", (60, 40), (255, 0, 0, 0)), "JPEG", quality=95)  # pure cyan
    for format in FORMATS:
        image = opened(ImageRenderer().render(io.BytesIO(data), spec("fit", 30, 30, format)))
        assert image.mode == "RGB"
        assert close(rgb(image, (15, 10)), (0, 255, 255)), rgb(image, (15, 10))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_an_icc_profile_is_converted_to_srgb(fmt):
    # Red as the file stores it, in a space whose red is sRGB's green.
    data = samples.encode(samples.solid(samples.RED, (50, 50)), fmt, icc_profile=samples.icc_rgb())
    for format in FORMATS:
        image = opened(ImageRenderer().render(io.BytesIO(data), spec("fit", 20, 20, format)))
        assert close(rgb(image, (10, 10)), samples.GREEN), rgb(image, (10, 10))
        assert "icc_profile" not in image.info


def test_an_icc_profile_keeps_the_alpha():
    image = samples.solid((255, 0, 0, 255), (50, 50), mode="RGBA")
    image.paste((255, 0, 0, 0), (25, 0, 50, 50))
    data = samples.encode(image, "PNG", icc_profile=samples.icc_rgb())
    out = opened(ImageRenderer().render(io.BytesIO(data), spec("fit", 50, 50, "png")))
    assert out.mode == "RGBA"
    assert close(out.getpixel((10, 10)), samples.GREEN) and out.getpixel((10, 10))[3] == 255
    assert out.getpixel((40, 10))[3] == 0


def test_a_broken_icc_profile_leaves_the_pixels_as_they_are():
    data = samples.encode(samples.solid(samples.RED, (50, 50)), "PNG", icc_profile=b"not a profile" * 20)
    assert close(rgb(opened(ImageRenderer().render(io.BytesIO(data), spec())), (10, 10)), samples.RED)


def grey_ramp(mode, values):
    """A one-row image, each pixel a value of ``values``, widened to 8 pixels each."""
    image = Image.new(mode, (len(values), 1))
    for x, value in enumerate(values):
        image.putpixel((x, 0), value)
    return image.resize((len(values) * 8, 8), Image.Resampling.NEAREST)


@pytest.mark.parametrize(
    "mode, fmt, values, expected",
    [
        ("I;16", "PNG", [0, 257 * 64, 257 * 128, 65535], [0, 64, 128, 255]),
        ("I;16", "TIFF", [0, 257 * 64, 257 * 128, 65535], [0, 64, 128, 255]),
        ("I", "TIFF", [0, 257 * 64, 257 * 128, 65535], [0, 64, 128, 255]),  # 16-bit data in 32 bits
        ("I", "TIFF", [-1000, 0, 1000, 3000], [0, 64, 128, 255]),  # another range: stretched over 0-255
        ("F", "TIFF", [0.0, 64 / 255, 128 / 255, 1.0], [0, 64, 128, 255]),
    ],
)
def test_high_bit_depth_greyscale_is_scaled_not_clipped(mode, fmt, values, expected):
    data = samples.encode(grey_ramp(mode, values), fmt)
    image = opened(ImageRenderer().render(io.BytesIO(data), spec("fit", 32, 8, "png")))
    assert image.mode == "L" and image.size == (32, 8)
    got = [image.getpixel((x * 8 + 4, 0)) for x in range(4)]
    assert all(abs(a - b) <= 2 for a, b in zip(got, expected, strict=True)), got


@pytest.mark.parametrize("format, alpha", [("png", True), ("webp", True), ("jpeg", False)])
def test_a_palette_with_transparency_keeps_it_where_the_format_can(format, alpha):
    image = Image.new("P", (40, 20))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (20, 0, 40, 20))  # right half: index 1, blue, made transparent
    data = samples.encode(image, "PNG", transparency=1)
    out = opened(ImageRenderer().render(io.BytesIO(data), spec("fit", 40, 20, format)))
    if alpha:
        assert out.mode == "RGBA"
        assert out.getpixel((35, 10))[3] == 0 and close(out.getpixel((5, 10)), samples.RED)
        assert out.getpixel((5, 10))[3] == 255
    else:  # composited on white
        assert out.mode == "RGB"
        assert close(out.getpixel((35, 10)), samples.WHITE) and close(out.getpixel((5, 10)), samples.RED)


@pytest.mark.parametrize("format", FORMATS)
def test_grey_with_alpha(format):
    image = Image.new("LA", (40, 20), (50, 255))
    image.paste((50, 0), (20, 0, 40, 20))
    out = opened(ImageRenderer().render(io.BytesIO(samples.encode(image)), spec("fit", 40, 20, format)))
    assert close(rgb(out, (5, 10)), (50, 50, 50), tolerance=6)
    if format == "jpeg":
        assert close(rgb(out, (35, 10)), samples.WHITE, tolerance=6)
    else:
        assert out.convert("RGBA").getpixel((35, 10))[3] == 0


@pytest.mark.parametrize("fmt, options", [("PNG", {}), ("TIFF", {"compression": "group4"}), ("BMP", {})])
def test_one_bit_images_shrink_to_grey(fmt, options):
    image = Image.new("1", (64, 64), 0)
    image.paste(1, (32, 0, 64, 64))
    for y in range(0, 64, 2):  # a fine stripe in the left half: shrunk, it is grey, not black or white
        image.paste(1, (0, y, 32, y + 1))
    out = opened(ImageRenderer().render(io.BytesIO(samples.encode(image, fmt, **options)), spec("fit", 16, 16)))
    assert out.mode == "L"
    assert 90 <= out.getpixel((4, 8)) <= 165 and out.getpixel((12, 8)) == 255


@pytest.mark.parametrize("make", [samples.animated_gif, samples.animated_webp])
def test_an_animation_gives_its_first_frame(make):
    for format in FORMATS:
        out = opened(ImageRenderer().render(io.BytesIO(make()), spec("fit", 20, 20, format)))
        assert out.size == (20, 15)
        assert close(rgb(out, (10, 7)), samples.RED), rgb(out, (10, 7))


def test_a_multipage_tiff_gives_its_first_page():
    pages = [samples.solid(colour, (30, 20)) for colour in (samples.GREEN, samples.RED)]
    data = samples.encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert close(rgb(opened(ImageRenderer().render(io.BytesIO(data), spec())), (5, 5)), samples.GREEN)


def test_finish_leaves_the_callers_image_as_it_was():
    image = samples.solid(size=(32, 32))
    image.info["exif"] = samples.exif(description=SECRET)
    rendered = finish(image, spec("fit", 32, 32))
    assert image.info["exif"] and image.size == (32, 32)
    assert SECRET.encode() not in rendered.data and opened(rendered).size == (32, 32)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I;16", "I", "F", "RGBX", "YCbCr", "HSV"])
@pytest.mark.parametrize("format", FORMATS)
def test_finish_takes_every_mode_to_every_format(mode, format):
    rendered = finish(Image.new(mode, (64, 48)), spec("fill", 32, 32, format))
    assert isinstance(rendered, Rendered)
    image = opened(rendered)
    assert image.size == (32, 32)
    assert image.mode in {"jpeg": {"L", "RGB"}, "webp": {"RGB", "RGBA"}, "png": {"L", "LA", "RGB", "RGBA"}}[format]


# --- images: what is refused ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data, pixels",
    [
        (samples.crafted_png(100_000, 100_000), "100000 x 100000"),  # 30 GB of RGB, declared in a tiny file
        (samples.jpeg_declaring(60_000, 60_000), None),  # refused by Pillow's own limit as it opens the file
        (samples.jpeg_declaring(8000, 7000), "8000 x 7000"),  # under Pillow's own limit, over ours
    ],
)
def test_a_decompression_bomb_is_refused_before_decoding(data, pixels):
    assert len(data) < 2000
    with pytest.raises(RenderError, match="more than the 50,000,000 pixels allowed; it was refused without") as caught:
        ImageRenderer().render(io.BytesIO(data), spec())
    if pixels:
        assert str(caught.value).startswith(f"The image is {pixels} pixels")


def test_the_pixel_limit_is_the_renderers_own():
    pillows = Image.MAX_IMAGE_PIXELS
    data = samples.encode(samples.solid(size=(20, 20)))
    with pytest.raises(RenderError, match="The image is 20 x 20 pixels, more than the 399 pixels allowed"):
        ImageRenderer(max_pixels=399).render(io.BytesIO(data), spec())
    assert ImageRenderer(max_pixels=400).render(io.BytesIO(data), spec()).width == 20
    assert Image.MAX_IMAGE_PIXELS == pillows


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"])
def test_a_truncated_image_is_refused(fmt):
    from PIL import ImageFile

    data = samples.encode(Image.effect_noise((300, 200), 80).convert("RGB"), fmt)
    with pytest.raises(RenderError) as caught:
        ImageRenderer().render(io.BytesIO(data[: len(data) // 2]), spec())
    assert str(caught.value) == CORRUPT_IMAGE
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>',
        b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        samples.pdf(),
    ],
    ids=["empty", "text", "svg", "html", "pdf"],
)
def test_what_is_not_a_raster_image_is_refused(data):
    with pytest.raises(RenderError, match="corrupt or truncated"):
        ImageRenderer().render(io.BytesIO(data), spec())


def test_an_eps_labelled_as_a_jpeg_is_never_handed_to_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    # A Ghostscript that leaves a mark when run, first on the PATH.
    mark = tmp_path / "ghostscript-ran"
    gs = tmp_path / "gs"
    gs.write_text(f'#!/bin/sh\necho "$@" >> {mark}\n[ "$1" = --version ] && echo 10.00.0 && exit 0\nexit 1\n')
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None, raising=False)  # found again, on the new PATH
    data = samples.eps()

    with pytest.raises(RenderError, match="corrupt or truncated"):
        ImageRenderer().render(io.BytesIO(data), spec())  # the renderer is asked as if it were image/jpeg
    assert not mark.exists()

    # The trap works: Pillow left to itself opens the file as EPS and runs Ghostscript.
    with pytest.raises(subprocess.CalledProcessError), Image.open(io.BytesIO(data)) as eps:  # ours draws nothing
        assert eps.format == "EPS"
        eps.load()
    assert "-dSAFER" in mark.read_text()


def test_a_webp_is_read_whole_only_up_to_the_read_limit():
    data = samples.encode(Image.effect_noise((300, 300), 90).convert("RGB"), "WEBP", lossless=True)
    # Pillow reads the first 30 bytes, then the rest in one read.
    limit = len(data) - 31
    with pytest.raises(RenderError, match=f"it would be read whole, and it is larger than {limit:,} bytes"):
        ImageRenderer(max_read_size=limit).render(io.BytesIO(data), spec())
    assert ImageRenderer(max_read_size=limit + 1).render(io.BytesIO(data), spec()).width == 100


# --- images: a large JPEG is decoded small ---------------------------------------------------


@pytest.fixture(scope="module")
def photo_24mp(tmp_path_factory):
    """A 6000 x 4000 JPEG (24 megapixels) with red and blue halves."""
    path = tmp_path_factory.mktemp("photo") / "24mp.jpg"
    path.write_bytes(samples.encode(samples.halves((6000, 4000)), "JPEG", quality=90))
    return path


@pytest.mark.parametrize(
    "box, operation, decoded",
    [
        ((256, 256), "fit", (750, 500)),  # 1/8: the smallest DCT scale, still over 256 x 171
        ((256, 256), "fill", (750, 500)),  # fill needs 384 x 256 of the whole: 1/8 still holds it
        ((1024, 1024), "fit", (1500, 1000)),  # 1/4 holds 1024 x 683; 1/8 would not
        ((700, 700), "fill", (1500, 1000)),  # fill needs 1050 x 700: 1/4
        ((4000, 4000), "fit", (6000, 4000)),  # nothing smaller holds 4000 x 2667
    ],
)
def test_a_jpeg_is_decoded_at_the_smallest_scale_the_variant_allows(photo_24mp, box, operation, decoded):
    with photo_24mp.open("rb") as stream:
        image = ImageRenderer().load(stream, spec(operation, *box))
    assert image.size == decoded


def test_a_jpeg_turned_a_quarter_is_decoded_for_its_upright_box():
    data = samples.encode(samples.solid(size=(4000, 1000)), "JPEG", exif=samples.exif(orientation=6))
    # Upright it is 1000 x 4000: a 100 x 400 fit needs 100 x 400 of it, so 1/8 (125 x 500) still holds it.
    image = ImageRenderer().load(io.BytesIO(data), spec("fit", 100, 400))
    assert image.size == (125, 500)
    assert opened(finish(image, spec("fit", 100, 400))).size == (100, 400)


PEAK_RSS = """
import io, resource, sys
from PIL import Image
from django_attachments.processing.renderers import ImageRenderer, VariantSpec
spec = VariantSpec(sys.argv[2], 256, 256, "webp")
renderer = ImageRenderer()
small = io.BytesIO()
Image.new("RGB", (800, 600), "red").save(small, "JPEG")
renderer.render(small, spec)  # warm up: the libraries loaded, their first buffers allocated
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as stream:
    rendered = renderer.render(stream, spec)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(rendered.width, rendered.height, (after - before) // 1024)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux")
def test_a_24_megapixel_jpeg_thumbnail_takes_a_few_mib_not_100(photo_24mp):
    # Decoded whole, the photo takes 96 MiB (Pillow keeps RGB in 4 bytes a pixel); at 1/8, 1.5 MiB.
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(photo_24mp), "fill"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    width, height, grown_mib = result.stdout.split()
    assert f"{width} {height}" == "256 256"
    assert int(grown_mib) < 20, f"peak RSS grew by {grown_mib} MiB"


# --- PDF ------------------------------------------------------------------------------------

needs_pdfium = pytest.mark.skipif(
    PdfRenderer().unavailable_reason() is not None, reason="pypdfium2 is not installed (the 'preview' extra)"
)


@pytest.mark.parametrize(
    "content_type, expected",
    [("application/pdf", True), ("APPLICATION/PDF; charset=binary", True), ("application/postscript", False)],
)
def test_pdf_accepts_by_sniffed_content_type(content_type, expected):
    assert PdfRenderer().accepts(content_type) is expected


@needs_pdfium
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("format", FORMATS)
def test_pdf_first_page_renders_in_each_format(operation, format):
    data = samples.pdf(pages=2, size=(200, 100))  # red left half, blue right half
    image = opened(PdfRenderer().render(io.BytesIO(data), spec(operation, 120, 90, format)))
    # A page is drawn at the box's size, whatever its own: fit touches the box, fill is the box.
    assert image.size == ((120, 60) if operation == "fit" else (120, 90))
    assert close(rgb(image, (3, image.height // 2)), samples.RED)
    assert close(rgb(image, (image.width - 4, image.height // 2)), samples.BLUE)


@needs_pdfium
@pytest.mark.parametrize(
    "page, operation, box",
    [
        ((595, 842), "fit", (256, 256)),
        ((595, 842), "fill", (256, 256)),
        ((612, 792), "fill", (4096, 100)),
        ((3.3, 7.7), "fit", (1000, 1000)),  # a page smaller than the box is drawn up to it: drawings, not pixels
        ((14400, 14400), "fill", (333, 777)),
        ((1, 14400), "fill", (64, 64)),  # a strip: only the part the crop keeps is drawn
        ((1, 14400), "fit", (64, 64)),
    ],
)
def test_pdf_sizes_match_the_box_exactly(page, operation, box):
    rendered = PdfRenderer().render(io.BytesIO(samples.pdf(size=page)), spec(operation, *box))
    image = opened(rendered)
    if operation == "fill":
        assert image.size == box
    else:
        assert image.width <= box[0] and image.height <= box[1]
        assert image.width == box[0] or image.height == box[1]
        expected = min(box[0] / page[0], box[1] / page[1])
        assert abs(image.width - page[0] * expected) <= 1 and abs(image.height - page[1] * expected) <= 1


@needs_pdfium
def test_pdf_fill_crops_about_the_centre():
    draw = "1 0 0 rg 0 0 100 300 re f 0 1 0 rg 100 0 100 300 re f 0 0 1 rg 200 0 100 300 re f"  # red, green, blue
    image = opened(PdfRenderer().render(io.BytesIO(samples.pdf(size=(300, 300), draw=draw)), spec("fill", 30, 90)))
    assert image.size == (30, 90)
    assert all(close(rgb(image, (x, y)), samples.GREEN) for x in (1, 28) for y in (1, 88))


@needs_pdfium
def test_pdf_page_rotation_is_applied():
    data = samples.pdf(size=(200, 100), rotate=90)  # drawn landscape, shown portrait: red on top
    image = opened(PdfRenderer().render(io.BytesIO(data), spec("fit", 100, 100)))
    assert image.size == (50, 100)
    assert close(rgb(image, (25, 5)), samples.RED) and close(rgb(image, (25, 94)), samples.BLUE)


@needs_pdfium
def test_pdf_has_a_white_background():
    draw = "0 0 1 rg 0 0 50 100 re f"  # only the left quarter is drawn
    image = opened(PdfRenderer().render(io.BytesIO(samples.pdf(size=(200, 100), draw=draw)), spec("fit", 200, 200)))
    assert close(rgb(image, (10, 50)), samples.BLUE) and close(rgb(image, (150, 50)), samples.WHITE, tolerance=0)


@needs_pdfium
def test_pdf_of_300_pages_reads_only_what_the_first_page_needs():
    data = samples.pdf(pages=300, padding=10_000)  # each page's content carries 10 KB
    stream = Counting(data)
    image = opened(PdfRenderer().render(stream, spec("fit", 256, 256, "webp")))
    assert image.size == (256, 128)
    assert len(data) > 3_000_000
    assert stream.bytes_read < len(data) * 0.02, f"{stream.bytes_read} of {len(data)} bytes read"
    # The second page's content stream is never read.
    second = data.index(b"%p", data.index(b"%p") + 20_000)
    assert not stream.was_read(second, second + 10_000)


@needs_pdfium
def test_pdf_encrypted_with_a_password_is_refused():
    pytest.importorskip("pypdf")
    data = samples.encrypted_pdf(user_password="secret")
    with pytest.raises(RenderError, match="The PDF is encrypted with a password; it cannot be previewed") as caught:
        PdfRenderer().render(io.BytesIO(data), spec())
    assert caught.value.code == "render_failed" and not isinstance(caught.value, PreviewUnsupported)


@needs_pdfium
def test_pdf_encrypted_without_a_user_password_opens_as_viewers_open_it():
    pytest.importorskip("pypdf")
    image = opened(PdfRenderer().render(io.BytesIO(samples.encrypted_pdf(user_password="")), spec()))
    assert close(rgb(image, (5, 25)), samples.RED)


@needs_pdfium
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.4\n",
        b"%PDF-1.7\nthis is not a PDF body at all\n%%EOF\n",
        samples.pdf()[:200],
        samples.pdf()[: len(samples.pdf()) // 2],
        samples.encode(samples.solid(), "PNG"),
    ],
    ids=["empty", "header-only", "garbage", "cut-early", "cut-half", "png"],
)
def test_a_malformed_pdf_is_refused(data):
    with pytest.raises(RenderError) as caught:
        PdfRenderer().render(io.BytesIO(data), spec())
    assert str(caught.value) == CORRUPT_PDF


@needs_pdfium
def test_a_pdf_with_no_pages_is_refused():
    with pytest.raises(RenderError, match="^The PDF has no pages.$"):
        PdfRenderer().render(io.BytesIO(samples.pdf(pages=0)), spec())


@needs_pdfium
def test_pdf_a_failing_stream_is_not_called_a_corrupt_file():
    data = samples.pdf(pages=3, padding=5000)
    for good in (len(data) // 2, len(data) - 10):
        with pytest.raises(OSError, match="connection reset by storage") as caught:
            PdfRenderer().render(FailingStream(data, good=good), spec())
        assert not isinstance(caught.value, RenderError)


@needs_pdfium
def test_pdf_refuses_a_stream_that_cannot_seek_and_leaves_one_open():
    with pytest.raises(TypeError, match="PdfRenderer needs a seekable stream"):
        PdfRenderer().render(OneWay(samples.pdf()), spec())
    stream = io.BytesIO(samples.pdf())
    stream.seek(0, io.SEEK_END)
    PdfRenderer().render(stream, spec())
    assert not stream.closed


@needs_pdfium
def test_pdf_bitmap_is_capped_at_max_pixels():
    image = opened(
        PdfRenderer(max_pixels=10_000).render(io.BytesIO(samples.pdf(size=(200, 100))), spec("fill", 400, 200))
    )
    assert image.size == (140, 70)  # the box's shape, within 10,000 pixels
    with pytest.raises(ValueError, match="max_pixels must be a positive integer, not 0"):
        PdfRenderer(max_pixels=0)


@needs_pdfium
def test_pdf_renders_from_many_threads_at_once():
    import concurrent.futures

    files = [samples.pdf(size=(100 + n * 10, 100), pages=1 + n % 3) for n in range(8)]
    serial = [PdfRenderer().render(io.BytesIO(data), spec("fill", 64, 64)).data for data in files]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            parallel = list(
                pool.map(lambda data: PdfRenderer().render(io.BytesIO(data), spec("fill", 64, 64)).data, files)
            )
            assert parallel == serial


@pytest.mark.parametrize(
    "library, missing", [("pypdfium2", "pypdfium2"), ("PIL", "Pillow")], ids=["pypdfium2", "pillow"]
)
def test_a_missing_pypdfium2_or_pillow_is_reported_not_skipped(library, missing, monkeypatch):
    monkeypatch.setitem(sys.modules, library, None)
    reason = f"PdfRenderer needs {missing}, which is not installed (install the 'preview' extra)."
    assert PdfRenderer().unavailable_reason() == reason
    with pytest.raises(RenderUnavailable) as caught:
        PdfRenderer().render(io.BytesIO(samples.pdf()), spec())
    assert str(caught.value) == reason


# --- DICOM ----------------------------------------------------------------------------------

needs_pydicom = pytest.mark.skipif(
    DicomRenderer().unavailable_reason() is not None, reason="pydicom and NumPy are not installed (the 'dicom' extra)"
)
CORRUPT_DICOM = "The file is not a readable DICOM image: it is corrupt or truncated."


def grey_levels(rendered, count, width=8):
    """The grey level in the middle of each of ``count`` stripes ``width`` pixels wide (a lossless output)."""
    image = opened(rendered)
    return [image.getpixel((x * width + width // 2, image.height // 2)) for x in range(count)]


def render_dicom(data, box=(256, 256), operation="fit", format="png", renderer=None):
    return (renderer or DicomRenderer()).render(io.BytesIO(data), spec(operation, *box, format))


def near(got, expected, tolerance=1):
    return len(got) == len(expected) and all(abs(a - b) <= tolerance for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize(
    "content_type, expected",
    [("application/dicom", True), ("APPLICATION/DICOM", True), ("application/octet-stream", False)],
)
def test_dicom_accepts_by_sniffed_content_type(content_type, expected):
    assert DicomRenderer().accepts(content_type) is expected


@needs_pydicom
def test_libmagic_sniffs_what_the_dicom_renderer_accepts():
    from django_attachments.ingest import sniff

    assert DicomRenderer().accepts(sniff(samples.dicom(samples.stripes([1, 2]))))


@needs_pydicom
@pytest.mark.parametrize(
    "attributes, expected",
    [
        # CT: stored 0-4095, Hounsfield units = stored - 1024; a soft-tissue window (40, 400) shows -160 to 240 HU.
        # PS3.3 C.11.2.1.2.1: at or below c - 0.5 - (w-1)/2 = -160: 0; above c - 0.5 + (w-1)/2 = 239: 255;
        # 40 HU: ((40 - 39.5) / 399 + 0.5) x 255 = 127.8; 140 HU: ((140 - 39.5) / 399 + 0.5) x 255 = 191.7.
        ({"WindowCenter": 40, "WindowWidth": 400}, [0, 0, 128, 192, 255, 255]),
        # Several windows: the first one.
        ({"WindowCenter": [40, 400], "WindowWidth": [400, 2000]}, [0, 0, 128, 192, 255, 255]),
        # LINEAR_EXACT: (x - (c - w/2)) / w x 255: -160 -> 0, 40 -> 127.5, 140 -> 191.25, 239 -> 253.7.
        ({"WindowCenter": 40, "WindowWidth": 400, "VOILUTFunction": "LINEAR_EXACT"}, [0, 0, 128, 191, 254, 255]),
        # SIGMOID: 255 / (1 + exp(-4 (x - c) / w)): -1000 -> 0.008, -160 -> 255 / (1 + e^2) = 30.4,
        # 40 -> 127.5, 140 -> 255 / (1 + e^-1) = 186.4, 239 -> 255 / (1 + e^-1.99) = 224.3, 3000 -> 255.
        ({"WindowCenter": 40, "WindowWidth": 400, "VOILUTFunction": "SIGMOID"}, [0, 30, 128, 186, 224, 255]),
        # No window: the frame's own range, -1000 to 3000 HU.
        ({}, [0, 53, 66, 73, 79, 255]),
    ],
    ids=["window", "first-of-several", "linear-exact", "sigmoid", "no-window"],
)
def test_dicom_ct_is_windowed_as_the_file_says(attributes, expected):
    hounsfield = [-1000, -160, 40, 140, 239, 3000]
    stored = [value + 1024 for value in hounsfield]
    data = samples.dicom(samples.stripes(stored), bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024, **attributes)
    assert near(grey_levels(render_dicom(data), 6), expected), grey_levels(render_dicom(data), 6)


@needs_pydicom
def test_dicom_rescale_slope_applies_before_the_window():
    # Stored 0, 100, 200 with slope 2, intercept -100: -100, 100, 300; window 100 / 401 maps them to
    # ((x - 99.5) / 400 + 0.5) x 255: 0.3, 127.8, 255.3.
    data = samples.dicom(
        samples.stripes([0, 100, 200]), RescaleSlope=2, RescaleIntercept=-100, WindowCenter=100, WindowWidth=401
    )
    assert near(grey_levels(render_dicom(data), 3), [0, 128, 255])


@needs_pydicom
def test_dicom_monochrome1_is_inverted():
    data = samples.dicom(samples.stripes([100, 200, 300]), photometric="MONOCHROME1")
    assert near(grey_levels(render_dicom(data), 3), [255, 128, 0])
    windowed = samples.dicom(
        samples.stripes([100, 200, 300]), photometric="MONOCHROME1", WindowCenter=200, WindowWidth=101
    )
    # 200: ((200 - 199.5) / 100 + 0.5) x 255 = 128.8, shown as 255 - 129.
    assert near(grey_levels(render_dicom(windowed), 3), [255, 126, 0])


@needs_pydicom
@pytest.mark.parametrize(
    "values, dtype, bits, attributes, expected",
    [
        ([10, 100, 200], "uint8", 8, {}, [10, 100, 200]),  # 8-bit without a window: as stored
        ([10, 100, 200], "uint8", 8, {"WindowCenter": 100, "WindowWidth": 181}, [0, 128, 255]),
        ([0, 2048, 4095], "uint16", 12, {}, [0, 128, 255]),
        ([-2000, 0, 2000], "int16", 16, {}, [0, 128, 255]),  # signed
        ([-2000, 0, 2000], "int16", 16, {"WindowCenter": 0, "WindowWidth": 2001}, [0, 128, 255]),
        ([0, 1 << 15, 65535], "uint16", 16, {}, [0, 128, 255]),
    ],
)
def test_dicom_bit_depths_and_signedness(values, dtype, bits, attributes, expected):
    data = samples.dicom(samples.stripes(values, dtype=dtype), bits_stored=bits, **attributes)
    assert near(grey_levels(render_dicom(data), 3), expected), grey_levels(render_dicom(data), 3)


@needs_pydicom
def test_dicom_voi_lut_is_applied_when_there_is_no_window():
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    lut = Dataset()
    lut.add_new(0x00283002, "US", [3, 100, 8])  # LUT Descriptor: three entries, for 100 to 102, 8 bits each
    lut.add_new(0x00283006, "US", [0, 51, 255])  # LUT Data
    data = samples.dicom(samples.stripes([90, 100, 101, 102, 110]), VOILUTSequence=Sequence([lut]))
    # Below the first mapped value: the first entry; above the last: the last entry.
    assert near(grey_levels(render_dicom(data), 5), [0, 0, 51, 255, 255])


@needs_pydicom
def test_dicom_a_uniform_frame_is_black_not_an_error():
    assert grey_levels(render_dicom(samples.dicom(samples.stripes([500, 500]))), 2) == [0, 0]


@needs_pydicom
def test_dicom_enhanced_multiframe_takes_its_values_from_the_functional_groups():
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    window, rescale, shared = Dataset(), Dataset(), Dataset()
    window.WindowCenter, window.WindowWidth = 40, 400
    rescale.RescaleIntercept, rescale.RescaleSlope, rescale.RescaleType = -1024, 1, "HU"
    shared.FrameVOILUTSequence = Sequence([window])
    shared.PixelValueTransformationSequence = Sequence([rescale])
    frames = samples.numpy_stack([samples.stripes([24, 864, 1064, 1164, 1263, 4024])] * 2)
    data = samples.dicom(frames, bits_stored=12, SharedFunctionalGroupsSequence=Sequence([shared]))
    assert near(grey_levels(render_dicom(data), 6), [0, 0, 128, 192, 255, 255])


@needs_pydicom
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("format", FORMATS)
def test_dicom_renders_in_each_format(operation, format):
    import numpy

    frame = numpy.zeros((200, 400), numpy.uint16)
    frame[:, 200:] = 1000  # left black, right white
    image = opened(render_dicom(samples.dicom(frame), (120, 90), operation, format))
    assert image.size == ((120, 60) if operation == "fit" else (120, 90))
    assert close(rgb(image, (3, image.height // 2)), samples.BLACK)
    assert close(rgb(image, (image.width - 4, image.height // 2)), samples.WHITE)


@needs_pydicom
def test_dicom_colour():
    import numpy
    from pydicom.pixels import convert_color_space

    red = numpy.zeros((16, 24, 3), numpy.uint8)
    red[..., 0] = 255
    red[:, 12:] = (0, 0, 255)
    for photometric, pixels in [("RGB", red), ("YBR_FULL", convert_color_space(red, "RGB", "YBR_FULL"))]:
        image = opened(render_dicom(samples.dicom(pixels, photometric=photometric)))
        assert image.mode == "RGB"
        assert close(image.getpixel((2, 8)), samples.RED) and close(image.getpixel((20, 8)), samples.BLUE)


@needs_pydicom
def test_dicom_palette_colour():
    import numpy

    lut = numpy.zeros(256, numpy.uint16)
    red, green, blue = lut.copy(), lut.copy(), lut.copy()
    red[1], green[2], blue[3] = 65535, 65535, 65535  # index 1 red, 2 green, 3 blue, the rest black
    data = samples.dicom(
        samples.stripes([0, 1, 2, 3], dtype="uint8"),
        photometric="PALETTE COLOR",
        RedPaletteColorLookupTableDescriptor=[256, 0, 16],
        GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
        BluePaletteColorLookupTableDescriptor=[256, 0, 16],
        RedPaletteColorLookupTableData=red.tobytes(),
        GreenPaletteColorLookupTableData=green.tobytes(),
        BluePaletteColorLookupTableData=blue.tobytes(),
    )
    image = opened(render_dicom(data))
    got = [image.getpixel((x * 8 + 4, 8)) for x in range(4)]
    assert got == [samples.BLACK, samples.RED, samples.GREEN, samples.BLUE]


@needs_pydicom
def test_dicom_multiframe_reads_and_decodes_only_the_first_frame():
    import numpy

    frames = numpy.stack([numpy.full((64, 64), value, numpy.uint16) for value in range(10)])
    frames[0, :, 32:] = 1000  # frame 0: left black, right white; the others uniform
    data = samples.dicom(frames)
    stream = Counting(data)
    image = opened(DicomRenderer().render(stream, spec("fit", 64, 64)))
    assert image.getpixel((5, 5)) == 0 and image.getpixel((60, 5)) == 255
    pixel_data = data.index(b"\xe0\x7f\x10\x00OW") + 12  # (7FE0,0010), explicit VR: the value's start
    frame_bytes = 64 * 64 * 2
    assert len(data) == pixel_data + 10 * frame_bytes
    assert stream.was_read(pixel_data, pixel_data + frame_bytes)
    assert not stream.was_read(pixel_data + frame_bytes, len(data))  # frames 1 to 9
    assert stream.bytes_read < pixel_data + frame_bytes * 1.2


@needs_pydicom
def test_dicom_rle_lossless_renders():
    from pydicom.uid import RLELossless

    data = samples.dicom(samples.stripes([100, 200, 300]), compress=RLELossless)
    assert b"\xfe\xff\x00\xe0" in data  # encapsulated: items
    assert near(grey_levels(render_dicom(data), 3), [0, 128, 255])


@needs_pydicom
def test_dicom_jpeg_baseline_renders_through_pillow():
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGBaseline8Bit

    if not get_decoder(JPEGBaseline8Bit).is_available:
        pytest.skip("no JPEG Baseline decoder for pydicom here")
    frame = samples.stripes([30, 130, 230], dtype="uint8")
    jpeg = samples.encode(Image.fromarray(frame), "JPEG", quality=100)
    data = samples.dicom(frame, fragments=[jpeg], transfer_syntax=JPEGBaseline8Bit)
    assert near(grey_levels(render_dicom(data), 3), [30, 130, 230], tolerance=4)


@needs_pydicom
def test_dicom_compression_without_a_decoder_is_unsupported_naming_what_to_install():
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS plugin is installed here")
    # The fragment is never looked at: the renderer refuses before decoding.
    data = samples.dicom(
        samples.stripes([1, 2]), fragments=[b"\xff\xd8 not JPEG-LS \xff\xd9"], transfer_syntax=JPEGLSLossless
    )
    with pytest.raises(PreviewUnsupported) as caught:
        render_dicom(data)
    message = str(caught.value)
    assert message.startswith(
        "The DICOM file's pixel data is compressed as JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80), "
        "and no installed pixel-data plugin decodes it: a plugin such as pylibjpeg is needed ("
    )
    assert "pylibjpeg-libjpeg" in message
    assert caught.value.code == "preview_unsupported" and isinstance(caught.value, RenderError)


@needs_pydicom
@pytest.mark.filterwarnings("ignore:Expected explicit VR")  # pydicom's, guessing at an unknown encoding
def test_dicom_an_unknown_transfer_syntax_is_unsupported():
    data = samples.dicom(samples.stripes([1, 2]), fragments=[b"opaque"], transfer_syntax="1.2.826.0.1.3680043.8.498.99")
    with pytest.raises(PreviewUnsupported, match=r"encoded as unknown \(1\.2\.826\.0\.1\.3680043\.8\.498\.99\)"):
        render_dicom(data)


@needs_pydicom
def test_dicom_without_pixel_data_is_unsupported():
    data = samples.dicom(samples.stripes([1, 2]), pixel_data=False)
    del_rows = samples.dicom(samples.stripes([1, 2]), pixel_data=False, Rows=None, Columns=None)
    with pytest.raises(PreviewUnsupported, match="holds no image \\(it has no pixel data\\)"):
        render_dicom(del_rows)
    # An image declared with no pixel data after it: the file was cut short.
    with pytest.raises(RenderError, match="truncated: it declares an image but holds no pixel data") as caught:
        render_dicom(data)
    assert not isinstance(caught.value, PreviewUnsupported)


@needs_pydicom
def test_dicom_deflated_is_unsupported_without_being_inflated():
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    data = samples.dicom(samples.stripes([1, 2] * 500, rows=200), transfer_syntax=DeflatedExplicitVRLittleEndian)
    stream = Counting(data)
    with pytest.raises(PreviewUnsupported, match="stored deflated"):
        DicomRenderer().render(stream, spec())
    assert stream.bytes_read < 1024


@needs_pydicom
def test_dicom_colour_model_not_previewed():
    data = samples.dicom(samples.stripes([1, 2]), PhotometricInterpretation="HSV")
    with pytest.raises(PreviewUnsupported, match=r"colour model \(HSV\) is not one that is previewed"):
        render_dicom(data)


@needs_pydicom
def test_dicom_bomb_is_refused_from_the_header():
    data = samples.dicom(samples.stripes([1, 2]), Rows=60000, Columns=60000)
    with pytest.raises(RenderError, match="The DICOM image is 60000 x 60000 pixels, more than the 50,000,000"):
        render_dicom(data)
    with pytest.raises(RenderError, match="16 x 16 pixels, more than the 255 pixels allowed"):
        render_dicom(samples.dicom(samples.stripes([1, 2], width=8)), renderer=DicomRenderer(max_pixels=255))


@needs_pydicom
@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "has no 'DICM' marker"),
        (b"\0" * 128 + b"DICX" + b"\0" * 100, "has no 'DICM' marker"),
        (samples.encode(samples.solid(), "PNG"), "has no 'DICM' marker"),
    ],
)
def test_not_dicom_is_refused(data, message):
    with pytest.raises(RenderError, match=message):
        render_dicom(data)


@needs_pydicom
def test_a_truncated_dicom_is_refused():
    from pydicom.uid import RLELossless

    for data in (
        samples.dicom(samples.stripes([100, 200, 300])),
        samples.dicom(samples.stripes([1, 2, 3]), compress=RLELossless),
    ):
        pixel_data = data.index(b"\xe0\x7f\x10\x00")
        for cut in (200, pixel_data - 3, pixel_data + 20, len(data) - 20):
            with pytest.raises(RenderError) as caught:
                render_dicom(data[:cut])
            assert str(caught.value) in (
                CORRUPT_DICOM,
                "The DICOM file is truncated: it declares an image but holds no pixel data.",
            ), cut


@needs_pydicom
def test_dicom_corrupt_rle_is_refused():
    from pydicom.uid import RLELossless

    data = samples.dicom(samples.stripes([1, 2]), fragments=[b"\x01" * 64], transfer_syntax=RLELossless)
    with pytest.raises(RenderError) as caught:
        render_dicom(data)
    assert str(caught.value) == CORRUPT_DICOM


@needs_pydicom
def test_dicom_a_failing_stream_is_not_called_a_corrupt_file():
    data = samples.dicom(samples.stripes(list(range(0, 4000, 40)), rows=64))
    for good in (100, len(data) // 2, len(data) - 10):
        with pytest.raises(OSError, match="connection reset by storage") as caught:
            DicomRenderer().render(FailingStream(data, good=good), spec())
        assert not isinstance(caught.value, RenderError)


@needs_pydicom
def test_dicom_refuses_a_stream_that_cannot_seek():
    with pytest.raises(TypeError, match="DicomRenderer needs a seekable stream"):
        DicomRenderer().render(OneWay(samples.dicom(samples.stripes([1, 2]))), spec())


@needs_pydicom
def test_dicom_512_16_bit_in_bounded_time():
    import numpy

    frame = (numpy.arange(512 * 512, dtype=numpy.uint32) % 4096).astype(numpy.uint16).reshape(512, 512)
    data = samples.dicom(frame, bits_stored=12, WindowCenter=2048, WindowWidth=4096)
    assert opened(render_dicom(data, format="webp")).size == (256, 256)


@pytest.mark.parametrize("kwargs", [{"max_pixels": 0}, {"max_header_read": 0}, {"max_pixels": False}])
def test_dicom_options_are_checked(kwargs):
    with pytest.raises(ValueError, match="must be a positive integer"):
        DicomRenderer(**kwargs)


@pytest.mark.parametrize(
    "library, missing",
    [("pydicom", "pydicom"), ("numpy", "NumPy"), ("PIL", "Pillow")],
    ids=["pydicom", "numpy", "pillow"],
)
def test_a_missing_pydicom_numpy_or_pillow_is_reported_not_skipped(library, missing, monkeypatch):
    monkeypatch.setitem(sys.modules, library, None)
    reason = f"DicomRenderer needs {missing}, which is not installed (install the 'dicom' extra)."
    assert DicomRenderer().unavailable_reason() == reason
    with pytest.raises(RenderUnavailable) as caught:
        DicomRenderer().render(io.BytesIO(b"anything"), spec())
    assert str(caught.value) == reason


@needs_pydicom
def test_pydicom_2_is_reported_as_too_old(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom.pixels", None)  # what pydicom 2 lacks
    import pydicom

    reason = (
        f"DicomRenderer needs pydicom 3.0 or later; {pydicom.__version__} is installed (install the 'dicom' extra)."
    )
    assert DicomRenderer().unavailable_reason() == reason


# --- video ----------------------------------------------------------------------------------

UNREADABLE_VIDEO = "The file is not a readable video: it is corrupt, truncated or of an unsupported format"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """The clips, made by ffmpeg once for the module (MPEG-4 Part 2 and AAC: encoders every FFmpeg has)."""
    if samples.ffmpeg_path() is None:
        pytest.skip("FFmpeg is not installed (Debian/Ubuntu: apt-get install ffmpeg)")
    directory = tmp_path_factory.mktemp("videos")

    class Videos:
        clip = samples.video(directory / "clip.mp4")  # red, blue from 0.5 s
        short = samples.video(directory / "short.mp4", duration=0.4, turns_blue_at=0.2)  # ends before 1 s
        wide_pixels = samples.video(directory / "wide.mp4", size=(160, 120), audio=False, filters=",setsar=2")
        rotated = samples.halves_video(directory / "rotated.mp4", rotate=90)
        sound = samples.audio(directory / "sound.mp4")
        busy = samples.busy_video(directory / "busy.mp4")

    return Videos


def render_video(path, operation="fit", box=(100, 100), format="png", served=False, renderer=None):
    renderer = renderer or VideoRenderer()
    if served:  # any stream that is not a local file is served to ffmpeg over loopback HTTP
        return renderer.render(io.BytesIO(path.read_bytes()), spec(operation, *box, format))
    with path.open("rb") as stream:
        return renderer.render(stream, spec(operation, *box, format))


@pytest.mark.parametrize(
    "content_type, expected",
    [
        ("video/mp4", True),
        ("video/quicktime", True),
        ("VIDEO/WEBM", True),
        ("video/x-matroska", True),
        ("video/x-msvideo", True),
        ("audio/mp4", False),
        ("audio/mpeg", False),
        ("application/x-mpegurl", False),
    ],
)
def test_video_accepts_by_sniffed_content_type(content_type, expected):
    assert VideoRenderer().accepts(content_type) is expected


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("format", FORMATS)
def test_video_renders_in_each_format(videos, operation, format):
    image = opened(render_video(videos.clip, operation, (120, 100), format))
    assert image.size == ((120, 90) if operation == "fit" else (120, 100))
    assert close(rgb(image, (10, 10)), samples.BLUE)  # the frame at 1 s: blue since 0.5 s


@pytest.mark.parametrize("served", [False, True], ids=["by-path", "served"])
def test_video_still_is_taken_at_one_second_or_first_in_a_shorter_clip(videos, served):
    assert close(rgb(opened(render_video(videos.clip, served=served)), (10, 10)), samples.BLUE)
    short = opened(render_video(videos.short, served=served))
    assert short.size == (100, 75)
    assert close(rgb(short, (10, 10)), samples.RED)  # the first frame: red until 0.2 s


def test_video_is_never_enlarged(videos):
    assert opened(render_video(videos.clip, "fit", (4096, 4096))).size == (320, 240)
    assert opened(render_video(videos.clip, "fill", (400, 400))).size == (240, 240)


def test_video_pixel_aspect_ratio_is_applied(videos):
    # 160 x 120 stored, each pixel twice as wide as it is tall: shown 320 x 120.
    assert opened(render_video(videos.wide_pixels, "fit", (320, 320))).size == (320, 120)


def test_video_display_rotation_is_applied(videos):
    image = opened(render_video(videos.rotated, "fit", (320, 320)))
    assert image.size == (240, 320)  # stored landscape, shown portrait
    # The halves, side by side as stored, are shown one above the other (which one on top is ffmpeg's call).
    top, bottom = rgb(image, (120, 10)), rgb(image, (120, 310))
    assert {close(top, samples.RED), close(bottom, samples.RED)} == {True, False}
    assert {close(top, samples.BLUE), close(bottom, samples.BLUE)} == {True, False}
    assert close(rgb(image, (10, 10)), top) and close(rgb(image, (230, 10)), top)


def test_video_with_no_picture_is_unsupported(videos):
    for served in (False, True):
        with pytest.raises(PreviewUnsupported, match="has no video stream \\(it holds sound only\\)") as caught:
            render_video(videos.sound, served=served)
        assert caught.value.code == "preview_unsupported"


def test_a_served_video_is_read_only_up_to_its_still(videos):
    data = videos.busy.read_bytes()
    stream = Counting(data)
    image = opened(VideoRenderer().render(stream, spec("fit", 64, 64)))
    assert image.size == (64, 48)
    assert len(data) > 2_000_000
    assert stream.bytes_read < len(data) * 0.4, f"{stream.bytes_read} of {len(data)} bytes"


def test_a_video_served_beyond_the_read_limit_is_refused(videos):
    with pytest.raises(RenderError, match="The video is too large to preview: ffmpeg read more than 20,000 bytes"):
        render_video(videos.busy, served=True, renderer=VideoRenderer(max_read_bytes=20_000))


@pytest.mark.parametrize("served", [False, True], ids=["by-path", "served"])
def test_video_corrupt_or_truncated_is_refused(videos, tmp_path, served):
    data = videos.clip.read_bytes()
    for name, broken in {"noise": os.urandom(50_000), "cut": data[: len(data) // 3]}.items():
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(broken)
        with pytest.raises(RenderError) as caught:
            render_video(path, served=served)
        assert str(caught.value).startswith(UNREADABLE_VIDEO) or "decoded no frame" in str(caught.value), name
        assert str(path) not in str(caught.value) and "127.0.0.1" not in str(caught.value)


def test_a_playlist_labelled_as_video_cannot_make_ffmpeg_open_anything(tmp_path):
    import http.server
    import threading

    hits = []

    class Canary(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_error(404)

        def log_message(self, *args):
            pass

    canary = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canary)
    thread = threading.Thread(target=canary.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{canary.server_address[1]}"
    try:
        playlists = {
            "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{url}/segment.ts\n#EXT-X-ENDLIST\n",
            "concat": f"ffconcat version 1.0\nfile {url}/clip.mp4\nfile /etc/passwd\n",
        }
        for name, text in playlists.items():
            path = tmp_path / f"{name}.mp4"
            path.write_text(text)
            for served in (False, True):
                with pytest.raises(RenderError):
                    render_video(path, served=served)
    finally:
        canary.shutdown()
        canary.server_close()
    assert hits == []


def test_video_a_failing_stream_is_not_called_a_corrupt_file(videos):
    data = videos.busy.read_bytes()
    with pytest.raises(OSError, match="connection reset by storage") as caught:
        VideoRenderer().render(FailingStream(data, good=len(data) // 100), spec())
    assert not isinstance(caught.value, RenderError)


class Slow(io.BytesIO):
    def read(self, size=-1):
        time.sleep(0.2)
        return super().read(size)


def test_ffmpeg_is_stopped_at_the_timeout(videos):
    started = time.perf_counter()
    with pytest.raises(RenderError, match="ffmpeg took more than 0.5 s to read the file; it was stopped"):
        VideoRenderer(timeout=0.5).render(Slow(videos.busy.read_bytes()), spec())
    assert time.perf_counter() - started < 5


def test_video_leaves_no_server_thread_nor_process_behind(videos):
    import threading

    before = {thread.name for thread in threading.enumerate()}
    render_video(videos.clip, served=True)
    with pytest.raises(PreviewUnsupported):
        render_video(videos.sound, served=True)
    assert {thread.name for thread in threading.enumerate()} <= before
    assert not [thread for thread in threading.enumerate() if thread.name == "media-analyzer-server"]


def test_a_proxy_in_the_environment_is_not_used(videos, monkeypatch):
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # nothing listens there
    assert opened(render_video(videos.clip, served=True)).size == (100, 75)


def test_video_refuses_a_stream_that_cannot_seek(videos):
    with pytest.raises(TypeError, match="VideoRenderer needs a seekable stream"):
        VideoRenderer().render(OneWay(videos.clip.read_bytes()), spec())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"timeout": 0}, "timeout must be a positive number of seconds, not 0"),
        ({"timeout": float("nan")}, "timeout must be a positive number of seconds, not nan"),
        ({"timeout": True}, "timeout must be a positive number of seconds, not True"),
        ({"max_read_bytes": 0}, "max_read_bytes must be a positive integer, not 0"),
        ({"ffmpeg": ""}, "ffmpeg must be a program's name or path, not ''"),
    ],
)
def test_video_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VideoRenderer(**kwargs)


def test_video_without_pillow_is_reported_not_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    reason = "VideoRenderer needs Pillow, which is not installed (install the 'preview' extra)."
    if VideoRenderer().unavailable_reason() != reason:
        assert samples.ffmpeg_path() is None  # without ffmpeg, that is what is reported first
    else:
        with pytest.raises(RenderUnavailable, match=re.escape(reason)):
            VideoRenderer().render(io.BytesIO(b"anything"), spec())


def test_a_missing_ffmpeg_is_reported_not_skipped(tmp_path):
    missing = str(tmp_path / "no-ffmpeg-here")
    renderer = VideoRenderer(ffmpeg=missing)
    reason = f"VideoRenderer needs ffmpeg, which is not installed (no {missing!r} found; install FFmpeg)."
    assert renderer.accepts("video/mp4")
    assert renderer.unavailable_reason() == reason
    with pytest.raises(RenderUnavailable) as caught:
        renderer.render(io.BytesIO(b"anything"), spec())
    assert str(caught.value) == reason


# -- a PDF is drawn in a process of its own ---------------------------------------------------------------


@needs_pdfium
def test_pdf_drawn_in_a_child_process_is_the_one_drawn_here():
    data = samples.pdf(pages=3)
    isolated = PdfRenderer().render(io.BytesIO(data), spec("fit", 128, 128, "png"))
    here = PdfRenderer(isolate=False).render(io.BytesIO(data), spec("fit", 128, 128, "png"))
    assert isolated == here


@needs_pdfium
def test_pdf_child_is_stopped_at_its_time_limit_and_that_is_a_timeout_not_a_refusal():
    from django_attachments.processing.renderers.pdf_child import Child

    hanging = Child(module="tests.pdf_child_hang")  # takes the job and never answers, as PDFium looping would
    with hanging.lock, pytest.raises(RenderTimeout, match="PDFium took more than 0.5 s"):
        hanging.draw({"job": 1}, io.BytesIO(b""), timeout=0.5, max_read_bytes=1)
    assert hanging.process is None  # killed; the next job starts a new one


def test_pdf_child_killed_by_a_signal_is_a_refusal_and_a_child_that_cannot_run_is_unavailable():
    from django_attachments.processing.renderers.pdf_child import Child

    crashing = Child(module="tests.pdf_child_crash")  # reads the job, then dies of SIGSEGV, as PDFium would
    with crashing.lock, pytest.raises(RenderError, match=r"made the renderer crash \(signal 11\)"):
        crashing.draw({"job": 1}, io.BytesIO(b""), timeout=30, max_read_bytes=1)
    assert crashing.process is None  # the next job starts a new one
    babbling = Child(module="tests.pdf_child_babble")  # answers garbage and stays alive: killed, not waited on
    with babbling.lock, pytest.raises(RenderUnavailable, match="process failed"):
        babbling.draw({"job": 1}, io.BytesIO(b""), timeout=30, max_read_bytes=1)
    assert babbling.process is None
    missing = Child(module="no_such_module")
    with missing.lock, pytest.raises(RenderUnavailable, match="No module named no_such_module"):
        missing.draw({"job": 1}, io.BytesIO(b""), timeout=30, max_read_bytes=1)


@needs_pdfium
def test_the_pdf_child_is_kept_for_the_next_pdf_and_replaced_after_a_timeout():
    from django_attachments.processing.renderers.pdf_child import CHILD

    PdfRenderer().render(io.BytesIO(samples.pdf()), spec())
    first = CHILD.process
    PdfRenderer().render(io.BytesIO(samples.pdf(pages=2)), spec())
    assert CHILD.process is first and first.poll() is None

    class Slow(io.BytesIO):  # a file read slowly: the job outlasts its time limit
        def read(self, size=-1):
            time.sleep(0.2)
            return super().read(size)

    with pytest.raises(RenderTimeout):
        PdfRenderer(timeout=0.3).render(Slow(samples.pdf()), spec())
    assert first.poll() is not None  # killed
    assert opened(PdfRenderer().render(io.BytesIO(samples.pdf()), spec())).size == (100, 50)  # drawn again
    assert CHILD.process is not first


@needs_pdfium
def test_pdf_read_over_its_byte_limit_is_refused():
    with pytest.raises(RenderError, match="too large to preview: more than 100 bytes"):
        PdfRenderer(max_read_bytes=100).render(io.BytesIO(samples.pdf()), spec())


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": True}, {"max_read_bytes": 0}, {"isolate": "yes"}])
def test_pdf_renderer_refuses_bad_options(kwargs):
    with pytest.raises(ValueError):
        PdfRenderer(**kwargs)
