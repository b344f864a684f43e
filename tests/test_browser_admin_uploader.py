"""The packaged uploader where the example project uses it: the admin panel's drop zone and the demo page.

Against the live example project (``tests/live.py``) on local disk, with
multipart uploads from 5 MiB in parts of 5 MiB (its ``ATTACHMENTS_MULTIPART_*``
environment), in headless Chromium (``tests/test_browser.py``'s ``page``
fixture), logged in as a clinic's staff (``north``):

- the admin panel of a patient: a file of 12 MiB dropped on it (a real
  ``drop`` event carrying a real File) goes in three parts with its row's
  progress bar moving, and appears in the panel's list without the page being
  left; a small file picked with the zone's *choose files* goes through the
  uploader too (not posted to the admin); a refused one shows the server's
  message; one cancelled half-way
  leaves its ticket cancelled and nothing attached; one cut off by a reload
  resumes when dropped again, sending only the parts the storage lacks;
- the demo's direct upload page: a multipart upload with its progress bar,
  and one cancelled.

Screenshots of the panel (with its drop zone, a file dragged over it, an
upload half-way) are saved under ``test-artifacts/`` (or ``$TEST_ARTIFACTS``).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from tests import test_browser
from tests.conftest import PNG_BYTES
from tests.live import example_server

page = test_browser.page  # the fixture: headless Chromium, with a screenshot of any failure

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
PART_SIZE = 5 * MiB
LIVE_ENV = {
    "ATTACHMENTS_MULTIPART_THRESHOLD": str(PART_SIZE),
    "ATTACHMENTS_MULTIPART_PART_SIZE": str(PART_SIZE),
    "ATTACHMENTS_MAX_UPLOAD_SIZE": str(256 * MiB),
}
USERNAME, PASSWORD = "north", "north-demo"  # staff of "Northside Dental", from seed_demo
PATIENT = "Alan Turing (N-0002)"
PART_URL = re.compile(r"/api/attachments/uploads/([^/]+)/parts/(\d+)")


@dataclass(frozen=True)
class Live:
    url: str
    patient: str  # the primary key of the patient the uploads are for


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with example_server(tmp_path_factory.mktemp("live-admin") / "server", env=LIVE_ENV) as server:
        found = server.manage(
            "shell", "-c", "from patients.models import Patient; print(Patient.objects.get(record_number='N-0002').pk)"
        )
        assert found.returncode == 0, found.stderr
        yield Live(server.url, found.stdout.split()[-1])


def shot(page, name: str, locator=None) -> None:
    test_browser.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (locator or page).screenshot(path=str(test_browser.ARTIFACTS / name))


def throttle(page, upload_bytes_per_second: int | None):
    """Make the browser's uploads this slow (None: as fast as they go)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_bytes_per_second or -1},
    )


def random_file(tmp_path, name: str, size: int):
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


class Traffic:
    """What the page sent: each part PUT as (ticket, number, status; 0 when it failed), the tickets started."""

    def __init__(self, page):
        self.parts: list[tuple[str, int, int]] = []
        self.started: list[dict] = []
        self.posts: list[str] = []  # every POST's path
        self.part_requests = 0  # part PUTs the page began
        page.on("request", self._request)
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def _request(self, request):
        if request.method == "PUT" and PART_URL.search(urlsplit(request.url).path):
            self.part_requests += 1

    def _response(self, response):
        request = response.request
        match = PART_URL.search(urlsplit(request.url).path)
        if request.method == "PUT" and match:
            self.parts.append((match.group(1), int(match.group(2)), response.status))
        if request.method == "POST":
            self.posts.append(urlsplit(request.url).path)
            if urlsplit(request.url).path == "/api/attachments/uploads/" and response.ok:
                self.started.append(response.json())

    def _failed(self, request):
        match = PART_URL.search(urlsplit(request.url).path)
        if request.method == "PUT" and match:
            self.parts.append((match.group(1), int(match.group(2)), 0))

    def accepted(self) -> set[int]:
        return {number for _, number, status in self.parts if status == 204}


