"""Thumbnails in a real browser: the example project's patient gallery, and the admin's lists and panel.

Headless Chromium driven by Playwright, as in tests/test_browser.py (never a
downloaded browser). The example project runs live, seeded by ``seed_demo``,
whose patient Ada has an intraoral photo (JPEG), a referral letter (PDF) and a
dental X-ray (DICOM), all drawn in code. Each thumbnail is checked as a person
would see it: the element's screenshot is decoded and must be a picture (not
blank, not one flat colour), look like what it shows (a red mouth, a white
page with a blue letterhead, a grey X-ray) and match the bytes the server
sent for it. The screenshots are kept under the test's tmp dir (their paths
are printed) and, on failure, in ``test-artifacts/``.

On workers (django-tasks-db's ``db_worker``), a thumbnail not made yet is a
202: the gallery's script waits out ``Retry-After`` and shows the image once
a worker has made it, without a reload.
"""

from __future__ import annotations

import io
import os

import pytest

from tests.live import example_server
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _require

pytestmark = pytest.mark.slow

USERNAME, PASSWORD = "north", "north-demo"  # staff of Northside Dental, from seed_demo
#: Ada's gallery files, from seed_demo: content type -> filename.
SAMPLES = {
    "image/jpeg": "intraoral-photo.jpg",
    "application/pdf": "referral-letter.pdf",
    "application/dicom": "xray-upper-left.dcm",
}
#: The least spread of grey levels (standard deviation, 0-255) a thumbnail's screenshot must have.
MIN_STDDEV = 12


