"""Sample files for the renderer tests, made in code: images (Pillow), PDFs (by hand), DICOM (pydicom), video (ffmpeg).

Each maker returns the file's bytes (or writes it to a path, for video) and
imports its library when called, so that a test module can skip what is not
installed. The pictures are made to be checked: solid colours, halves and
quadrants of known colours, greyscale ramps of known values.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)
#: Quadrant -> colour, of :func:`quadrants`: top left, top right, bottom left, bottom right.
QUADRANTS = {"tl": RED, "tr": GREEN, "bl": BLUE, "br": WHITE}


# --- images ---------------------------------------------------------------------------


def solid(colour=RED, size=(300, 200), mode="RGB"):
    from PIL import Image

    return Image.new(mode, size, colour)


def quadrants(size=(400, 200)):
    """An RGB image in four quadrants of :data:`QUADRANTS`'s colours: which way up it is shows."""
    from PIL import Image

    width, height = size
    image = Image.new("RGB", size)
    image.paste(QUADRANTS["tl"], (0, 0, width // 2, height // 2))
    image.paste(QUADRANTS["tr"], (width // 2, 0, width, height // 2))
    image.paste(QUADRANTS["bl"], (0, height // 2, width // 2, height))
    image.paste(QUADRANTS["br"], (width // 2, height // 2, width, height))
    return image


def halves(size=(400, 200), left=RED, right=BLUE):
    from PIL import Image

    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def encode(image, fmt="PNG", **save):
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def exif(orientation=None, gps=False, description=None):
    """An EXIF block: an orientation, a GPS position, a description, as a phone writes them."""
    from PIL import Image
    from PIL.ExifTags import IFD

    block = Image.Exif()
    if orientation is not None:
        block[0x0112] = orientation
    if description is not None:
        block[0x010E] = description
    if gps:
        block.get_ifd(IFD.GPSInfo).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    return block.tobytes()


def animated_gif(colours=(RED, GREEN, BLUE), size=(40, 30)):
    from PIL import Image

    frames = [Image.new("RGB", size, colour) for colour in colours]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def animated_webp(colours=(RED, GREEN, BLUE), size=(40, 30)):
    from PIL import Image

    frames = [Image.new("RGB", size, colour) for colour in colours]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)


def _s15(value):
    return struct.pack(">i", round(value * 65536))


def _xyz(x, y, z):
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


#: sRGB's primaries as an ICC profile states them (adapted to D50).
SRGB_RED, SRGB_GREEN, SRGB_BLUE = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)


def icc_rgb(red=SRGB_GREEN, green=SRGB_RED, blue=SRGB_BLUE, gamma=2.2):
    """A matrix/TRC RGB ICC profile (v2) with the given primaries: by default red and green swapped.

    A pure red pixel tagged with it is, in truth, sRGB's green: a renderer
    that converts through the profile shows green, one that ignores it red.
    """
    text = b"swapped primaries\0"
    description = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * (4 + 4 + 3 + 67)
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [
        (b"desc", description),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz(*red)),
        (b"gXYZ", _xyz(*green)),
        (b"bXYZ", _xyz(*blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (
        struct.pack(">I4sI", offset + len(data), b"\0" * 4, 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12  # date
        + b"acsp"
        + b"\0" * 28  # platform, flags, device, attributes, intent
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)  # the D50 illuminant
        + b"\0" * 48  # creator, id, reserved
    )
    return header + struct.pack(">I", len(tags)) + table + data


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def crafted_png(width, height, idat=b"\x00" * 64):
    """A PNG declaring any size, whose image data is a few bytes: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(idat))
        + png_chunk(b"IEND", b"")
    )


def jpeg_declaring(width, height, source=None):
    """A small JPEG whose frame header (SOF) claims ``width`` x ``height``: a bomb only a decoder would find."""
    data = bytearray(source or encode(solid(size=(16, 16)), "JPEG"))
    position = 2
    while position < len(data):
        marker, length = data[position + 1], struct.unpack(">H", data[position + 2 : position + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[position + 5 : position + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        position += 2 + length
    raise ValueError("no SOF marker")


def eps(size=(40, 30)):
    """An Encapsulated PostScript file: what Pillow would hand to Ghostscript if it were allowed to open it."""
    return encode(solid(size=size), "EPS")


# --- PDF -------------------------------------------------------------------------------


def pdf(pages=1, size=(200, 100), draw=None, rotate=0, padding=0):
    """A PDF written by hand: ``pages`` pages of ``size`` points, each drawn by ``draw`` (content operators).

    ``draw`` defaults to a page in two halves, red left and blue right.
    ``padding`` adds that many bytes of comment to each page's content, to
    make a large file whose pages must not all be read.
    """
    width, height = size
    if draw is None:
        draw = f"1 0 0 rg 0 0 {width / 2} {height} re f 0 0 1 rg {width / 2} 0 {width / 2} {height} re f"
    content = draw.encode()
    if padding:
        content += b"\n%" + b"p" * padding + b"\n"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", None]  # the page tree is filled in below
    kids = []
    for _ in range(pages):
        page_number = len(objects) + 1
        kids.append(f"{page_number} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Rotate {rotate} "
            f"/Contents {page_number + 1} 0 R /Resources << >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {pages} >>".encode()
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def encrypted_pdf(user_password="", owner_password="owner", source=None):
    """A PDF encrypted by pypdf; with a user password, no viewer opens it without asking."""
    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(source or pdf()))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- DICOM ---------------------------------------------------------------------------

EXPLICIT_LE = "1.2.840.10008.1.2.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def stripes(values, rows=16, width=8, dtype="uint16"):
    """A greyscale frame of vertical stripes, ``width`` columns each, one per value of ``values``."""
    import numpy

    return numpy.repeat(numpy.array([values], dtype=dtype), rows, axis=0).repeat(width, axis=1)


def numpy_stack(frames):
    import numpy

    return numpy.stack(frames)


def dicom(
    pixels,
    *,
    photometric="MONOCHROME2",
    bits_stored=None,
    transfer_syntax=EXPLICIT_LE,
    compress=None,
    fragments=None,
    pixel_data=True,
    **attributes,
):
    """A DICOM file (bytes) holding ``pixels`` (a NumPy array: rows x columns [x samples], or frames first).

    ``compress``: a transfer syntax pydicom encodes (RLE Lossless). ``fragments``: encoded frames to
    encapsulate as they are, under ``transfer_syntax`` (a codec pydicom cannot write, or bytes that no
    decoder will ever need to read). ``attributes``: set on the data set (WindowCenter=40, ...).
    """
    import numpy
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    meta.TransferSyntaxUID = EXPLICIT_LE
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = CT_IMAGE
    dataset.Modality = "CT"
    dataset.PatientName = "Doe^Jane"
    pixels = numpy.asarray(pixels)
    bits = pixels.dtype.itemsize * 8
    dataset.set_pixel_data(pixels, photometric, bits_stored or bits, generate_instance_uid=False)
    if compress is not None:
        dataset.compress(compress, generate_instance_uid=False)
    elif fragments is None:  # native data, written in the transfer syntax (implicit, big endian, deflated)
        dataset.file_meta.TransferSyntaxUID = transfer_syntax
    if fragments is not None:
        dataset.file_meta.TransferSyntaxUID = transfer_syntax
        dataset.PixelData = encapsulate(list(fragments))
        dataset["PixelData"].VR = "OB"
        dataset["PixelData"].is_undefined_length = True
    if not pixel_data:
        del dataset.PixelData
    for keyword, value in attributes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


# --- video -----------------------------------------------------------------------------


def ffmpeg_path():
    return shutil.which("ffmpeg")


def ffmpeg(*args, timeout=120):
    subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True, timeout=timeout
    )


def video(path, *, duration=2.0, size=(320, 240), turns_blue_at=0.5, codec="mpeg4", audio=True, filters=""):
    """A red clip that turns blue at ``turns_blue_at`` seconds (``codec``, in the container ``path`` names).

    ``filters`` are appended to the drawing (``,setsar=2`` for pixels twice as wide as they are tall).
    """
    width, height = size
    source = f"color=c=red:s={width}x{height}:r=25:d={duration}"
    fill = f"drawbox=x=0:y=0:w=iw:h=ih:color=blue:t=fill:enable='gte(t,{turns_blue_at})'" + filters
    args = ["-f", "lavfi", "-i", source]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}"]
    args += ["-vf", fill, "-c:v", codec, "-q:v", "2", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac" if str(path).endswith((".mp4", ".mov")) else "libvorbis", "-shortest"]
    ffmpeg(*args, path)
    return path


def halves_video(path, size=(320, 240), rotate=None):
    """A clip whose left half is blue and right half red; ``rotate`` (degrees) is written as its display rotation."""
    width, height = size
    drawn = path.with_name("drawn-" + path.name) if rotate is not None else path
    ffmpeg("-f", "lavfi", "-i", f"color=c=red:s={width}x{height}:r=25:d=1.5",
           "-vf", "drawbox=x=0:y=0:w=iw/2:h=ih:color=blue:t=fill", "-c:v", "mpeg4", "-q:v", "2", drawn)  # fmt: skip
    if rotate is not None:  # a phone's way: the pixels as the sensor saw them, and a display matrix
        ffmpeg("-i", drawn, "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", path)
    return path


def busy_video(path, duration=10):
    """A clip of moving test patterns, every frame different and a key frame each second: megabytes of media."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=320x240:r=25:d={duration}", "-c:v", "mpeg4", "-q:v", "1", "-g", "25", path)
    return path


def audio(path, duration=1.0):
    """A tone with no picture, in whatever container ``path`` names (an MP4 makes an audio-only 'video')."""
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}", "-c:a", "aac", path)
    return path