def admin_patient_page(page, server, plan_item: bool = False):
    """Log in to the admin as clinic staff, open the patient's change page (or their clinic's first plan
    item's); what the page sends is recorded."""
    page.goto(f"{server.url}/admin/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.url}/admin/")
    if plan_item:
        page.goto(f"{server.url}/admin/treatment_plan/planitem/")
        page.click("#result_list tbody tr a >> nth=0")
    else:
        page.goto(f"{server.url}/admin/patients/patient/{server.patient}/change/")
    page.locator("#attachments .attachments-dropzone").wait_for(state="visible")  # revealed by the script
    page.evaluate(RECORD)
    return Traffic(page)


# A file input of the test's own (outside the panel), where Playwright puts files to drop; the states every
# transfer row goes through, and its bar's values, recorded.
RECORD = """() => {
    document.body.insertAdjacentHTML("beforeend", '<input type="file" id="picker" multiple hidden>');
    window.states = {};
    window.texts = {};
    window.bars = {};
    const list = document.querySelector("#attachments .attachments-transfers");
    const nameOf = (row) => row.querySelector(".attachments-transfer-name").textContent.split(" (")[0];
    new MutationObserver((records) => {
        for (const record of records) {
            const row = record.target.closest?.(".attachments-transfer");
            if (!row) continue;
            const name = nameOf(row);
            if (record.type === "attributes" && record.attributeName === "data-state") {
                (window.states[name] ||= []).push(row.dataset.state);
            }
            if (record.type === "attributes" && record.attributeName === "value") {
                (window.bars[name] ||= []).push(record.target.value);
            }
            if (record.type === "childList" && record.target.classList.contains("attachments-transfer-status")) {
                (window.texts[name] ||= []).push(record.target.textContent);
            }
        }
    }).observe(list, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state", "value"] });
    window.marker = "the same page";
}"""

# Drop the picker's files on `target` as a user would: dragenter, dragover, drop, with a DataTransfer.
DRAG = """([target, types]) => {
    const picker = document.getElementById("picker");
    const data = new DataTransfer();
    for (const file of picker.files) data.items.add(file);
    const at = document.querySelector(target);
    for (const type of types) {
        at.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
    }
}"""


def drop(page, path, target="#attachments .attachments-dropzone-hint", types=("dragenter", "dragover", "drop")):
    page.set_input_files("#picker", str(path))
    page.evaluate(DRAG, [target, list(types)])


def row(page, name: str):
    return page.locator("#attachments .attachments-transfer", has_text=name)


def distinct_collapsed(values: list) -> list:
    return [value for i, value in enumerate(values) if i == 0 or values[i - 1] != value]


def attachments(page, server) -> list[dict]:
    response = page.request.get(f"{server.url}/api/attachments/?owner_type=patient&owner_id={server.patient}")
    assert response.ok, response.text()
    return response.json()["results"]


def resume_records(page) -> list:
    return page.evaluate(
        """async () => {
            const { ResumeStore } = await import("/static/django_attachments/resume.js");
            return new ResumeStore().all();
        }"""
    )


