"""The example project as ``make demo`` leaves it: seed_demo's data, its printed commands, its apps.

The project runs live (:func:`tests.live.example_server`: migrated, seeded,
served on a free port), and is asked through its API as a reader of the
README would, with the ``curl`` command ``seed_demo`` prints.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.live import Server, example_server
from tests.workers import Browser

USERNAME, PASSWORD = "north", "north-demo"  # staff of Northside Dental, from seed_demo
AUTH = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
EXAMPLE_APPS = ("clinics", "patients", "treatment_plan", "clinical_notes", "demo")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    with example_server(tmp_path_factory.mktemp("example")) as running:
        yield running


def get(server: Server, path: str) -> dict:
    request = urllib.request.Request(server.url + path, headers={"Authorization": AUTH, "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def seed(server: Server) -> str:
    done = server.manage("seed_demo", "--base-url", server.url)
    assert done.returncode == 0, done.stderr
    return done.stdout


def all_attachments(server: Server) -> list[dict]:
    return get(server, "/api/attachments/?page_size=100")["results"]


def test_two_apps_own_files_of_one_patient_and_share_one_blob(server):
    attachments = all_attachments(server)
    notes = [a for a in attachments if a["owner_type"] == "clinical_note"]
    items = [a for a in attachments if a["owner_type"] == "plan_item"]
    assert {a["name"] for a in notes} == {"photo", "xray"}
    # The plan item's X-ray, linked to the note with services.link: the same blob, a link from each app.
    (linked,) = (a for a in notes if a["name"] == "xray")
    assert any(a["blob_id"] == linked["blob_id"] for a in items)


def test_seed_demo_is_idempotent(server):
    before = sorted(a["id"] for a in all_attachments(server))
    output = seed(server)
    assert "Linked" not in output and "Attached" not in output and "Created" not in output
    assert sorted(a["id"] for a in all_attachments(server)) == before


def test_the_printed_api_root_lists_the_endpoints(server):
    assert f"API:      {server.url}/api/" in seed(server)
    assert get(server, "/api/") == {
        "attachments": f"{server.url}/api/attachments/",
        "uploads": f"{server.url}/api/attachments/uploads/",
    }


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_printed_upload_command_uploads_a_png(server, tmp_path):
    (line,) = (line for line in seed(server).splitlines() if " -F file=@" in line)
    command = shlex.split(line.strip())
    assert command[0] == "curl"
    sample = Path(next(arg for arg in command if arg.startswith("file=@")).removeprefix("file=@"))
    assert sample.is_absolute() and sample.is_file()
    # Run as printed, from another directory than the server's, as a reader's shell would.
    done = subprocess.run(
        [*command, "-sS", "-w", "\n%{http_code}"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    body, status = done.stdout.rsplit("\n", 1)
    assert (done.returncode, status) == (0, "201"), done.stderr + done.stdout
    created = json.loads(body)
    assert (created["owner_type"], created["filename"], created["content_type"]) == (
        "patient",
        sample.name,
        "image/png",
    )


def test_every_example_app_names_itself_for_the_admin(server):
    # Set on each AppConfig: Django's default is the label title-cased, "TREATMENT_PLAN" in the admin.
    script = (
        "import json; from django.apps import apps; "
        "print(json.dumps({label: vars(type(apps.get_app_config(label))).get('verbose_name') "
        f"for label in {EXAMPLE_APPS!r}}}))"
    )
    done = server.manage("shell", "-c", script)
    assert done.returncode == 0, done.stderr
    names = json.loads(done.stdout.strip().splitlines()[-1])
    assert names == {
        "clinics": "Clinics",
        "patients": "Patients",
        "treatment_plan": "Treatment plans",
        "clinical_notes": "Clinical notes",
        "demo": "Demo",
    }


def test_seeded_files_are_analyzed_inline_and_their_metadata_shows_in_the_api_and_admin(server):
    # The example's Tasks backend is the immediate one: seed_demo's files were analyzed as it stored them,
    # with no worker. No CLAMD_SOCKET, no scanner: not scanned, and served.
    attachments = all_attachments(server)
    assert {a["content_type"] for a in attachments} == {
        "image/png",
        "image/jpeg",
        "application/pdf",
        "application/dicom",
    }
    for attachment in attachments:
        assert (attachment["scan"], attachment["analysis"]) == ("not_scanned", "analyzed"), attachment
        metadata = attachment["metadata"]
        if attachment["content_type"] == "image/png":
            assert (metadata["image.width"], metadata["image.height"], metadata["image.format"]) == (8, 8, "PNG")
        elif attachment["content_type"] == "image/jpeg":  # the gallery's intraoral photo
            assert (metadata["image.width"], metadata["image.height"], metadata["image.format"]) == (640, 420, "JPEG")
        elif attachment["content_type"] == "application/dicom":  # the gallery's X-ray
            assert (metadata["dicom.modality"], metadata["dicom.columns"], metadata["dicom.rows"]) == ("IO", 512, 384)
            assert (metadata["dicom.bits_stored"], metadata["dicom.photometric_interpretation"]) == (12, "MONOCHROME2")
        else:
            assert (metadata["pdf.pages"], metadata["pdf.version"]) == (1, "1.4"), attachment

    browser = Browser(server.url)
    browser.log_in("admin", "admin")  # seed_demo's superuser
    (photo,) = (a for a in attachments if a["filename"] == "intraoral.png")
    status, _, page = browser.request("GET", f"/admin/django_attachments/blob/{photo['blob_id']}/change/")
    assert status == 200
    assert b"image.width" in page and b"image.format" in page, page.decode(errors="replace")[-3000:]


def test_the_gallerys_samples_have_their_thumbnails_made_as_they_are_seeded(server):
    """The example's thumb is eager: the pipeline made it of the photo, the letter and the X-ray, with no worker."""
    gallery = {a["filename"]: a for a in all_attachments(server) if a["owner_type"] == "patient"}
    for filename in ("intraoral-photo.jpg", "referral-letter.pdf", "xray-upper-left.dcm"):
        variants = gallery[filename]["variants"]
        assert variants["thumb"]["ready"] is True, gallery[filename]
        assert max(variants["thumb"]["width"], variants["thumb"]["height"]) == 256
        assert variants["preview"]["ready"] is False  # lazy: made on its first request
    assert (
        gallery["xray-upper-left.dcm"]["variants"]["thumb"]["width"],
        gallery["xray-upper-left.dcm"]["variants"]["thumb"]["height"],
    ) == (256, 192)

    # The page is the clinic's staff's: the demo's login first; another clinic's patient is not found.
    (ada,) = {a["owner_id"] for a in gallery.values() if a["filename"] == "intraoral-photo.jpg"}
    path = f"/patients/{ada}/gallery/"
    assert f"Gallery:  {server.url}{path}" in seed(server)
    anonymous = Browser(server.url)
    status, headers, _ = anonymous.request("GET", path)
    assert status == 302 and headers["location"].startswith("/api-auth/login/")
    north, harbour = Browser(server.url), Browser(server.url)
    north.log_in("north", "north-demo")
    harbour.log_in("harbour", "harbour-demo")
    status, _, page = north.request("GET", path)
    assert status == 200 and b'id="gallery"' in page and b"demo/gallery.js" in page
    status, _, upload_page = north.request("GET", "/direct-upload/")
    assert status == 200 and path.encode() in upload_page  # linked from the demo's upload page
    assert harbour.request("GET", path)[0] == harbour.request("GET", "/patients/999999/gallery/")[0] == 404


def test_seed_demo_skips_the_samples_whose_libraries_are_missing(server):
    """Without pydicom the X-ray is skipped, with a note; without pypdfium2 the letter has no thumbnail, noted."""
    script = (
        "import sys; sys.modules.update(pydicom=None, pypdfium2=None); "
        "from django.core.management import call_command; call_command('seed_demo')"
    )
    done = server.manage("shell", "-c", script)
    assert done.returncode == 0, done.stderr
    assert "Skipped xray-upper-left.dcm: the X-ray needs pydicom and NumPy" in done.stdout
    assert "Note: referral-letter.pdf has no thumbnail here: PDF previews need pypdfium2." in done.stdout
    assert "Attached" not in done.stdout and "Traceback" not in done.stderr
