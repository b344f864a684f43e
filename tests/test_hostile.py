"""Hostile and malformed input, through the REST API and the service, on disk and on S3 (moto server).

Multipart bodies are built by hand where the test client would clean the
input first (it keeps only ``os.path.basename`` of a filename), so the raw
bytes reach Django's parser exactly as a hostile client would send them. The
assertions are on what actually reaches the database, the storage and the
response; where Django or DRF refuse or alter input before the service sees
it, the test says so.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import unicodedata
import urllib.parse
import urllib.request

import django
import pytest

from django_attachments import services
from django_attachments.ingest import sniff
from django_attachments.models import Attachment, Blob
from tests.apitools import LIST, body, detail, download, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]

BOUNDARY = "hostile-B0undary-7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
NOT_FOUND = {"detail": "Not found.", "code": "not_found"}


def multipart(
    fields: dict, filename: str | bytes, data: bytes, content_type: str = "application/octet-stream"
) -> bytes:
    """A multipart/form-data body with ``fields`` and one file part, its filename sent verbatim."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    raw_name = filename.encode() if isinstance(filename, str) else filename
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
        + raw_name
        + f'"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def stored_names(store) -> set[str]:
    return {obj.name for obj in store.list()}


def assert_nothing_stored(store):
    assert not Blob.objects.exists() and not Attachment.objects.exists()
    assert stored_names(store) == set()


# -- what "safe" means -----------------------------------------------------------

_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
KEY_RE = re.compile(r"^attachments/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}$")
# RFC 6266: filename="quoted-string" (Django's form for printable ASCII), or
# filename*=utf-8''<RFC 5987 percent-encoding> for anything else. Never a bare token.
_DISPOSITION_RE = re.compile(
    r"""^attachment; (?:filename="(?P<quoted>(?:[\t \x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"|"""
    r"""filename\*=utf-8''(?P<encoded>[A-Za-z0-9%!#$&+.^_`|~-]+))$"""
)


def assert_safe_filename(name: str) -> None:
    assert isinstance(name, str) and 0 < len(name) <= 255, name
    assert "/" not in name and "\\" not in name, name
    assert name not in {".", ".."}, name
    assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in name), ascii(name)
    assert not _BIDI & set(name), ascii(name)


def assert_random_key(blob: Blob, raw_name: str, store) -> None:
    """The storage key is the app's random one: nothing of the client's filename is in it."""
    key = blob.storage_identifiers["name"]
    assert KEY_RE.match(key), key
    assert blob.filename not in key
    assert not raw_name or raw_name not in key
    for piece in re.split(r"[\\/.\s\x00-\x1f]+", raw_name):
        # Pieces made only of hex digits could occur in a random hex key by chance.
        if len(piece) >= 3 and not re.fullmatch(r"[0-9a-f]+", piece):
            assert piece not in key, (piece, key)
    assert stored_names(store) >= {key}


def disposition_filename(header: str) -> str:
    """The filename a Content-Disposition header names; asserts it is an attachment, safely quoted."""
    assert not any(ord(ch) < 0x20 and ch != "\t" or ord(ch) == 0x7F for ch in header), ascii(header)
    match = _DISPOSITION_RE.match(header)
    assert match, header
    if match["quoted"] is not None:
        return re.sub(r"\\(.)", r"\1", match["quoted"])
    return urllib.parse.unquote(match["encoded"], errors="strict")


def assert_safe_download(client, attachment_id, blob: Blob, data: bytes) -> None:
    response = client.get(download(attachment_id))
    assert response.status_code == 200
    assert body(response) == data
    assert disposition_filename(response["Content-Disposition"]) == blob.filename
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


# -- 1. filenames ------------------------------------------------------------------

