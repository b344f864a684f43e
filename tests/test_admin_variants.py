"""Thumbnails in the admin: the blob and attachment lists' column, the panel's, and the view they come from.

Real renderers (Pillow, PDFium) on a real disk store, on the Tasks framework's
immediate backend unless a test names the dummy one (a worker that never
runs). Files go through the services; the pipeline runs when their
transaction "commits" (``django_capture_on_commit_callbacks(execute=True)``),
making the eager ``thumb``; the lazy ``preview`` is made on its first request.
Clinic staff see their clinic's files only (``TENANT_RESOLVER``).
"""

from __future__ import annotations

import io
import re
import uuid
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_attachments import services
from django_attachments.admin import AttachmentAdmin
from django_attachments.admin.thumbnails import choose
from django_attachments.models import Blob, RenderState, ScanState, Variant, VariantRender
from django_attachments.registry import OwnerSpec, attachment_registry
from tests.apitools import body
from tests.test_processing import pdf_bytes
from tests.testapp.owners import resolve_note

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tenant_resolver")]

THUMB = {"operation": "fit", "width": 64, "height": 64, "format": "webp", "eager": True}
PREVIEW = {"operation": "fit", "width": 160, "height": 160, "format": "jpeg"}
DUMMY_TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
BLOBS = reverse("admin:django_attachments_blob_changelist")
ATTACHMENTS = reverse("admin:django_attachments_attachment_changelist")
VIEW = ("view_blob", "view_attachment", "view_note", "view_patient")