@pytest.fixture
def browser_page(request):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _require(sync_playwright is not None, "playwright is not installed")
    _require(CHROMIUM is not None, "chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
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


def decode(data: bytes):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def spread(image) -> float:
    """The standard deviation of the picture's grey levels: 0 for a blank or flat image."""
    from PIL import ImageStat

    return ImageStat.Stat(image.convert("L")).stddev[0]


def difference(one, other) -> float:
    """The mean absolute difference of two pictures' pixels (0-255), both averaged down to 16 pixels wide.

    Averaged down, so that how the browser and Pillow each resample a sharp picture to the size shown (a
    48-pixel admin thumbnail of a 256-pixel one) does not count; another picture, or a blank, still does.
    """
    from PIL import Image, ImageChops, ImageStat

    size = (16, max(1, round(16 * one.height / one.width)))
    one, other = (picture.convert("RGB").resize(size, Image.Resampling.BOX) for picture in (one, other))
    return sum(ImageStat.Stat(ImageChops.difference(one, other)).mean) / 3


def log_in(page, server, path, username=USERNAME, password=PASSWORD):
    """Open ``path``: the demo's pages send an anonymous visitor to the API's login form, and back."""
    page.goto(f"{server.url}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("[type=submit]")
    page.wait_for_url(f"{server.url}{path}")


def saved(path) -> str:
    print(f"screenshot: {path}")  # shown with -s, and in the report of a failure
    return str(path)


def check_thumbnail(page, image, kind: str, shot_path) -> dict:
    """The <img> is a decoded picture, its screenshot is no blank, and matches the bytes the server sent."""
    natural = image.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight, img.src]")
    complete, width, height, src = natural
    assert complete and width > 0 and height > 0, (kind, natural)
    image.scroll_into_view_if_needed()
    shot = decode(image.screenshot(path=saved(shot_path)))
    assert spread(shot) > MIN_STDDEV, (kind, spread(shot))
    assert len(shot.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16, kind  # not a handful of flat colours
    # What the browser drew is the server's thumbnail: fetched again (no cache: no-store), compared pixel by pixel.
    sent = page.evaluate(
        "async url => { const r = await fetch(url); return [r.status, r.headers.get('Content-Type'),"
        " Array.from(new Uint8Array(await r.arrayBuffer()))]; }",
        src,
    )
    status, content_type, data = sent  # the gallery's <img> shows an object URL of the bytes it fetched
    assert status == 200 and content_type.startswith("image/"), (kind, status, content_type)
    picture = decode(bytes(data))
    assert picture.size == (width, height), (kind, picture.size, natural)
    assert difference(shot, picture) < 16, (kind, difference(shot, picture))
    return {"shot": shot, "picture": picture, "width": width, "height": height}


def test_the_patient_gallery_shows_a_real_thumbnail_of_the_photo_the_letter_and_the_xray(browser_page, tmp_path):
    page = browser_page
    with example_server(tmp_path / "server") as server:
        log_in(page, server, "/direct-upload/")
        # The gallery is linked from the demo's upload page.
        page.click("nav >> text=Ada Lovelace (N-0001)")
        page.wait_for_url(f"{server.url}/patients/*/gallery/")
        gallery = page.locator("#gallery")
        for content_type in SAMPLES:
            page.wait_for_selector(f'figure[data-content-type="{content_type}"][data-state=ready]')
        page.screenshot(path=saved(tmp_path / "gallery.png"), full_page=True)

        seen = {}
        for content_type, filename in SAMPLES.items():
            figure = gallery.locator(f'figure[data-content-type="{content_type}"]', has_text=filename)
            kind = content_type.split("/")[1]
            seen[kind] = check_thumbnail(page, figure.locator("img.thumb"), kind, tmp_path / f"gallery-{kind}.png")
            assert max(seen[kind]["width"], seen[kind]["height"]) == 256  # the example's thumb: fit 256x256

        # Each looks like what it shows. The photo: a red mouth. The letter: a white page under a blue
        # letterhead. The X-ray: grey, every pixel as red as it is green and blue.
        red, green, blue = seen["jpeg"]["picture"].resize((1, 1)).getpixel((0, 0))
        assert red > green + 40 and red > blue + 40, (red, green, blue)
        letter = seen["pdf"]["picture"]
        top = letter.crop((0, 0, letter.width, letter.height // 10)).resize((1, 1)).getpixel((0, 0))
        middle = letter.crop((0, letter.height // 2, letter.width, letter.height * 3 // 4)).resize((1, 1))
        assert top[2] > top[0] + 40, top  # blue
        assert min(middle.getpixel((0, 0))) > 200  # mostly white paper
        from PIL import ImageChops

        xray = seen["dicom"]["picture"]
        red, green, blue = xray.split()
        assert max(ImageChops.difference(a, b).getextrema()[1] for a, b in ((red, green), (green, blue))) <= 2
        assert spread(xray) > 25  # bone and teeth against the dark

        # A text-only tile says why there is no picture, and shows no broken image.
        for figure in gallery.locator("figure[data-state=none]").all():
            assert figure.locator("img").count() == 0 and figure.locator(".placeholder").inner_text().strip()

        # A click opens the X-ray's preview: the large variant, 512x384 (the X-ray's own size: never enlarged).
        gallery.locator('figure[data-content-type="application/dicom"] img.thumb').click()
        dialog = page.locator("dialog#preview")
        page.wait_for_selector("dialog#preview[data-state=ready]")
        big = dialog.locator("img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert big == [512, 384]
        assert dialog.locator(".message").is_hidden()  # the loading words go once the picture is there
        preview = decode(dialog.locator("img").screenshot(path=saved(tmp_path / "gallery-preview-dicom.png")))
        assert spread(preview) > 25
        page.screenshot(path=saved(tmp_path / "gallery-preview-open.png"))
        page.keyboard.press("Escape")
        assert not dialog.evaluate("d => d.open")

        # Another clinic's patient is not found, like one that does not exist.
        ada = page.url.rstrip("/").split("/")[-2]
        grace = page.goto(f"{server.url}/patients/{int(ada) + 2}/gallery/")
        nobody = page.goto(f"{server.url}/patients/99999/gallery/")
        assert grace.status == nobody.status == 404


def test_the_admin_lists_and_panel_show_the_thumbnails(browser_page, tmp_path):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 2400})  # every row in view: lazy images all load
    with example_server(tmp_path / "server") as server:
        page.goto(f"{server.url}/admin/login/")
        page.fill("#id_username", "admin")  # seed_demo's superuser: every clinic's files
        page.fill("#id_password", "admin")
        page.click("input[type=submit]")
        page.wait_for_url(f"{server.url}/admin/")

        for model in ("attachment", "blob"):
            page.goto(f"{server.url}/admin/django_attachments/{model}/")
            rows = page.locator("#result_list tbody tr")
            for filename in SAMPLES.values():
                row = rows.filter(has_text=filename)
                image = row.locator("img.attachments-thumbnail")
                image.evaluate("img => img.decode()")
                kind = filename.rsplit(".", 1)[1]
                check_thumbnail(page, image, kind, tmp_path / f"admin-{model}-{kind}.png")
                link = row.locator("a.attachments-preview")
                assert link.get_attribute("target") == "_blank"
                assert link.get_attribute("href").endswith("/variants/preview/")
            # Files of which no preview is made show words, never a broken image.
            for image in page.locator("img.attachments-thumbnail").all():
                image.scroll_into_view_if_needed()
                image.evaluate("img => img.decode()")
                assert image.evaluate("img => img.naturalWidth") > 0
            widths = page.evaluate(
                "() => { const r = document.querySelector('#changelist .results');"
                " return [r.scrollWidth, r.clientWidth, document.documentElement.scrollWidth]; }"
            )
            assert widths[0] <= widths[1] and widths[2] <= 1280, (model, widths)  # still fits 1280 px
            page.set_viewport_size({"width": 1280, "height": 900})
            page.screenshot(path=saved(tmp_path / f"admin-{model}-list.png"))
            page.set_viewport_size({"width": 1280, "height": 2400})

        # The preview opens in a new tab: the large JPEG of the X-ray.
        page.goto(f"{server.url}/admin/django_attachments/attachment/")
        row = page.locator("#result_list tbody tr").filter(has_text=SAMPLES["application/dicom"])
        with page.context.expect_page() as opened:
            row.locator("a.attachments-preview").click()
        tab = opened.value
        tab.wait_for_load_state()
        size = tab.evaluate(
            "() => { const img = document.querySelector('img'); return [img.naturalWidth, img.naturalHeight]; }"
        )
        assert size == [512, 384]
        tab.close()

        # The patient's change page: the panel's thumbnails.
        page.goto(f"{server.url}/admin/patients/patient/")
        page.click("#result_list tbody tr th a >> text=Ada Lovelace")
        panel = page.locator("#attachments")
        panel.wait_for()
        for filename in SAMPLES.values():
            image = panel.locator("tr.attachment-row", has_text=filename).locator("img.attachments-thumbnail")
            image.evaluate("img => img.decode()")
            check_thumbnail(page, image, filename, tmp_path / f"admin-panel-{filename}.png")
        page.set_viewport_size({"width": 1280, "height": 900})
        panel.scroll_into_view_if_needed()
        page.screenshot(path=saved(tmp_path / "admin-panel.png"))


def test_on_workers_the_gallery_waits_for_a_thumbnail_and_shows_it_once_made(browser_page, tmp_path):
    import django

    if django.VERSION < (5, 2):
        pytest.skip("django-tasks-db, the database backend with a real worker, needs Django 5.2+")
    pytest.importorskip("django_tasks_db", reason="django-tasks-db is not installed (the worker extra)")
    from tests.samples import encode, quadrants
    from tests.workers import Browser, worker_project

    page = browser_page
    database = "postgres" if os.environ.get("DJANGO_ATTACHMENTS_TEST_PG") else "sqlite"
    with worker_project(tmp_path / "project", database=database) as project, project.on_workers() as workers:
        server = workers.server  # enqueues on the database backend: nothing runs until a worker does
        api = Browser(server.url)
        api.log_in(USERNAME, PASSWORD)
        status, listed = api.json("GET", "/api/attachments/?page_size=100")
        assert status == 200
        ada = next(a for a in listed["results"] if a["filename"] == SAMPLES["image/jpeg"])["owner_id"]
        created = api.upload_api("patient", ada, "new-photo.jpg", encode(quadrants((600, 400)), "JPEG"))

        log_in(page, server, f"/patients/{ada}/gallery/")
        figure = page.locator("#gallery figure", has_text="new-photo.jpg")
        page.wait_for_selector(f'figure[data-attachment-id="{created["id"]}"][data-state=waiting]')
        assert figure.locator("img").count() == 0
        assert "being made" in figure.inner_text()
        page.screenshot(path=saved(tmp_path / "gallery-waiting.png"), full_page=True)

        workers.start_worker("w1")
        page.wait_for_selector(f'figure[data-attachment-id="{created["id"]}"][data-state=ready]', timeout=120_000)
        shot = check_thumbnail(page, figure.locator("img.thumb"), "worker", tmp_path / "gallery-worker-made.png")
        assert (shot["width"], shot["height"]) == (256, 171)