HOSTILE_NAMES = {
    "dotdot-path": "../../etc/passwd",
    "absolute-path": "/etc/shadow",
    "windows-path": "C:\\Windows\\system32\\evil.dll",
    "nul": "report.pdf\x00.exe",
    "nul-only": "\x00",
    "controls": "a\x01\x07\x1b[31mb\x7f\x9b.pdf",
    "crlf-header-injection": "inject\r\nX-Evil: 1.pdf",
    "tab-and-line-separator": "a\tb\u2028c.pdf",
    "rtl-override": "invoice\u202efdp.exe",
    "bidi-isolates-and-marks": "\u2067abc\u2069\u200f\u200e.pdf",
    "zero-width": "pay\u200bpal\ufeff.pdf",
    "html-entity-path": "..&#47;..&#47;etc&#47;passwd",
    "quote-and-backslash": 'a\\"b.pdf',
    "long-900": "y" * 900 + ".pdf",
    "long-10000": "x" * 10_000 + ".pdf",
    "empty": "",
    "dot-dot": "..",
    "three-dots": "...",
    "spaces-and-dots": " . . ",
}

# What the API answers for each name sent raw in a multipart header, as observed.
# Django's multipart parser acts before the app: it drops a part whose filename is
# empty/"."/".." (then DRF says the file is missing or not a file), refuses part
# headers over 1024 bytes (MAX_TOTAL_HEADER_SIZE: a 10,000-character name is a
# 400 parse error), and itself strips paths and non-printable characters. Each
# is a clear 400 naming "file" or a parse error, and nothing is stored.
API_REFUSED = {
    "empty": ("file", "invalid"),  # filename="" makes the part a plain form field: "not a file"
    "dot-dot": ("file", "required"),  # the part is dropped: "No file was submitted"
    "nul-only": ("file", "required"),  # Django strips the NUL, leaving "": the part is dropped
    # "Request max total header size exceeded." from Django 5.1; Django 4.2 drops a part whose
    # header passes 1 KiB, so the file is missing. A refusal either way, and nothing is stored.
    "long-10000": ("detail", "parse_error") if django.VERSION >= (5, 1) else ("file", "required"),
}


@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
def test_hostile_filename_through_the_api(staff, owners, store, case):
    raw_name = HOSTILE_NAMES[case]
    data = f"contents for {case}".encode()
    payload = multipart({"owner_type": "patient", "owner_id": owners.alice.pk}, raw_name, data)
    response = staff["a"].generic("POST", LIST, payload, content_type=MULTIPART)

    if case in API_REFUSED:
        field, code = API_REFUSED[case]
        assert response.status_code == 400, response.content
        assert field in response.json() and response.json()["code"] == code
        assert_nothing_stored(store)
        return

    assert response.status_code == 201, response.content
    created = response.json()
    blob = Blob.objects.get(pk=created["blob_id"])
    assert created["filename"] == blob.filename
    assert_safe_filename(blob.filename)
    assert_random_key(blob, raw_name, store)
    assert_safe_download(staff["a"], created["id"], blob, data)
    if case == "long-900":
        assert len(blob.filename) == 255 and blob.filename.endswith("y.pdf")
    if case == "three-dots":
        assert blob.filename == "file"


@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
def test_hostile_filename_through_the_service(staff, owners, store, case):
    """The service's own sanitiser, without Django's multipart parser in front of it."""
    raw_name = HOSTILE_NAMES[case]
    data = f"service contents for {case}".encode()
    attachment = services.attach(
        io.BytesIO(data), filename=raw_name, owner_type="patient", owner_id=owners.alice.pk, tenant=owners.tenant_a
    )
    blob = attachment.blob
    assert_safe_filename(blob.filename)
    assert_random_key(blob, raw_name, store)
    assert_safe_download(staff["a"], attachment.pk, blob, data)
    expected = {
        "dotdot-path": "passwd",
        "absolute-path": "shadow",
        "windows-path": "evil.dll",
        "nul": "report.pdf.exe",
        "nul-only": "file",
        "rtl-override": "invoicefdp.exe",
        "crlf-header-injection": "inject X-Evil: 1.pdf",
        "empty": "file",
        "dot-dot": "file",
        "three-dots": "file",
        "spaces-and-dots": "file",
    }
    if case in expected:
        assert blob.filename == expected[case]
    if case.startswith("long-"):
        assert len(blob.filename) == 255 and blob.filename.endswith(".pdf")