def jpeg_bytes(width=320, height=200) -> bytes:
    """A photo-like JPEG: a gradient with a disc, so that each one differs and its thumbnail is no flat colour."""
    from PIL import Image, ImageDraw

    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, width // 2, height // 2), fill=(200, 40, 40))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def decode(data: bytes):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def login(username, clinic, perms=VIEW):
    from tests.testapp.models import Staff

    user = get_user_model().objects.create_user(username, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    Staff.objects.create(user=user, clinic=clinic)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def declared(settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {"thumb": THUMB, "preview": PREVIEW}}


@pytest.fixture
def anna(owners):
    return login("anna", owners.clinic_a)


@pytest.fixture
def ben(owners):
    return login("ben", owners.clinic_b)


@pytest.fixture
def attach(disk_store, declared, django_capture_on_commit_callbacks):
    def attach(data, owner_type, owner, filename):
        with django_capture_on_commit_callbacks(execute=True):
            return services.attach(io.BytesIO(data), owner_type=owner_type, owner_id=owner.pk, filename=filename)

    return attach


@pytest.fixture
def files(owners, attach):
    class Files:
        photo = attach(jpeg_bytes(), "note", owners.alice_note, "photo.jpg")
        letter = attach(pdf_bytes(pages=1), "patient", owners.alice, "letter.pdf")
        words = attach(b"some words\n" * 50, "note", owners.alice_note, "words.txt")
        # A JPEG cut short after its header: sniffed as JPEG, refused by the renderer (the eager thumb fails).
        cut = attach(jpeg_bytes(800, 600)[:700], "note", owners.alice_note2, "cut.jpg")
        bobs = attach(jpeg_bytes(300, 300), "note", owners.bob_note, "bob.jpg")

    return Files


def cells(response) -> dict[str, str]:
    """The list's thumbnail cells by the row's filename (the blob's, or the attachment's)."""
    assert response.status_code == 200
    html = response.content.decode()
    found = re.findall(r'<td class="field-thumbnail">(.*?)</td>', html, re.S)
    rows = response.context["cl"].result_list
    assert len(found) == len(rows)
    return {getattr(row, "filename", "") or row.blob.filename: cell for row, cell in zip(rows, found, strict=True)}


def img(cell: str) -> dict[str, str]:
    """The thumbnail's <img> attributes and its link's href; {} when the cell has no image."""
    tag = re.search(r"<img ([^>]*)>", cell)
    if tag is None:
        return {}
    attributes = {name: unescape(value) for name, value in re.findall(r'([a-z-]+)="([^"]*)"', tag.group(1))}
    attributes["href"] = unescape(re.search(r'<a [^>]*href="([^"]+)"', cell).group(1))
    return attributes


def variant_path(model: str, obj, name: str) -> str:
    return reverse(f"admin:django_attachments_{model}_variant", args=[obj.pk, name])


def panel_variant_path(note, attachment, name: str) -> str:
    return reverse("admin:testapp_note_attachments_variant", args=[note.pk, attachment.pk, name])


# -- shown ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [BLOBS, ATTACHMENTS])
def test_the_lists_show_each_files_thumbnail_linked_to_its_preview(anna, files, page):
    shown = cells(anna.get(page))
    assert set(shown) == {"photo.jpg", "letter.pdf", "words.txt", "cut.jpg"}  # not Bob's: another clinic's
    if page == BLOBS:  # the blob list's download link sits under the thumbnail
        blob = files.photo.blob
        assert reverse("admin:django_attachments_blob_download", args=[blob.pk]) in shown["photo.jpg"]
    # The photo is 320x200; the letter an A4 page (595x842 points), drawn into the box.
    for filename, box in (("photo.jpg", 64), ("letter.pdf", 64)):
        blob = Blob.objects.get(filename=filename)
        made = Variant.objects.get(blob=blob, name="thumb")  # by the pipeline: eager
        size = (made.width, made.height)
        assert max(size) == box and (size == (64, 40) if filename == "photo.jpg" else size[0] in (45, 46))
        thumb = img(shown[filename])
        assert thumb["src"].endswith("/variants/thumb/") and thumb["href"].endswith("/variants/preview/")
        assert thumb["alt"] == f"Thumbnail of {filename}"
        # Its size is on the tag, shrunk to the list's 48 px box, so that the row does not move as it loads.
        scale = 48 / max(size)
        assert (int(thumb["width"]), int(thumb["height"])) == (round(size[0] * scale), round(size[1] * scale))

        response = anna.get(thumb["src"])
        assert response.status_code == 200
        assert response["Content-Type"] == "image/webp"
        assert response["Content-Disposition"].startswith("inline;")
        assert response["X-Content-Type-Options"] == "nosniff"
        picture = decode(body(response))
        assert (picture.format, picture.size) == ("WEBP", size)

        # The preview is lazy: made on this first request (the immediate backend is the worker).
        assert not Variant.objects.filter(blob=blob, name="preview").exists()
        preview = anna.get(thumb["href"])
        assert preview.status_code == 200 and preview["Content-Type"] == "image/jpeg"
        larger = Variant.objects.get(blob=blob, name="preview")
        assert decode(body(preview)).size == (larger.width, larger.height)
        assert max(larger.width, larger.height) == 160


def test_the_thumbnail_is_the_rendered_picture(anna, files):
    """Not a flat image: the photo's gradient and disc are in it."""
    thumb = img(cells(anna.get(ATTACHMENTS))["photo.jpg"])
    picture = decode(body(anna.get(thumb["src"]))).convert("L")
    low, high = picture.getextrema()
    assert high - low > 100


def test_the_panel_shows_the_owners_thumbnails(anna, owners, files):
    response = anna.get(reverse("admin:testapp_note_change", args=[owners.alice_note.pk]))
    html = response.content.decode()
    panel_cells = re.findall(r'<td class="attachment-thumbnail">(.*?)</td>', html, re.S)
    assert len(panel_cells) == 2  # photo.jpg and words.txt: the note's own files
    photo = next(img(cell) for cell in panel_cells if img(cell))
    assert photo["src"] == panel_variant_path(owners.alice_note, files.photo, "thumb")
    assert photo["href"] == panel_variant_path(owners.alice_note, files.photo, "preview")
    assert (photo["width"], photo["height"]) == ("64", "40")  # under the panel's 96 px box: as made
    served = anna.get(photo["src"])
    assert served.status_code == 200 and decode(body(served)).size == (64, 40)
    (words,) = (cell for cell in panel_cells if not img(cell))
    assert "\u2014" in words  # no renderer reads text


# -- tenants -----------------------------------------------------------------------------------------


def test_another_clinics_thumbnails_are_not_found_exactly_like_missing_ones(anna, ben, owners, files):
    bobs_blob = Blob.objects.get(pk=files.bobs.blob_id)
    assert "bob.jpg" in cells(ben.get(BLOBS)) and "photo.jpg" not in cells(ben.get(BLOBS))
    missing_blob = Blob(pk=uuid.uuid4())

    class Missing:
        pk = uuid.uuid4()

    pairs = [
        (variant_path("blob", files.photo.blob, "preview"), variant_path("blob", missing_blob, "preview")),
        (variant_path("attachment", files.photo, "preview"), variant_path("attachment", Missing, "preview")),
        (
            panel_variant_path(owners.alice_note, files.photo, "preview"),
            panel_variant_path(owners.alice_note, Missing, "preview"),
        ),
        (variant_path("blob", files.photo.blob, "nonsense"), variant_path("blob", missing_blob, "nonsense")),
        (
            reverse("admin:django_attachments_attachment_variant", args=["x", "thumb"]),
            variant_path("attachment", Missing, "thumb"),
        ),
    ]
    for theirs, nothing in pairs:
        refused, missing = ben.get(theirs), ben.get(nothing)
        assert refused.status_code == missing.status_code == 404, theirs
        assert refused.content == missing.content
        assert refused["Content-Type"] == missing["Content-Type"]
    # Nothing was asked of the renderer on their behalf: the lazy preview is neither made nor claimed.
    assert not Variant.objects.filter(blob_id=files.photo.blob_id, name="preview").exists()
    assert not VariantRender.objects.filter(blob_id=files.photo.blob_id).exists()
    # Their own, and the owner's clinic's, are served.
    assert ben.get(variant_path("blob", bobs_blob, "thumb")).status_code == 200
    assert anna.get(variant_path("attachment", files.photo, "preview")).status_code == 200


def test_cross_tenant_staff_see_every_clinics_thumbnails(settings, files, admin_client):
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "ADMIN_CROSS_TENANT": "django_attachments.policy.is_superuser",
    }
    shown = cells(admin_client.get(ATTACHMENTS))
    assert {"photo.jpg", "bob.jpg"} <= set(shown)
    assert admin_client.get(img(shown["bob.jpg"])["src"]).status_code == 200