def test_files_dropped_on_the_panel_or_picked_go_with_a_progress_bar_and_appear_in_it(page, server, tmp_path):
    path, checksum = random_file(tmp_path, "cbct-scan.bin", 12 * MiB)
    traffic = admin_patient_page(page, server)
    panel = page.locator("#attachments")
    shot(page, "admin-panel-dropzone.png", panel)
    assert not row(page, "").count()

    # A file dragged over the panel lights the zone up; dropped, it goes in three parts, the bar moving.
    throttle(page, 16 * MiB)
    drop(page, path, types=("dragenter", "dragover"))
    assert "attachments-dragover" in page.get_attribute("#attachments .attachments-dropzone", "class")
    shot(page, "admin-panel-dragover.png", panel)
    drop(page, path, types=("drop",))
    assert "attachments-dragover" not in page.get_attribute("#attachments .attachments-dropzone", "class")
    transfer = row(page, "cbct-scan.bin")
    page.wait_for_function(
        """() => {
            const row = document.querySelector("#attachments .attachments-transfer");
            return row.dataset.state === "sending" && row.querySelector("progress").value > 0.4;
        }"""
    )
    assert re.fullmatch(r"Sending \d+%", transfer.locator(".attachments-transfer-status").inner_text())
    assert transfer.locator("button", has_text="Cancel").is_visible()
    shot(page, "admin-panel-progress.png", panel)
    page.wait_for_function("document.querySelector('#attachments .attachments-transfer').dataset.state === 'done'")
    assert transfer.locator(".attachments-transfer-status").inner_text() == "Attached"
    assert transfer.locator("button").is_hidden()

    # The panel's list shows it, fetched again: the page was not left.
    listed = panel.locator("tr.attachment-row", has_text="cbct-scan.bin")
    listed.wait_for()
    assert "12.0" in listed.inner_text() and page.evaluate("window.marker") == "the same page"
    (attachment,) = [a for a in attachments(page, server) if a["filename"] == "cbct-scan.bin"]
    assert attachment["checksum"] == checksum and attachment["size"] == 12 * MiB
    assert sorted(number for _, number, _ in traffic.parts) == [1, 2, 3] and traffic.accepted() == {1, 2, 3}
    states = page.evaluate("window.states['cbct-scan.bin']")
    assert distinct_collapsed(states) == ["starting", "sending", "verifying", "done"], states
    bar = [value for value in page.evaluate("window.bars['cbct-scan.bin']") if value is not None]
    moving = [value for value in bar if 0 < value < 1]
    assert moving == sorted(moving) and len(set(moving)) >= 5, bar
    assert resume_records(page) == []
    shot(page, "admin-panel-done.png", panel)

    # A small file picked with the zone's "choose files", with a description in the form: sent through the
    # uploader at once (hashed first: a single PUT), not to the admin's own upload view.
    throttle(page, None)
    page.fill("#id_attachments_description", "Dropped in by the browser test")
    chooser = page.locator("#attachments .attachments-dropzone-choose input[type=file]")
    chooser.set_input_files(files=[{"name": "bitewing.png", "mimeType": "image/png", "buffer": PNG_BYTES}])
    page.wait_for_function(
        "document.querySelectorAll('#attachments .attachments-transfer[data-state=done]').length === 2"
    )
    assert chooser.input_value() == ""
    states = distinct_collapsed(page.evaluate("window.states['bitewing.png']"))
    assert states == ["hashing", "starting", "sending", "verifying", "done"], states
    listed = panel.locator("tr.attachment-row", has_text="bitewing.png")
    listed.wait_for()
    assert "Dropped in by the browser test" in listed.inner_text() and "image/png" in listed.inner_text()
    assert not [path for path in traffic.posts if "/attachments/upload/" in path]  # the admin's own form view
    assert page.evaluate("window.marker") == "the same page"
    assert chooser.get_attribute("name") is None  # never posted with the change form