def test_filename_that_is_not_utf8(staff, owners, store):
    """Django cannot decode the part's header, skips it, and DRF reports the file missing."""
    payload = multipart({"owner_type": "patient", "owner_id": owners.alice.pk}, b"\xff\xfe.pdf", b"data")
    response = staff["a"].generic("POST", LIST, payload, content_type=MULTIPART)
    assert response.status_code == 400 and response.json()["code"] == "required" and "file" in response.json()
    assert_nothing_stored(store)


@pytest.mark.parametrize(
    "raw_name, expected",
    [("\udc80ab\ud800.pdf", "ab.pdf"), ("\U0001f600" * 300 + ".pdf", "\U0001f600" * 251 + ".pdf")],
    ids=["lone-surrogates", "300-emoji"],
)
def test_filename_with_surrogates_or_astral_characters(staff, owners, store, raw_name, expected):
    data = raw_name.encode("utf-8", "surrogatepass")
    attachment = services.attach(data, filename=raw_name, owner_type="patient", owner_id=owners.alice.pk)
    assert attachment.blob.filename == expected
    assert_safe_filename(attachment.blob.filename)
    assert_safe_download(staff["a"], attachment.pk, attachment.blob, data)


@pytest.mark.parametrize(
    "slot, code",
    [("\u202e", "invalid"), ("x\ny", "invalid"), ("\x00", "null_characters_not_allowed"), ("a" * 65, "max_length")],
    ids=["rtl", "newline", "nul", "65-chars"],
)
def test_hostile_slot_names_are_400(staff, owners, store, pdf, slot, code):
    response = upload(staff["a"], "patient", owners.alice.pk, pdf, name=slot)
    assert response.status_code == 400 and "name" in response.json() and response.json()["code"] == code
    assert_nothing_stored(store)


# -- 2. content ----------------------------------------------------------------------


