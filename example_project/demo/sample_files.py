"""Valid sample files built in code for the demo data: no download, the same bytes on every run.

They are real enough for libmagic to sniff, for the analyzers to read and for
a viewer to open, and deterministic, so seeding twice yields the same bytes
(and the same blobs)::

    sample_png((200, 40, 40))       # an 8x8 red square
    sample_pdf("Referral letter")   # one page with one line of text
    sample_letter("Referral", "Northside Dental", ["Dear colleague,", ...])   # a letter with a letterhead
    sample_jpeg()                   # an intraoral photo, drawn with Pillow
    sample_dicom()                  # a dental X-ray, 16-bit greyscale DICOM (pydicom and NumPy)

The last two stand on optional libraries and raise :class:`SampleUnavailable`
without them.
"""

import io
import struct
import zlib

#: DICOM's SOP class of a digital intra-oral X-ray, for presentation.
INTRAORAL_XRAY = "1.2.840.10008.5.1.4.1.1.1.3"


def sample_png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    row = b"\x00" + bytes(rgb) * size  # filter type 0, then the pixels
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b"")
    )


def sample_pdf(text: str) -> bytes:
    escaped = _pdf_text(text)
    content = f"BT /F1 18 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
    return _pdf(content, bold=False)


def sample_letter(title: str, sender: str, lines: list[str]) -> bytes:
    """A one-page letter: a coloured letterhead with the sender, a title, the lines, a signature rule.

    Drawn with the standard Helvetica fonts only, so that any reader shows it without embedded fonts.
    """
    body = "\n".join(f"({_pdf_text(line)}) Tj T*" for line in lines)
    content = "\n".join(
        [
            "0.13 0.36 0.52 rg 0 700 612 92 re f",  # the letterhead's band
            f"1 1 1 rg BT /F2 26 Tf 54 736 Td ({_pdf_text(sender)}) Tj ET",
            f"0 0 0 rg BT /F2 20 Tf 54 650 Td ({_pdf_text(title)}) Tj ET",
            f"BT /F1 12 Tf 16 TL 54 610 Td {body} ET",
            "0.85 0.88 0.9 rg 54 300 504 120 re f",  # a shaded box for the findings
            "0 0 0 rg BT /F2 12 Tf 66 400 Td (Findings) Tj ET",
            "BT /F1 11 Tf 66 380 Td (Periapical radiolucency, upper left central incisor.) Tj ET",
            "0 0 0 RG 1 w 360 180 m 558 180 l S",  # the signature's rule
            "BT /F1 10 Tf 360 166 Td (Signature) Tj ET",
        ]
    ).encode("latin-1")
    return _pdf(content, bold=True)


