"""The example project's direct upload page in a real browser: the whole flow, through the packaged uploader.

The page drives the app's uploader (``django_attachments/uploader.js``, whose
SHA-256, parts and resume are tested in ``tests/test_browser_uploader.py``).
Here the page itself is tested: it logs in as a clinic's staff on the live
example project (on local disk, and on S3 served by moto and by SeaweedFS),
uploads a PNG, uploads it again (the deduplicated short-cut: no bytes sent),
and uploads files whose type the owner refuses, checking what the page shows,
the HTTP exchanges it makes and what the API lists afterwards. Its multipart
uploads, progress bar and Cancel are in ``tests/test_browser_admin_uploader.py``.
Headless Chromium, as in ``tests/test_browser.py``, whose ``page`` fixture
this module shares.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from tests import test_browser
from tests.conftest import PNG_BYTES, STORE_KINDS, get_s3_server
from tests.live import example_server

page = test_browser.page  # the fixture: headless Chromium, with a screenshot of any failure

pytestmark = pytest.mark.slow

USERNAME, PASSWORD = "north", "north-demo"  # staff of "Northside Dental", from seed_demo


# -- The whole flow, against the live example project --------------------------------

HTML_AS_PDF = b"<!DOCTYPE html>\n<html><head><title>Not a PDF</title></head><body><p>Hello</p></body></html>\n"


# Every text the status element shows, in order, from now on.
RECORD_STAGES = """status => {
    window.stages = [];
    window.stageObserver?.disconnect();
    window.stageObserver = new MutationObserver(() => window.stages.push(status.textContent));
    window.stageObserver.observe(status, { childList: true, characterData: true, subtree: true });
    status.dataset.state = "idle";
}"""


class Uploader:
    """Drives the page's form and records what each submission did: the texts shown and the HTTP exchanges."""

    def __init__(self, page, api: str):
        self.page, self.api, self.uploads_url = page, api, f"{api}uploads/"
        self.exchanges: list[tuple[str, str, int]] = []  # (step, url, status)
        page.on("response", self._record)

    def _record(self, response) -> None:
        method, url = response.request.method, response.url
        if method == "PUT":
            self.exchanges.append(("put", url, response.status))
        elif method == "POST" and url.startswith(self.uploads_url):
            step = "complete" if url.endswith("/complete/") else "start"
            self.exchanges.append((step, url, response.status))

    def upload(self, *, owner: str, name: str, data: bytes, mime: str, slot: str = "") -> str:
        """Fill the form, submit it, wait for the outcome: the status's state, "done" or "error"."""
        page = self.page
        page.select_option("#owner", label=owner)
        page.fill("#slot", slot)
        page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])
        self.exchanges.clear()
        # Also forgets the previous outcome, so that the wait below sees this submission's.
        page.locator("#status").evaluate(RECORD_STAGES)
        page.click("#direct-upload button[type=submit]")
        page.locator("#status[data-state=done], #status[data-state=error]").wait_for()
        return page.get_attribute("#status", "data-state")

    @property
    def steps(self) -> list[tuple[str, int]]:
        return [(step, status) for step, _, status in self.exchanges]

    @property
    def stages(self) -> list[str]:
        """The stages the status went through, each once: "Hashing…", "Asking", "Uploading", "Verifying", ..."""
        words = [text.split()[0].rstrip(":") for text in self.page.evaluate("window.stages")]
        return [word for i, word in enumerate(words) if i == 0 or words[i - 1] != word]

    def attachments(self, owner_type: str, owner_id: str) -> list[dict]:
        """The owner's attachments, as the API lists them to the logged-in user."""
        response = self.page.request.get(f"{self.api}?owner_type={owner_type}&owner_id={owner_id}")
        assert response.ok, response.text()
        return response.json()["results"]