def test_a_transfer_cancelled_half_way_cancels_its_ticket_and_attaches_nothing(page, server, tmp_path):
    path, _ = random_file(tmp_path, "cancelled-scan.bin", 12 * MiB)
    traffic = admin_patient_page(page, server)
    throttle(page, 4 * MiB)  # slowly enough to cancel it half-way
    drop(page, path)
    transfer = row(page, "cancelled-scan.bin")
    page.wait_for_function("document.querySelector('#attachments .attachments-transfer progress').value > 0.2")
    transfer.locator("button", has_text="Cancel").click()
    page.wait_for_function("document.querySelector('#attachments .attachments-transfer').dataset.state === 'cancelled'")
    assert transfer.locator(".attachments-transfer-status").inner_text() == "Cancelled: nothing was attached"
    assert transfer.locator("button").is_hidden() and transfer.locator("progress").is_hidden()
    (started,) = traffic.started
    ticket = page.request.get(f"{server.url}/api/attachments/uploads/{started['upload']['id']}/").json()
    assert (ticket["status"], ticket["error_code"]) == ("failed", "upload_cancelled")
    assert len(traffic.accepted()) < 3  # its three parts go at once: none, or some, arrived
    assert not [a for a in attachments(page, server) if a["filename"] == "cancelled-scan.bin"]
    assert page.locator("#attachments tr.attachment-row", has_text="cancelled-scan.bin").count() == 0
    assert resume_records(page) == []
    # Nothing more goes once cancelled.
    begun = traffic.part_requests
    page.wait_for_timeout(1000)
    assert traffic.part_requests == begun


def test_a_transfer_cut_off_by_a_reload_resumes_when_the_file_is_dropped_again(page, server, tmp_path):
    parts = 6
    path, checksum = random_file(tmp_path, "panoramic-series.bin", parts * PART_SIZE - 321)
    traffic = admin_patient_page(page, server)
    throttle(page, 8 * MiB)
    with page.expect_response(lambda r: r.request.method == "PUT" and PART_URL.search(r.url) and r.status == 204):
        drop(page, path)
    page.reload()  # half-way: parts on their way are lost, the ticket and the parts held stay
    (record,) = resume_records(page)
    # What the storage holds, as the server says (a part whose answer the reload cut off may be there too).
    page.wait_for_timeout(500)  # a part whose last bytes had gone is settled by then
    listing = page.request.get(f"{server.url}/api/attachments/uploads/{record['ticketId']}/parts/")
    held = {part["number"] for part in listing.json()["parts"]}
    assert traffic.accepted() <= held and 1 <= len(held) < parts, (held, traffic.parts)
    page.locator("#attachments .attachments-dropzone").wait_for(state="visible")
    page.evaluate(RECORD)
    throttle(page, None)
    traffic.parts.clear()
    traffic.started.clear()
    drop(page, path)
    transfer = row(page, "panoramic-series.bin")
    page.wait_for_function("document.querySelector('#attachments .attachments-transfer').dataset.state === 'done'")
    assert transfer.locator(".attachments-transfer-status").inner_text() == "Attached"
    # The row said it resumed while it ran; only the parts the storage lacked went, to the same ticket.
    texts = page.evaluate("window.texts['panoramic-series.bin']")
    assert "Starting… (resuming an earlier upload)" in texts, texts
    assert any(re.fullmatch(r"Sending \d+% \(resuming an earlier upload\)", text) for text in texts), texts
    assert traffic.started == []
    assert {ticket for ticket, _, _ in traffic.parts} == {record["ticketId"]}
    assert sorted(number for _, number, _ in traffic.parts) == sorted(set(range(1, parts + 1)) - held)
    (attachment,) = [a for a in attachments(page, server) if a["filename"] == "panoramic-series.bin"]
    assert attachment["checksum"] == checksum
    page.locator("#attachments tr.attachment-row", has_text="panoramic-series.bin").wait_for()