def windows_executable() -> bytes:
    """A minimal PE32 image: DOS header with e_lfanew, "PE\\0\\0", COFF header, optional header, one section."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 64)  # e_lfanew: the PE header follows the DOS header
    coff = struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)  # i386, 1 section, executable image
    optional = bytearray(0xE0)
    struct.pack_into("<H", optional, 0, 0x10B)  # PE32 magic
    struct.pack_into("<H", optional, 68, 2)  # subsystem: Windows GUI
    section = b".text".ljust(40, b"\x00")
    image = bytes(dos) + b"PE\x00\x00" + coff + bytes(optional) + section
    return image.ljust(512, b"\x00")


EXE = windows_executable()
HTML = b"<!DOCTYPE html><html><head><title>x</title></head><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(document.domain)</script></svg>'
EXE_TYPES = {"application/vnd.microsoft.portable-executable", "application/x-dosexec"}


def test_libmagic_recognises_the_test_executable():
    assert EXE[:2] == b"MZ"
    assert sniff(EXE) in EXE_TYPES


@pytest.mark.parametrize(
    "data, sniffed",
    [(EXE, EXE_TYPES), (HTML, {"text/html"})],
    ids=["exe", "html"],
)
def test_sniffed_type_wins_over_name_and_declared_type(staff, owners, store, data, sniffed):
    response = upload(
        staff["a"], "patient", owners.alice.pk, data, filename="report.pdf", content_type="application/pdf"
    )
    assert response.status_code == 201
    created = response.json()
    assert created["content_type"] in sniffed and created["content_type"] != "application/pdf"
    blob = Blob.objects.get(pk=created["blob_id"])
    assert blob.content_type == created["content_type"]
    assert blob.metadata["declared_content_type"] == "application/pdf"  # recorded, never trusted
    served = staff["a"].get(download(created["id"]))
    assert served["Content-Type"] == blob.content_type
    assert served["Content-Disposition"] == 'attachment; filename="report.pdf"'


@pytest.mark.parametrize("data", [EXE, HTML], ids=["exe", "html"])
def test_disguised_pdf_is_refused_by_the_allow_list(staff, owners, store, settings, data):
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "ALLOWED_CONTENT_TYPES": ["application/pdf", "image/*"],
    }
    response = upload(
        staff["a"], "patient", owners.alice.pk, data, filename="report.pdf", content_type="application/pdf"
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_file_type"
    assert_nothing_stored(store)


def test_svg_passes_an_image_allow_list_but_is_never_rendered(staff, owners, store, settings):
    """libmagic calls SVG image/svg+xml, so "image/*" admits it; downloads still cannot run its script."""
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "ALLOWED_CONTENT_TYPES": ["application/pdf", "image/*"],
    }
    response = upload(staff["a"], "patient", owners.alice.pk, SVG, filename="logo.svg", content_type="image/svg+xml")
    assert response.status_code == 201 and response.json()["content_type"] == "image/svg+xml"
    served = staff["a"].get(download(response.json()["id"]))
    assert served["Content-Disposition"].startswith("attachment;")
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"]


@pytest.mark.parametrize(
    "data, filename, sniffed",
    [
        (SVG, "logo.svg", "image/svg+xml"),
        (b'<?xml version="1.0"?>\n' + SVG, "logo.svg", "image/svg+xml"),
        (HTML, "page.html", "text/html"),
        (HTML, "innocent.png", "text/html"),
    ],
    ids=["svg", "svg-xml-prolog", "html", "html-as-png"],
)
def test_active_content_is_always_an_attachment(staff, owners, store, data, filename, sniffed):
    created = upload(staff["a"], "patient", owners.alice.pk, data, filename=filename, content_type="image/png").json()
    assert created["content_type"] == sniffed
    etag = f'"{created["checksum"]}"'
    full = staff["a"].get(download(created["id"]))
    ranged = staff["a"].get(download(created["id"]), HTTP_RANGE="bytes=0-9")
    not_modified = staff["a"].get(download(created["id"]), HTTP_IF_NONE_MATCH=etag)
    assert (full.status_code, ranged.status_code, not_modified.status_code) == (200, 206, 304)
    assert body(full) == data and body(ranged) == data[:10]
    for response in (full, ranged, not_modified):
        assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
        assert response["X-Content-Type-Options"] == "nosniff"
        csp = response["Content-Security-Policy"]
        assert "sandbox" in csp and "default-src 'none'" in csp


def test_redirect_mode_still_forces_an_attachment(staff, owners, store, settings):
    """Where the storage signs URLs, the signed URL itself asks for an attachment disposition."""
    created = upload(staff["a"], "patient", owners.alice.pk, SVG, filename="logo.svg").json()
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "DOWNLOAD_MODE": "redirect"}
    response = staff["a"].get(download(created["id"]))
    if not store.can_sign_urls:  # disk: falls back to proxying, with the proxy's headers
        assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment;")
        assert "sandbox" in response["Content-Security-Policy"]
        return
    assert response.status_code == 302
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(response["Location"]).query)
    assert query["response-content-disposition"] == ['attachment; filename="logo.svg"']
    with urllib.request.urlopen(response["Location"]) as signed:
        assert signed.read() == SVG
        assert signed.headers["Content-Disposition"].startswith("attachment;")


def test_zero_byte_file(staff, owners, store):
    response = upload(staff["a"], "patient", owners.alice.pk, b"", filename="empty.pdf")
    assert response.status_code == 201 and response.json()["size"] == 0
    assert response.json()["checksum"] == hashlib.sha256(b"").hexdigest()
    served = staff["a"].get(download(response.json()["id"]))
    assert served.status_code == 200 and body(served) == b"" and served["Content-Length"] == "0"
    assert served["Content-Disposition"] == 'attachment; filename="empty.pdf"'


def test_zero_byte_file_is_not_checked_against_the_allow_list(staff, owners, store, settings):
    """By design ("an empty file has no type to allow or refuse"): zero bytes pass any allow-list."""
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOWED_CONTENT_TYPES": ["application/pdf"]}
    response = upload(staff["a"], "patient", owners.alice.pk, b"", filename="evil.exe")
    assert response.status_code == 201 and response.json()["size"] == 0


@pytest.mark.parametrize("limit", [1000, 3 * 2**20], ids=["in-memory", "temporary-file"])
def test_upload_size_limit_is_exact(staff, owners, store, settings, limit):
    """Files up to FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) stay in memory; larger ones go through the hashing handler."""
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": limit}
    at_limit = b"a" * limit
    response = upload(staff["a"], "patient", owners.alice.pk, at_limit)
    assert response.status_code == 201 and response.json()["size"] == limit
    assert response.json()["checksum"] == hashlib.sha256(at_limit).hexdigest()
    objects = stored_names(store)

    over = upload(staff["a"], "patient", owners.alice.pk, b"b" * (limit + 1))
    assert over.status_code == 413 and over.json()["code"] == "file_too_large"
    assert Blob.objects.count() == 1 and Attachment.objects.count() == 1
    assert stored_names(store) == objects


# -- 3. requests that lie in Content-Length --------------------------------------------


LENGTH_LIES = [
    "short-cut-in-file-data",
    "short-cut-early-in-file-data",
    "short-cut-in-part-headers",
    "short-cut-before-file-part",
    "short-cut-final-marker",  # everything but the closing "--\r\n": Django does not complete the file
    "short-big-file-cut",  # 3 MB: the temporary-file, hashing handler
    "zero",
    "not-a-number",
    "negative",
    "long-body-cut-then-eof",  # a client that disconnects mid-upload
    "long-big-body-cut-then-eof",
]


@pytest.mark.parametrize("case", LENGTH_LIES)
def test_content_length_lies_are_4xx_and_store_nothing(staff, owners, store, case):
    big = case.endswith(("big-file-cut", "big-body-cut-then-eof"))
    data = (bytes(range(256)) * (12_000 if big else 40))[: 3 * 2**20 if big else None]
    full = multipart({"owner_type": "patient", "owner_id": owners.alice.pk}, "x.bin", data)
    file_part, data_start = full.index(b'name="file"'), full.index(data)
    extra = {}
    sent = full
    length = {
        "short-cut-in-file-data": len(full) - 500,
        "short-cut-early-in-file-data": data_start + 100,
        "short-cut-in-part-headers": file_part + 5,
        "short-cut-before-file-part": file_part - 60,
        "short-cut-final-marker": len(full) - len(b"--\r\n"),
        "short-big-file-cut": data_start + len(data) // 2,
        "zero": 0,
        "not-a-number": "abc",  # Django reads it as 0: an empty body
        "negative": -1,
    }.get(case)
    if case.startswith("long-"):
        # The test client's FakePayload refuses to read past its end (an AssertionError, a
        # test-harness artefact); a BytesIO gives the early EOF a real server gives
        # when the client goes away.
        sent = full[: data_start + len(data) // 2]
        length = len(full)
        extra["wsgi.input"] = io.BytesIO(sent)
    response = staff["a"].generic("POST", LIST, sent, content_type=MULTIPART, CONTENT_LENGTH=str(length), **extra)

    assert 400 <= response.status_code < 500, (response.status_code, response.content)
    if case == "negative":
        assert response.json()["code"] == "parse_error"
    else:  # the truncated file part never completes: Django drops it
        assert "file" in response.json()
    assert_nothing_stored(store)


def test_content_length_longer_than_a_complete_body(staff, owners, store):
    """The one lie that loses nothing: a complete, well-formed body, then EOF before the declared length.

    The server cannot tell this from a slow client without waiting for bytes that
    never come (a real server would time out reading); with the early EOF of a
    closed connection, Django's parser has already seen the closing boundary, so
    the upload is whole and stored exactly: 201, not a 4xx.
    """
    data = bytes(range(256)) * 40
    full = multipart({"owner_type": "patient", "owner_id": owners.alice.pk}, "x.bin", data)
    response = staff["a"].generic(
        "POST",
        LIST,
        full,
        content_type=MULTIPART,
        CONTENT_LENGTH=str(len(full) + 1000),
        **{"wsgi.input": io.BytesIO(full)},
    )
    assert response.status_code == 201, response.content
    blob = Blob.objects.get()
    assert blob.size == len(data) and blob.checksum == hashlib.sha256(data).hexdigest()
    assert body(staff["a"].get(download(response.json()["id"]))) == data
    assert stored_names(store) == {blob.storage_identifiers["name"]}


def test_two_file_parts_store_only_the_one_used(staff, owners, store):
    payload = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="owner_type"\r\n\r\npatient\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="owner_id"\r\n\r\n{owners.alice.pk}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="one.txt"\r\n\r\nfirst file\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="two.txt"\r\n\r\nsecond file\r\n'
        f"--{BOUNDARY}--\r\n"
    ).encode()
    response = staff["a"].generic("POST", LIST, payload, content_type=MULTIPART)
    assert response.status_code == 201 and response.json()["filename"] == "two.txt"
    blob = Blob.objects.get()
    assert stored_names(store) == {blob.storage_identifiers["name"]}


@pytest.mark.parametrize(
    "content_type, payload, status",
    [
        ("multipart/form-data", b"--x\r\n\r\n", 400),  # no boundary
        ("multipart/form-data; boundary=", b"--x\r\n\r\n", 400),
        (MULTIPART, b"garbage without any boundary", 400),
        (MULTIPART, b'{"owner_type": "patient"}', 400),
        ("application/x-www-form-urlencoded", b"owner_type=patient&owner_id=1&file=abc", 400),
        ("application/json", b'{"file": "abc", "owner_type": "patient", "owner_id": "1"}', 400),
        ("application/json", b"[1, 2, 3]", 400),
        ("application/json", b'{"owner_type": ', 400),
        ("text/plain", b"hello", 415),
        ("application/xml", b"<a/>", 415),
    ],
    ids=[
        "multipart-no-boundary",
        "multipart-empty-boundary",
        "multipart-garbage",
        "multipart-json-body",
        "form-string-file",
        "json-string-file",
        "json-array",
        "json-truncated",
        "text-plain",
        "xml",
    ],
)
def test_malformed_bodies_are_4xx(staff, owners, store, content_type, payload, status):
    response = staff["a"].generic("POST", LIST, payload, content_type=content_type)
    assert response.status_code == status, response.content
    assert "code" in response.json()
    assert_nothing_stored(store)


# -- 4. identifiers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "owner_type, code",
    [("p" * 41, "max_length"), ("p" * 40, "unknown_owner_type"), ("invoice", "unknown_owner_type"),
     ("PATIENT", "unknown_owner_type"), ("patient\x00", "null_characters_not_allowed"),
     ("../patient", "unknown_owner_type")],
    ids=["41-chars", "40-chars-unknown", "unknown", "wrong-case", "nul", "path"],
)  # fmt: skip
def test_bad_owner_type_is_400_naming_it(staff, owners, store, pdf, owner_type, code):
    response = upload(staff["a"], owner_type, owners.alice.pk, pdf)
    assert response.status_code == 400 and "owner_type" in response.json(), response.json()
    assert response.json()["code"] == code
    assert_nothing_stored(store)


BAD_OWNER_IDS = {
    "abc": "owner_not_found",
    "1 OR 1=1": "owner_not_found",
    "1; DROP TABLE testapp_patient": "owner_not_found",
    "x" * 65: "max_length",
    "\x00": "null_characters_not_allowed",
    "1\x00": "null_characters_not_allowed",
    "-1": "owner_not_found",
    "1.0": "owner_not_found",
    "0x1": "owner_not_found",
    "1\u202e": "invalid",  # not printable: refused by the service's clean_owner_id
}


@pytest.mark.parametrize("owner_id", list(BAD_OWNER_IDS), ids=[ascii(k)[:20] for k in BAD_OWNER_IDS])
def test_bad_owner_id_is_400_naming_it(staff, owners, store, pdf, owner_id):
    uploaded = upload(staff["a"], "patient", owner_id, pdf)
    assert uploaded.status_code == 400 and "owner_id" in uploaded.json(), uploaded.json()
    assert uploaded.json()["code"] == BAD_OWNER_IDS[owner_id]
    assert_nothing_stored(store)
    blob_id = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk).blob_id
    linked = staff["a"].post(
        LIST, {"blob_id": str(blob_id), "owner_type": "patient", "owner_id": owner_id}, format="json"
    )
    assert linked.status_code == 400 and "owner_id" in linked.json(), linked.json()
    assert Attachment.objects.count() == 1


def test_equivalent_owner_ids_are_stored_canonically(staff, owners, store, pdf):
    """DRF trims " 1"; Python's int() reads the full-width digit "１" as 1: both are patient 1, stored as "1"."""
    pk = owners.alice.pk
    full_width = "".join(chr(0xFF10 + int(d)) for d in str(pk))
    first = upload(staff["a"], "patient", f" {pk}", pdf)
    second = upload(staff["a"], "patient", full_width, pdf)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["owner_id"] == second.json()["owner_id"] == str(pk)
    assert first.json()["id"] == second.json()["id"]


