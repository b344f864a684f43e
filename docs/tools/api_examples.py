"""Print the request/response examples of docs/api.md from a real run of the example project.

    .venv/bin/python docs/tools/api_examples.py > /tmp/examples.md

Serves the example project (fresh database, seeded) on a free port, with a
clamd scanner (started here, loading the tests' signatures, which know the
EICAR test file) and the built-in analyzers; sends each request as the staff
user ``north`` (the bytes of a direct upload without credentials: its URL is
signed), and prints each exchange as Markdown. Needs clamd (Debian's
clamav-daemon), as the tests do. Volatile values (ids, dates, ports) differ
from run to run; shapes do not. Signed tokens are shortened to their first
characters and an ellipsis.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import servers  # noqa: E402
from tests.clamd import EICAR, databases  # noqa: E402
from tests.live import example_server  # noqa: E402

AUTH = "Basic " + base64.b64encode(b"north:north-demo").decode()
BOUNDARY = "----example-boundary"
SHOWN_BASE = "http://127.0.0.1:8000"
# The signed token of the API's own upload URL: "<id>:<timestamp>:<signature>".
TOKEN = re.compile(r"(token=)([\w-]{8})[\w-]*:([\w-]+):([\w-]{6})[\w-]*")


def shorten(text: str) -> str:
    return TOKEN.sub(r"\1\2…:\3:\4…", text)


def call(base, method, path, *, body=None, headers=None, show=None, auth=True, echo=True, shown_body=None):
    """Send one request; print it and its answer as Markdown (unless ``echo`` is false); return the JSON.

    ``shown_body`` is printed in place of the body (which is sent as it is).
    """
    url = path if path.startswith("http") else base + path
    request = urllib.request.Request(url, data=body, method=method, headers={"Authorization": AUTH} if auth else {})
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        response = urllib.request.urlopen(request)
    except urllib.error.HTTPError as error:
        response = error
    payload = response.read()
    if echo:
        shown_headers = {k: v for k, v in response.headers.items() if k in (show or [])}
        print(f"```http\n{method} {shorten(url.removeprefix(base))}")
        for key, value in (headers or {}).items():
            print(f"{key}: {value}")
        if body is not None:
            print()
            print(shown_body if shown_body is not None else show_body(body))
        print(f"```\n\n```http\nHTTP/1.1 {response.status} {response.reason}")
        for key, value in shown_headers.items():
            print(f"{key}: {value}")
        if payload:
            print()
            try:
                print(shorten(json.dumps(json.loads(payload), indent=2, ensure_ascii=False).replace(base, SHOWN_BASE)))
            except ValueError:
                print(f"<{len(payload)} bytes>")
        print("```\n")
    try:
        return json.loads(payload)
    except ValueError:
        return None


def show_body(body: bytes) -> str:
    text = body.decode("utf-8", "replace").replace("\r\n", "\n")  # Markdown keeps LF line ends
    return text if len(text) < 1200 else text[:1200] + "…"


def multipart(fields, filename, content, content_type="application/pdf"):
    lines = []
    for name, value in fields.items():
        lines += [f"--{BOUNDARY}", f'Content-Disposition: form-data; name="{name}"', "", value]
    lines += [f"--{BOUNDARY}", f'Content-Disposition: form-data; name="file"; filename="{filename}"']
    lines += [f"Content-Type: {content_type}", "", ""]
    return "\r\n".join(lines).encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def blank_pdf(comment):
    """A valid one-page PDF (A4, blank) in readable text, with ``comment`` on its second line."""
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
    ]
    pdf = bytearray(b"%PDF-1.4\n% " + comment.encode() + b"\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj%s endobj\n" % (number, body)
    xref_at = len(pdf)
    pdf += b"xref\n0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer<</Size 4/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(pdf)


def post_file(base, fields, filename, content, content_type="application/pdf", shown_as=None):
    """Upload ``content`` as multipart; ``shown_as`` stands for the bytes in the printed request."""
    body = multipart(fields, filename, content, content_type)
    shown = None if shown_as is None else show_body(multipart(fields, filename, shown_as.encode(), content_type))
    return call(
        base,
        "POST",
        "/api/attachments/",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        shown_body=shown,
    )


def main():
    with tempfile.TemporaryDirectory() as tmp:
        with (
            servers.clamd_server(Path(tmp) / "clamd", databases()) as clamd,
            example_server(Path(tmp) / "site", env={"CLAMD_SOCKET": clamd.socket}) as server,
        ):
            examples(server.url)


def examples(base):
    pdf = blank_pdf("consent form")
    print("### Upload\n")
    print(
        "Scanned and analyzed before the answer: the upload committed, and the example project runs its tasks "
        "at once (the Tasks framework's immediate backend).\n"
    )
    created = post_file(base, {"owner_type": "patient", "owner_id": "1", "name": "consent"}, "consent form.pdf", pdf)
    if created.get("scan") != "clean":
        raise SystemExit(f"The example project did not scan the upload: {created}")
    print("### Link the same blob to a plan item of the same patient\n")
    link = json.dumps({"blob_id": created["blob_id"], "owner_type": "plan_item", "owner_id": "1", "name": "reference"})
    call(base, "POST", "/api/attachments/", body=link.encode(), headers={"Content-Type": "application/json"})
    print("### Link to another patient: owner_mismatch\n")
    grace_item = json.dumps({"blob_id": created["blob_id"], "owner_type": "patient", "owner_id": "2"})
    call(base, "POST", "/api/attachments/", body=grace_item.encode(), headers={"Content-Type": "application/json"})
    print("### An owner of another clinic (or none at all)\n")
    post_file(base, {"owner_type": "patient", "owner_id": "3"}, "x.pdf", pdf)
    print("### List, filtered\n")
    call(base, "GET", "/api/attachments/?owner_type=patient&owner_id=1&page_size=2")
    print("### Edit\n")
    call(
        base,
        "PATCH",
        f"/api/attachments/{created['id']}/",
        body=json.dumps({"description": "Signed at the first visit"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    print("### Download a range\n")
    call(
        base,
        "GET",
        f"/api/attachments/{created['id']}/download/",
        headers={"Range": "bytes=0-7"},
        show=["Content-Type", "Content-Length", "Content-Range", "Content-Disposition", "ETag"],
    )
    print("### Unlink\n")
    call(base, "DELETE", f"/api/attachments/{created['id']}/")
    processing(base)
    direct_uploads(base)


def processing(base):
    """A file an analyzer cannot read; the EICAR test file, quarantined; the list by states and types."""
    print("### A file an analyzer cannot read: analysis failed, the file kept\n")
    torn = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    post_file(base, {"owner_type": "patient", "owner_id": "1", "name": "scan"}, "torn.pdf", torn)
    print("### A file the scanner finds a threat in: infected, and its download 409 quarantined\n")
    print(
        "The EICAR test file, which scanners report as a threat (the example's clamd knows it by a test "
        "signature); `scan_signature` is shown to staff, and `north` is. The upload is answered 201: the file is "
        "stored, then found.\n"
    )
    # The file's bytes are not printed: a virus scanner reading these docs would flag them.
    infected = post_file(
        base,
        {"owner_type": "patient", "owner_id": "1"},
        "eicar.com",
        EICAR,
        content_type="application/octet-stream",
        shown_as="<the EICAR test file's 68 bytes>",
    )
    call(base, "GET", f"/api/attachments/{infected['id']}/download/")
    print("### List by processing state and type\n")
    call(base, "GET", "/api/attachments/?scan=infected,failed&content_type=text/*,application/*")
    print("### A filter value that is not a state: invalid_choice\n")
    call(base, "GET", "/api/attachments/?scan=clean,dirty")


def start_upload(base, content, *, echo=True, **fields):
    """POST attachments/uploads/ for ``content``, declared with its size and SHA-256."""
    declared = {**fields, "size": len(content), "checksum": hashlib.sha256(content).hexdigest()}
    body = json.dumps(declared).encode()
    return call(
        base, "POST", "/api/attachments/uploads/", body=body, headers={"Content-Type": "application/json"}, echo=echo
    )


def send_bytes(base, upload, content, *, echo=True):
    """Send ``content`` as the ticket says: its method, URL and headers, and no credentials."""
    return call(base, upload["method"], upload["url"], body=content, headers=upload["headers"], auth=False, echo=echo)


def direct_uploads(base):
    """Start, send, complete; the same bytes again; bytes other than those declared."""
    scan = blank_pdf("referral letter")
    owner = {"owner_type": "patient", "owner_id": "1", "name": "referral", "filename": "referral.pdf"}
    print("### Direct upload: start\n")
    started = start_upload(base, scan, **owner, content_type="application/pdf")
    upload = started["upload"]
    print("### Direct upload: send the bytes (on local disk, to the API's own upload URL)\n")
    send_bytes(base, upload, scan)
    print("### Direct upload: complete\n")
    call(base, "POST", upload["complete_url"])
    print("### Direct upload of bytes the owner's subject already holds: attached at once\n")
    start_upload(base, scan, owner_type="plan_item", owner_id="1", name="reference", filename="referral.pdf")
    print("### Direct upload of bytes other than those declared: checksum_mismatch\n")
    print("Started for patient 2 like the first, then sent with one byte changed:\n")
    tampered = start_upload(base, scan, **{**owner, "owner_id": "2"}, echo=False)["upload"]
    send_bytes(base, tampered, scan.replace(b"referral", b"referr4l"), echo=False)
    call(base, "POST", tampered["complete_url"])


if __name__ == "__main__":
    main()