def test_a_refused_file_shows_the_servers_message_beside_one_attached(page, server, tmp_path):
    """Plan items take images and PDFs, in fixed slots: of two files dropped at once, the text is refused."""
    admin_patient_page(page, server, plan_item=True)
    before = page.locator("#attachments tr.attachment-row").count()
    page.select_option("#id_attachments_name", "after")
    page.set_input_files(
        "#picker",
        files=[
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"Notes, not an image.\n"},
            {"name": "after-photo.png", "mimeType": "image/png", "buffer": PNG_BYTES},
        ],
    )
    page.evaluate(DRAG, ["#attachments .attachments-dropzone-hint", ["dragenter", "dragover", "drop"]])
    refused, attached = row(page, "notes.txt"), row(page, "after-photo.png")
    page.locator("#attachments .attachments-transfer[data-state=error]").wait_for()
    page.locator("#attachments .attachments-transfer[data-state=done]").wait_for()
    status = refused.locator(".attachments-transfer-status").inner_text()
    assert status.startswith("Not attached: ") and "text/plain" in status, status
    assert refused.get_attribute("data-code") == "unsupported_file_type"
    assert refused.locator("button").is_hidden() and refused.locator("progress").is_hidden()
    assert attached.locator(".attachments-transfer-status").inner_text() == "Attached"
    listed = page.locator("#attachments tr.attachment-row", has_text="after-photo.png")
    listed.wait_for()
    assert "after" in listed.inner_text()  # the slot the form showed
    assert page.locator("#attachments tr.attachment-row").count() == before + 1
    shot(page, "admin-panel-refused.png", page.locator("#attachments"))


# -- The demo's direct upload page ------------------------------------------------------------------

RECORD_DEMO = """() => {
    window.stages = [];
    window.bar = [];
    const status = document.getElementById("status");
    new MutationObserver(() => window.stages.push(status.textContent)).observe(
        status, { childList: true, characterData: true, subtree: true });
    const progress = document.getElementById("progress");
    new MutationObserver(() => window.bar.push(progress.value)).observe(progress, { attributes: true });
}"""


def test_the_demo_page_sends_a_multipart_upload_with_its_progress_bar_and_cancels_one(page, server, tmp_path):
    path, checksum = random_file(tmp_path, "intraoral-video.bin", 12 * MiB)
    page.goto(f"{server.url}/api-auth/login/?next=/direct-upload/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("#submit-id-submit")
    page.wait_for_url(f"{server.url}/direct-upload/")
    traffic = Traffic(page)
    page.select_option("#owner", label=PATIENT)
    page.set_input_files("#file", str(path))
    page.evaluate(RECORD_DEMO)
    throttle(page, 16 * MiB)
    page.click("#direct-upload button[type=submit]")
    assert page.locator("#cancel").is_visible()
    page.locator("#status[data-state=done], #status[data-state=error]").wait_for(timeout=60_000)
    assert page.inner_text("#status") == "Uploaded and verified.", page.inner_text("#status")
    stages = distinct_collapsed([text.split()[0].rstrip(":") for text in page.evaluate("window.stages")])
    assert stages == ["Asking", "Uploading", "Verifying", "Uploaded"], stages
    assert any("in 3 parts straight to the storage" in text for text in page.evaluate("window.stages"))
    moving = [value for value in page.evaluate("window.bar") if 0 < value < 1]
    assert moving == sorted(moving) and len(set(moving)) >= 5, page.evaluate("window.bar")
    assert checksum in page.inner_text("#result") and page.locator("#cancel").is_hidden()
    assert traffic.accepted() == {1, 2, 3}
    (attachment,) = [a for a in attachments(page, server) if a["filename"] == "intraoral-video.bin"]
    assert attachment["checksum"] == checksum

    # Another, cancelled half-way: its ticket is cancelled, nothing attached.
    path, _ = random_file(tmp_path, "cancelled-video.bin", 12 * MiB)
    page.set_input_files("#file", str(path))
    throttle(page, 4 * MiB)
    traffic.started.clear()
    page.click("#direct-upload button[type=submit]")
    page.wait_for_function("document.getElementById('progress').value > 0.2")
    page.click("#cancel")
    page.locator("#status[data-state=cancelled]").wait_for()
    assert "nothing was attached" in page.inner_text("#status")
    (started,) = traffic.started
    ticket = page.request.get(f"{server.url}/api/attachments/uploads/{started['upload']['id']}/").json()
    assert (ticket["status"], ticket["error_code"]) == ("failed", "upload_cancelled")
    assert not [a for a in attachments(page, server) if a["filename"] == "cancelled-video.bin"]