@pytest.mark.parametrize("storage", STORE_KINDS)
def test_direct_upload_page_uploads_deduplicates_and_refuses(page, tmp_path, request, storage):
    png_checksum = hashlib.sha256(PNG_BYTES).hexdigest()
    env = {}
    s3 = storage.startswith("s3-")
    if s3:  # the browser PUTs to a presigned URL of another origin (both servers allow any)
        s3_server = get_s3_server(request, storage.removeprefix("s3-"))
        env = {
            "STORAGE_BACKEND": "s3",
            "AWS_STORAGE_BUCKET_NAME": s3_server.make_bucket(),
            "AWS_S3_ENDPOINT_URL": s3_server.endpoint,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        }

    with example_server(tmp_path / "server", env=env) as server:
        api = f"{server.url}/api/attachments/"
        storage_url = env["AWS_S3_ENDPOINT_URL"] + "/" if s3 else f"{api}uploads/"
        uploader = Uploader(page, api)

        # Logged out: the page sends us to the login form, which comes back to it.
        page.goto(f"{server.url}/direct-upload/")
        page.wait_for_url(re.compile(r"/api-auth/login/\?next=/direct-upload/$"))
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("#submit-id-submit")
        page.wait_for_url(f"{server.url}/direct-upload/")
        assert "straight to the storage" in page.inner_text(".explainer")
        # Only this clinic's owners are offered.
        owners = page.locator("#owner option").all_inner_texts()
        assert "Alan Turing (N-0002)" in owners and not any("Grace Hopper" in owner for owner in owners)

        # A new file: hashed, sent, verified.
        patient = "Alan Turing (N-0002)"
        patient_id = page.locator("#owner option", has_text=patient).get_attribute("value").split(":", 1)[1]
        state = uploader.upload(owner=patient, name="photo.png", data=PNG_BYTES, mime="image/png")
        assert state == "done", page.inner_text("#status")
        assert uploader.stages == ["Hashing…", "Asking", "Uploading", "Verifying", "Uploaded"]
        assert page.inner_text("#status") == "Uploaded and verified."
        assert uploader.steps == [("start", 201), ("put", 200 if s3 else 204), ("complete", 201)]
        assert uploader.exchanges[1][1].startswith(storage_url), uploader.exchanges
        shown = page.inner_text("#result")
        assert "photo.png" in shown and "image/png" in shown and png_checksum in shown
        assert f"{len(PNG_BYTES)} bytes" in shown

        (attachment,) = uploader.attachments("patient", patient_id)
        assert attachment["checksum"] == png_checksum and attachment["size"] == len(PNG_BYTES)
        assert attachment["filename"] == "photo.png" and attachment["content_type"] == "image/png"
        download = page.request.get(page.get_attribute("#result a.download", "href"))
        assert download.ok and download.body() == PNG_BYTES

        # The same bytes again: the server knows them, nothing is sent; the attachment already exists.
        state = uploader.upload(owner=patient, name="photo.png", data=PNG_BYTES, mime="image/png")
        assert state == "done", page.inner_text("#status")
        assert uploader.stages == ["Hashing…", "Asking", "Already"]
        assert "no upload was needed" in page.inner_text("#status")
        assert uploader.steps == [("start", 200)]
        assert png_checksum in page.inner_text("#result")
        assert [a["id"] for a in uploader.attachments("patient", patient_id)] == [attachment["id"]]

        # Plan items take images and PDFs only. Declared as text: refused before any byte is sent.
        plan_item = "Ada Lovelace (N-0001): Consultation and X-ray"
        item_id = page.locator("#owner option", has_text=plan_item).get_attribute("value").split(":", 1)[1]
        before = uploader.attachments("plan_item", item_id)
        state = uploader.upload(owner=plan_item, slot="reference", name="notes.txt", data=b"notes\n", mime="text/plain")
        assert state == "error" and uploader.stages == ["Hashing…", "Asking", "Failed"]
        assert page.inner_text("#status code") == "unsupported_file_type", page.inner_text("#status")
        assert uploader.steps == [("start", 415)]

        # HTML posing as a PDF: sent, then refused when the server sniffs what arrived.
        state = uploader.upload(
            owner=plan_item, slot="reference", name="scan.pdf", data=HTML_AS_PDF, mime="application/pdf"
        )
        assert state == "error"
        assert uploader.stages == ["Hashing…", "Asking", "Uploading", "Verifying", "Failed"]
        assert page.inner_text("#status code") == "unsupported_file_type", page.inner_text("#status")
        assert uploader.steps == [("start", 201), ("put", 200 if s3 else 204), ("complete", 415)]
        assert page.is_hidden("#result")
        assert uploader.attachments("plan_item", item_id) == before