def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _pdf(content: bytes, *, bold: bool) -> bytes:
    """A one-page PDF 1.4 (US Letter) drawing ``content``, with Helvetica as /F1 (and Helvetica-Bold as /F2)."""
    fonts = b"/F1 5 0 R /F2 6 0 R" if bold else b"/F1 5 0 R"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << %s >> >> >>" % fonts,
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *([b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>"] if bold else []),
    ]
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(pdf)


# -- the gallery's samples: a photo, and an X-ray as a DICOM file ------------------------------------------


class SampleUnavailable(RuntimeError):
    """A sample cannot be made here: the library that writes it is not installed (the message says which)."""


def sample_jpeg(width: int = 640, height: int = 420) -> bytes:
    """An intraoral photo, drawn with Pillow: gums, a row of teeth, a crown, lit from the front.

    Raises SampleUnavailable without Pillow.
    """
    try:
        from PIL import Image, ImageDraw, ImageFilter
    except ImportError:
        raise SampleUnavailable("the photo needs Pillow (pip install Pillow)") from None

    # Gums: a warm red, darker towards the edges (the flash lights the middle).
    image = Image.radial_gradient("L").resize((width, height))
    gums = Image.merge(
        "RGB",
        (
            image.point(lambda v: 225 - v // 3),
            image.point(lambda v: 110 - v // 3),
            image.point(lambda v: 120 - v // 3),
        ),
    )
    draw = ImageDraw.Draw(gums)
    # The mouth's opening, dark at the back.
    draw.ellipse((40, 60, width - 40, height - 40), fill=(70, 20, 28))
    # Two arches of teeth, upper and lower, narrowing towards the back.
    for row, (top, bottom) in enumerate(((95, 200), (225, 330))):
        centre = width // 2
        for index in range(-5, 5):
            spread = abs(index + 0.5)
            tooth_width = 58 - spread * 6
            left = centre + index * 58 + spread * 4
            inset = spread * 9
            box = (left, top + (inset if row else 0), left + tooth_width, bottom - (0 if row else inset))
            shade = int(238 - spread * 12)
            colour = (shade, shade - 6, shade - 30)
            if row == 0 and index == -1:  # the crown, upper left incisor: a little whiter than the rest
                colour = (250, 250, 244)
            draw.rounded_rectangle(box, radius=14, fill=colour, outline=(150, 120, 100), width=2)
    gums = gums.filter(ImageFilter.GaussianBlur(1.2))
    out = io.BytesIO()
    gums.save(out, "JPEG", quality=88, optimize=False)
    return out.getvalue()


def sample_dicom(rows: int = 384, columns: int = 512, patient: str = "Demo^Patient") -> bytes:
    """A dental X-ray as a DICOM file: 16-bit MONOCHROME2 (12 bits stored) with a window centre and width.

    Drawn with NumPy: soft tissue a dim gradient, the jaw's bone a bright arch, the teeth brighter still
    with their darker pulp, and a metal crown at full brightness. Uncompressed (explicit VR little
    endian), so that any DICOM reader opens it. Raises SampleUnavailable without pydicom or NumPy.
    """
    try:
        import numpy
        from pydicom.dataset import FileDataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    except ImportError:
        raise SampleUnavailable("the X-ray needs pydicom and NumPy (pip install pydicom numpy)") from None

    y, x = numpy.mgrid[0:rows, 0:columns].astype(numpy.float32)
    u, v = (x - columns / 2) / (columns / 2), (y - rows / 2) / (rows / 2)  # -1..1 across, -1..1 down
    image = 500 + 400 * (1 - v**2) * (1 - 0.5 * u**2)  # soft tissue: a dim glow in the middle
    # The jaw: a bright arch (a band between two parabolas), and the teeth standing on it.
    arch = 0.55 * u**2 - 0.15
    bone = (v > arch - 0.05) & (v < arch + 0.55) & (numpy.abs(u) < 0.95)
    image = numpy.where(bone, image + 1100, image)
    for index in range(-6, 6):
        centre = (index + 0.5) / 6.5
        top = 0.55 * centre**2 - 0.75
        crown = ((u - centre) / 0.065) ** 2 + ((v - top - 0.12) / 0.16) ** 2 < 1
        root = (numpy.abs(u - centre) < 0.035 * (1 - (v - top - 0.2) / 0.6)) & (v > top + 0.1) & (v < top + 0.75)
        pulp = (numpy.abs(u - centre) < 0.012) & (v > top + 0.12) & (v < top + 0.65)
        image = numpy.where(crown | root, image + 1700, image)
        image = numpy.where(pulp, image - 900, image)
        if index == -1:  # the crown being made, upper left incisor: metal, white on the film
            image = numpy.where(crown, 4095, image)
    # A film's grain, made of sines rather than a random generator: the same bytes on every run.
    image += 60 * numpy.sin(x * 0.9) * numpy.cos(y * 1.3)
    pixels = numpy.clip(image, 0, 4095).astype(numpy.uint16)

    def uid(part: str) -> str:  # the same UIDs every run: seeding twice attaches the same bytes
        return str(generate_uid(entropy_srcs=["django_attachments demo", patient, part]))

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = INTRAORAL_XRAY
    meta.MediaStorageSOPInstanceUID = uid("instance")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = INTRAORAL_XRAY
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = uid("study")
    dataset.SeriesInstanceUID = uid("series")
    dataset.Modality = "IO"
    dataset.PatientName = patient
    dataset.set_pixel_data(pixels, "MONOCHROME2", 12, generate_instance_uid=False)
    dataset.WindowCenter = 2000
    dataset.WindowWidth = 3800
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()