def test_without_the_view_permission_the_thumbnail_is_refused(owners, files):
    nobody = login("nina", owners.clinic_a, perms=("view_note",))
    assert nobody.get(variant_path("attachment", files.photo, "thumb")).status_code == 403


# -- no preview ---------------------------------------------------------------------------------------


def test_files_without_a_preview_show_words_not_a_broken_image(anna, owners, files, attach):
    pending = attach(jpeg_bytes(100, 100), "note", owners.alice_note2, "pending.jpg")
    infected = attach(jpeg_bytes(120, 100), "note", owners.alice_note2, "infected.jpg")
    Blob.objects.filter(pk=pending.blob_id).update(scan_state=ScanState.PENDING)
    Blob.objects.filter(pk=infected.blob_id).update(scan_state=ScanState.INFECTED, scan_signature="Eicar-Test")
    render = VariantRender.objects.get(blob_id=files.cut.blob_id, name="thumb")
    assert render.state == RenderState.FAILED  # the pipeline tried the eager thumb, and the renderer refused

    shown = cells(anna.get(ATTACHMENTS))
    words = {
        "words.txt": "\u2014",  # no renderer reads text
        "cut.jpg": "no preview",
        "pending.jpg": "awaiting scan",
        "infected.jpg": "quarantined",
    }
    for filename, text in words.items():
        assert img(shown[filename]) == {} and "<img" not in shown[filename], filename
        assert re.sub(r"<[^>]+>", "", shown[filename]).strip() == text, shown[filename]
    assert "text/plain" in shown["words.txt"]  # its tooltip says why
    assert unescape(render.error) in unescape(shown["cut.jpg"])

    # Asked anyway (an old page, a race): a placeholder image with the status, never a broken one.
    for attachment, status in ((files.cut, 404), (pending, 409), (infected, 409)):
        response = anna.get(variant_path("attachment", attachment, "thumb"))
        assert (response.status_code, response["Content-Type"]) == (status, "image/svg+xml")
        assert response.content.startswith(b"<svg") and "no-store" in response["Cache-Control"]
    # A name not declared is a plain 404 page.
    unknown = anna.get(variant_path("attachment", files.photo, "poster"))
    assert unknown.status_code == 404 and unknown["Content-Type"].startswith("text/html")


def test_with_no_variant_declared_the_column_is_a_dash_and_the_panel_has_none(settings, anna, owners, disk_store):
    services.attach(io.BytesIO(jpeg_bytes()), owner_type="note", owner_id=owners.alice_note.pk, filename="p.jpg")
    assert re.sub(r"<[^>]+>", "", cells(anna.get(ATTACHMENTS))["p.jpg"]).strip() == "\u2014"
    page = anna.get(reverse("admin:testapp_note_change", args=[owners.alice_note.pk])).content.decode()
    assert "attachment-row" in page and '<td class="attachment-thumbnail">' not in page


# -- on workers -----------------------------------------------------------------------------------------