def test_another_tenants_blob_in_a_link_is_404(staff, owners, store, pdf):
    theirs = upload(staff["b"], "patient", owners.bob.pk, pdf).json()["blob_id"]
    for target in (owners.alice.pk, owners.bob.pk):  # to my owner, or to their own owner
        response = staff["a"].post(
            LIST, {"blob_id": theirs, "owner_type": "patient", "owner_id": str(target)}, format="json"
        )
        assert response.status_code in (400, 404)
        if target == owners.alice.pk:
            assert response.status_code == 404 and response.json()["code"] == "blob_not_found"
        else:  # their owner does not exist for me, whatever the blob
            assert response.json()["code"] == "owner_not_found"
    assert Attachment.objects.count() == 1


@pytest.mark.parametrize(
    "segment",
    ["not-a-uuid", "1", "%00", "%2e%2e", "' OR 1=1 --", "z" * 300, "00000000-0000-0000-0000-00000000000g",
     "{00000000-0000-0000-0000-000000000000}", "00000000000000000000000000000000", "%E2%80%AE"],
    ids=["word", "int", "nul", "dotdot", "sql", "long", "bad-hex", "braces", "hex32", "rtl"],
)  # fmt: skip
def test_non_uuid_ids_in_urls_are_json_404(staff, owners, store, segment):
    client = staff["a"]
    responses = [
        client.get(detail(segment)),
        client.get(download(segment)),
        client.patch(detail(segment), {"description": "x"}, format="json"),
        client.delete(detail(segment)),
    ]
    for response in responses:
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json() == NOT_FOUND


