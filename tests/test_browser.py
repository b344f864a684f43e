"""The admin attachments panel in a real browser: log in, open a plan item, upload, see, download, unlink.

Headless Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it)
driven by Playwright's Python package with ``executable_path`` pointed at it,
so no browser is downloaded. Runs against the example project served live. On
failure a screenshot and the page's HTML are saved under ``test-artifacts/``
(or ``$TEST_ARTIFACTS``). Skipped where Chromium or Playwright is missing,
except in CI (``CI=true``), where their absence is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import PNG_BYTES
from tests.live import example_server

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture
def page(request, tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _require(sync_playwright is not None, "playwright is not installed")
    _require(CHROMIUM is not None, "chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
                (ARTIFACTS / f"{request.node.name}.html").write_text(page.content())
            context.close()
            browser.close()


def open_first_plan_item(page, server):
    """Log in to the example's admin as its superuser and open the first plan item's change page."""
    page.goto(f"{server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.url}/admin/")
    page.goto(f"{server.url}/admin/treatment_plan/planitem/")
    page.click("#result_list tbody tr a >> nth=0")


def test_staff_upload_download_and_unlink_on_a_plan_item(page, tmp_path):
    upload = tmp_path / "after-photo.png"
    upload.write_bytes(PNG_BYTES)
    with example_server(tmp_path / "server") as server:
        open_first_plan_item(page, server)
        panel = page.locator("#attachments")
        panel.wait_for()
        rows_before = panel.locator("tr.attachment-row").count()

        # Upload into the "after" slot.
        panel.locator("input[type=file]").set_input_files(str(upload))
        panel.locator("select[name=name]").select_option("after")
        panel.locator("textarea[name=description]").fill("Uploaded from the browser test")
        panel.locator("input[type=submit][value=Upload]").click()
        page.wait_for_load_state()
        assert panel.locator("[role=status]").inner_text().strip() == "Attached after-photo.png."
        row = panel.locator("tr.attachment-row", has_text="after-photo.png")
        assert row.count() == 1 and panel.locator("tr.attachment-row").count() == rows_before + 1
        assert "image/png" in row.inner_text() and "Uploaded from the browser test" in row.inner_text()

        # Download it: the same bytes come back, as an attachment.
        with page.expect_download() as info:
            row.locator("a.attachment-download").click()
        download = info.value
        assert download.suggested_filename == "after-photo.png"
        assert Path(download.path()).read_bytes() == upload.read_bytes()

        # Unlink it.
        row.locator("input.attachment-unlink").click()
        page.wait_for_load_state()
        assert panel.locator("[role=status]").inner_text().strip() == "Unlinked after-photo.png."
        assert panel.locator("tr.attachment-row", has_text="after-photo.png").count() == 0
        assert panel.locator("tr.attachment-row").count() == rows_before


def _box(locator):
    box = locator.bounding_box()
    assert box is not None, locator
    return box


def _in_viewport(page, locator):
    box, viewport = _box(locator), page.viewport_size
    return box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"] and box["width"] > 0


def test_the_panel_sits_in_the_change_form_and_speaks_where_the_user_is(page, tmp_path):
    """The panel is part of the change form's flow, above its Save row; its messages show inside it.

    Screenshots of the change page, of it after an upload and after a refusal, and of the blob
    list, at 1280x800, are saved under test-artifacts/ (``admin-*.png``).
    """
    page.set_viewport_size({"width": 1280, "height": 800})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    photo = tmp_path / "after-photo.png"
    photo.write_bytes(PNG_BYTES)
    notes = tmp_path / "notes.txt"  # lower case: the message must keep it so
    notes.write_text("Not an image.\n")
    with example_server(tmp_path / "server") as server:
        open_first_plan_item(page, server)
        change_url = page.url
        panel = page.locator("#attachments")
        panel.wait_for()

        # Inside the change form, between its fields and its submit row; no form inside another.
        form = page.locator("form#planitem_form")
        assert form.locator("#attachments").count() == 1
        assert page.locator("form form").count() == 0
        fields, submit_row = _box(form.locator("fieldset").first), _box(form.locator(".submit-row").last)
        box = _box(panel)
        assert fields["y"] + fields["height"] <= box["y"]
        assert box["y"] + box["height"] <= submit_row["y"]
        assert abs(box["x"] - fields["x"]) < 1 and abs(box["width"] - fields["width"]) < 1
        # Its controls belong to the panel's own form, outside the change form.
        owners = panel.locator("input, select, textarea").evaluate_all("els => els.map(e => e.form && e.form.id)")
        assert set(owners) <= {"attachments-upload", "attachments-unlink"} and "attachments-upload" in owners
        page.screenshot(path=str(ARTIFACTS / "admin-panel-change-page.png"), full_page=True)

        # Saving the owner does not post the panel's file.
        rows_before = panel.locator("tr.attachment-row").count()
        panel.locator("input[type=file]").set_input_files(str(photo))
        page.click("input[name=_continue]")
        page.wait_for_url(change_url)
        top_messages = page.locator(".messagelist:not(#attachments .messagelist)")
        assert "was changed successfully" in top_messages.inner_text()
        assert panel.locator("tr.attachment-row").count() == rows_before

        # An upload: the page lands on the panel, and the message is in it, in view.
        panel.locator("input[type=file]").set_input_files(str(photo))
        panel.locator("select[name=name]").select_option("after")
        panel.locator("input[type=submit][value=Upload]").click()
        page.wait_for_url(change_url + "#attachments")
        status = panel.locator("[role=status]")
        assert status.inner_text().strip() == "Attached after-photo.png."
        assert _in_viewport(page, status)
        assert top_messages.count() == 0  # not also at the top
        assert panel.locator("tr.attachment-row").count() == rows_before + 1
        page.screenshot(path=str(ARTIFACTS / "admin-panel-after-upload.png"))

        # A refusal: an alert in the panel, in view, naming the file exactly as uploaded.
        panel.locator("input[type=file]").set_input_files(str(notes))
        panel.locator("input[type=submit][value=Upload]").click()
        page.wait_for_load_state()
        alert = panel.locator("[role=alert]")
        assert alert.inner_text().strip().startswith("notes.txt was not attached: ")
        assert _in_viewport(page, alert)
        assert panel.locator("tr.attachment-row").count() == rows_before + 1
        page.screenshot(path=str(ARTIFACTS / "admin-panel-after-refusal.png"))

        # The blob list fits 1280 px: no column is cut off, nothing scrolls sideways, even with a
        # long filename without a space in it.
        long_name = tmp_path / "IMG_20261130_034212_upper_left_incisor_after_treatment_final.png"
        long_name.write_bytes(PNG_BYTES + b"another blob")
        panel.locator("input[type=file]").set_input_files(str(long_name))
        panel.locator("input[type=submit][value=Upload]").click()
        page.wait_for_load_state()
        assert panel.locator("[role=status]").inner_text().strip() == f"Attached {long_name.name}."
        page.goto(f"{server.url}/admin/django_attachments/blob/")
        assert page.locator("#result_list", has_text=long_name.name).count() == 1
        widths = page.evaluate(
            "() => { const r = document.querySelector('#changelist .results');"
            " return [r.scrollWidth, r.clientWidth, document.documentElement.scrollWidth]; }"
        )
        assert widths[0] <= widths[1] and widths[2] <= 1280, widths
        page.screenshot(path=str(ARTIFACTS / "admin-blob-list.png"))


def test_clinic_staff_see_only_their_clinics_patients_and_files(page, tmp_path):
    with example_server(tmp_path / "server") as server:
        page.goto(f"{server.url}/admin/login/")
        page.fill("#id_username", "harbour")  # staff of Harbour Dental, from seed_demo
        page.fill("#id_password", "harbour-demo")
        page.click("input[type=submit]")
        page.wait_for_url(f"{server.url}/admin/")

        page.goto(f"{server.url}/admin/patients/patient/")
        assert page.locator("#result_list tbody tr th a").all_inner_texts() == ["Grace Hopper"]
        page.click("#result_list tbody tr th a >> text=Grace Hopper")
        panel = page.locator("#attachments")
        panel.wait_for()
        files = sorted(panel.locator("a.attachment-download").all_inner_texts())
        assert files == ["consent.pdf", "xray.png"]

        # Northside's plan items, and their files, are not there for Harbour's staff.
        page.goto(f"{server.url}/admin/treatment_plan/planitem/")
        assert page.locator("#result_list tbody tr").count() == 0


def _log_in_to_the_api(page, server, username="north", password="north-demo"):
    """The browsable API's login form: a session cookie and a CSRF cookie, as in any browser."""
    page.goto(f"{server.url}/api-auth/login/?next=/api/attachments/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("[type=submit]")
    page.wait_for_url(f"{server.url}/api/attachments/")


#: In the page: post a multipart form with a file, as a single-page app would (fetch + FormData).
POST_FILE = """async ({ownerId, withToken, bytes}) => {
    const form = new FormData();
    form.append("owner_type", "patient");
    form.append("owner_id", ownerId);
    form.append("file", new Blob([new Uint8Array(bytes)], {type: "image/png"}), "from-the-browser.png");
    const token = document.cookie.split("; ").find((c) => c.startsWith("csrftoken=")).split("=")[1];
    const response = await fetch("/api/attachments/", {
        method: "POST", body: form, headers: withToken ? {"X-CSRFToken": token} : {},
    });
    return {status: response.status, body: await response.json()};
}"""


def test_a_browser_session_uploads_through_the_api_with_its_csrf_token(page, tmp_path):
    with example_server(tmp_path / "server") as server:
        _log_in_to_the_api(page, server)
        listed = page.evaluate("async () => (await (await fetch('/api/attachments/?owner_type=patient')).json())")
        owner_id = listed["results"][0]["owner_id"]

        refused = page.evaluate(POST_FILE, {"ownerId": owner_id, "withToken": False, "bytes": list(PNG_BYTES)})
        assert refused["status"] == 403 and "CSRF" in refused["body"]["detail"], refused
        created = page.evaluate(POST_FILE, {"ownerId": owner_id, "withToken": True, "bytes": list(PNG_BYTES)})
        assert created["status"] == 201, created
        assert created["body"]["content_type"] == "image/png"

        # The browsable API shows it to the same session, and its PATCH form (JSON by default) edits it.
        page.goto(f"{server.url}/api/attachments/{created['body']['id']}/")
        assert "from-the-browser.png" in page.content()
        assert page.input_value("#id__content_type") == "application/json"
        page.fill("#id__content", '{"description": "edited in the browsable API"}')
        page.click("button[data-method=PATCH]")
        page.wait_for_function(
            "document.querySelector('.response-info').innerText.includes('edited in the browsable API')"
        )
        assert "HTTP 200 OK" in page.inner_text(".response-info")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browsable-api-after-session-upload.png"))
