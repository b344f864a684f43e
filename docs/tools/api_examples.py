"""Print the request/response examples of docs/api.md from a real run of the example project.

    .venv/bin/python docs/tools/api_examples.py > /tmp/examples.md

Serves the example project (fresh database, seeded) on a free port, sends each
request as the staff user ``north`` (the bytes of a direct upload without
credentials: its URL is signed), and prints each exchange as Markdown.
Volatile values (ids, dates, ports) differ from run to run; shapes do not.
Signed tokens are shortened to their first characters and an ellipsis.
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

from tests.live import example_server  # noqa: E402

AUTH = "Basic " + base64.b64encode(b"north:north-demo").decode()
BOUNDARY = "----example-boundary"
SHOWN_BASE = "http://127.0.0.1:8000"
# The signed token of the API's own upload URL: "<id>:<timestamp>:<signature>".
TOKEN = re.compile(r"(token=)([\w-]{8})[\w-]*:([\w-]+):([\w-]{6})[\w-]*")


def shorten(text: str) -> str:
    return TOKEN.sub(r"\1\2…:\3:\4…", text)


def call(base, method, path, *, body=None, headers=None, show=None, auth=True, echo=True):
    """Send one request; print it and its answer as Markdown (unless ``echo`` is false); return the JSON."""
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
            print(show_body(body))
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
    return text if len(text) < 600 else text[:600] + "…"


def multipart(fields, filename, content):
    lines = []
    for name, value in fields.items():
        lines += [f"--{BOUNDARY}", f'Content-Disposition: form-data; name="{name}"', "", value]
    lines += [f"--{BOUNDARY}", f'Content-Disposition: form-data; name="file"; filename="{filename}"']
    lines += ["Content-Type: application/pdf", "", ""]
    return "\r\n".join(lines).encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def main():
    with tempfile.TemporaryDirectory() as tmp, example_server(Path(tmp)) as server:
        base = server.url
        pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
        print("### Upload\n")
        created = call(
            base,
            "POST",
            "/api/attachments/",
            body=multipart({"owner_type": "patient", "owner_id": "1", "name": "consent"}, "consent form.pdf", pdf),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        print("### Link the same blob to a plan item of the same patient\n")
        link = json.dumps(
            {"blob_id": created["blob_id"], "owner_type": "plan_item", "owner_id": "1", "name": "reference"}
        )
        call(base, "POST", "/api/attachments/", body=link.encode(), headers={"Content-Type": "application/json"})
        print("### Link to another patient: owner_mismatch\n")
        grace_item = json.dumps({"blob_id": created["blob_id"], "owner_type": "patient", "owner_id": "2"})
        call(base, "POST", "/api/attachments/", body=grace_item.encode(), headers={"Content-Type": "application/json"})
        print("### An owner of another clinic (or none at all)\n")
        call(
            base,
            "POST",
            "/api/attachments/",
            body=multipart({"owner_type": "patient", "owner_id": "3"}, "x.pdf", pdf),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
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
        direct_uploads(base, pdf)


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


def direct_uploads(base, pdf):
    """Start, send, complete; the same bytes again; bytes other than those declared."""
    scan = pdf.replace(b"%PDF-1.4\n", b"%PDF-1.4\n% referral letter\n")
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