def test_on_workers_a_thumbnail_not_made_yet_is_a_placeholder_and_a_queued_task(settings, anna, files):
    settings.TASKS = DUMMY_TASKS
    from django_attachments import tasks

    backend = tasks.make_variant.using(backend="default").get_backend()
    backend.clear()
    preview = img(cells(anna.get(ATTACHMENTS))["photo.jpg"])["href"]
    first, second = anna.get(preview), anna.get(preview)
    for response in (first, second):
        assert (response.status_code, response["Content-Type"]) == (202, "image/svg+xml")
        assert response["Retry-After"] == "1" and "no-store" in response["Cache-Control"]
        assert b"being made" in response.content
    queued = [result for result in backend.results if result.task.func is tasks.make_variant.func]
    assert len(queued) == 1  # one request claimed it; the other found the claim
    assert VariantRender.objects.get(blob_id=files.photo.blob_id, name="preview").state == RenderState.QUEUED

    assert tasks.make_variant.call(*queued[0].args, **queued[0].kwargs)["state"] == "made"
    made = anna.get(preview)
    assert made.status_code == 200 and decode(body(made)).size == (160, 100)


def test_a_variant_that_could_not_be_made_now_is_a_placeholder_with_the_wait(settings, anna, files):
    """The task backend refuses the task: nobody would make it, so 503 with Retry-After, not 202."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": ["elsewhere"]}}
    preview = img(cells(anna.get(ATTACHMENTS))["photo.jpg"])["href"]
    response = anna.get(preview)
    assert (response.status_code, response["Content-Type"]) == (503, "image/svg+xml")
    assert int(response["Retry-After"]) >= 1 and b"unavailable" in response.content


# -- which variants ----------------------------------------------------------------------------------------


def test_the_smallest_variant_is_the_thumbnail_and_the_largest_the_preview(settings, declared):
    assert choose(None) == choose("note") == choose("nobody registers this")
    assert (choose(None).thumbnail, choose(None).preview) == ("thumb", "preview")
    assert choose(None, thumbnail="preview").thumbnail == "preview"
    assert choose(None, thumbnail="poster") is None
    assert choose(None, preview="poster").preview == "thumb"
    spec = OwnerSpec(owner_type="note", resolver=resolve_note, variants={"preview": None})
    with attachment_registry.override(spec):
        only = choose("note")
        assert (only.thumbnail, only.preview) == ("thumb", "thumb")  # no larger one: the link opens the thumbnail
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "VARIANTS": {}}
    assert choose(None) is None


def test_a_modeladmin_names_its_thumbnail_variant(monkeypatch, anna, files):
    monkeypatch.setattr(AttachmentAdmin, "thumbnail_variant", "preview")
    monkeypatch.setattr(AttachmentAdmin, "preview_variant", "thumb")
    photo = img(cells(anna.get(ATTACHMENTS))["photo.jpg"])
    assert photo["src"].endswith("/variants/preview/") and photo["href"].endswith("/variants/thumb/")
    assert decode(body(anna.get(photo["src"]))).size == (160, 100)


# -- queries ------------------------------------------------------------------------------------------------


def test_a_page_of_many_thumbnails_takes_as_many_queries_as_a_page_of_few(anna, owners, attach):
    for number in range(2):
        attach(jpeg_bytes(200 + number, 100), "note", owners.alice_note, f"first-{number}.jpg")

    def queries(page):
        with CaptureQueriesContext(connection) as captured:
            response = anna.get(page)
        assert response.status_code == 200
        return len(captured), len(re.findall(r'class="attachments-thumbnail"', response.content.decode()))

    note_page = reverse("admin:testapp_note_change", args=[owners.alice_note.pk])
    few = {page: queries(page) for page in (BLOBS, ATTACHMENTS, note_page)}
    for number in range(10):
        attach(jpeg_bytes(300 + number, 100), "note", owners.alice_note, f"more-{number}.jpg")
    # Some made, some refused, some not yet asked for: each kind of row reads only what was prefetched.
    VariantRender.objects.create(
        blob_id=Blob.objects.get(filename="more-0.jpg").pk, digest="0" * 64, name="x", state=RenderState.FAILED
    )
    Variant.objects.filter(blob__filename__in=["more-1.jpg", "more-2.jpg"]).delete()
    many = {page: queries(page) for page in (BLOBS, ATTACHMENTS, note_page)}
    for page in few:
        assert few[page][1] == 2 and many[page][1] == 12, page
        assert many[page][0] == few[page][0], page