@pytest.mark.parametrize("page_size", ["100000000", "9" * 30])
def test_huge_page_size_is_capped(staff, owners, store, settings, page_size):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_PAGE_SIZE": 3}
    for i in range(5):
        services.attach(f"file {i}".encode(), owner_type="patient", owner_id=owners.alice.pk)
    response = staff["a"].get(LIST, {"page_size": page_size})
    assert response.status_code == 200
    assert response.json()["count"] == 5 and len(response.json()["results"]) == 3


@pytest.mark.parametrize(
    "params, status, key",
    [
        ({"page": "-1"}, 400, "page"),
        ({"page": "0"}, 400, "page"),
        ({"page": "abc"}, 400, "page"),
        ({"page": "1.5"}, 400, "page"),
        ({"page": ""}, 400, "page"),
        ({"page": "last"}, 400, "page"),
        ({"page": "9" * 30}, 404, "detail"),
        ({"page": "2"}, 404, "detail"),
        ({"page_size": "0"}, 400, "page_size"),
        ({"page_size": "-5"}, 400, "page_size"),
        ({"page_size": "abc"}, 400, "page_size"),
    ],
)
def test_bad_pages_are_4xx(staff, owners, store, params, status, key):
    services.attach(b"one file", owner_type="patient", owner_id=owners.alice.pk)
    response = staff["a"].get(LIST, params)
    assert response.status_code == status and key in response.json(), response.json()
