"""The attachments panel on a consumer's change page: list, upload, download, unlink."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from django_attachments import services
from django_attachments.models import Attachment, Blob

pytestmark = pytest.mark.django_db


def change_url(note):
    return reverse("admin:testapp_note_change", args=[note.pk])


def panel_url(note, action, attachment=None):
    args = [note.pk] + ([attachment.pk] if attachment else [])
    return reverse(f"admin:testapp_note_attachments_{action}", args=args)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_change_page_lists_the_owners_attachments(admin_client, owners, store, png, pdf):
    services.attach(SimpleUploadedFile("scan.png", png), owner_type="note", owner_id=owners.alice_note.pk, name="xray")
    services.attach(pdf, owner_type="note", owner_id=owners.alice_note2.pk)  # another owner's
    response = admin_client.get(change_url(owners.alice_note))
    assert response.status_code == 200
    panel = response.context["attachments_panel"]
    assert [row["attachment"].blob.filename for row in panel["rows"]] == ["scan.png"]
    html = response.content.decode()
    assert 'id="attachments"' in html and "scan.png" in html and "image/png" in html
    assert 'enctype="multipart/form-data"' in html
    # The owner type's slots are offered as choices.
    assert set(dict(panel["form"].fields["name"].choices)) == {"", "before", "after", "xray"}


def test_upload_download_unlink(admin_client, owners, store, png):
    note = owners.alice_note
    response = admin_client.post(
        panel_url(note, "upload"),
        {"file": SimpleUploadedFile("before.png", png), "name": "before", "description": "pre-op"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == change_url(note) + "#attachments"
    assert messages_of(response) == ["Attached before.png."]
    attachment = Attachment.objects.get()
    assert (attachment.owner_id, attachment.name, attachment.description) == (str(note.pk), "before", "pre-op")
    assert attachment.created_by.username == "admin"

    download = admin_client.get(panel_url(note, "download", attachment))
    assert download.status_code == 200 and b"".join(download.streaming_content) == png
    assert download["Content-Disposition"].startswith("attachment")

    unlinked = admin_client.post(panel_url(note, "unlink", attachment), follow=True)
    assert messages_of(unlinked) == ["Unlinked before.png."]
    assert not Attachment.objects.exists() and Blob.objects.orphans().count() == 1


def test_a_dedup_hit_is_announced_under_the_name_it_was_uploaded_under(admin_client, owners, store, pdf):
    services.attach(SimpleUploadedFile("referral.pdf", pdf), owner_type="note", owner_id=owners.alice_note2.pk)
    response = admin_client.post(
        panel_url(owners.alice_note, "upload"), {"file": SimpleUploadedFile("lab-report.pdf", pdf)}, follow=True
    )
    assert messages_of(response) == ["Attached lab-report.pdf."]
    assert "lab-report.pdf" in response.content.decode() and Blob.objects.get().filename == "referral.pdf"


def test_upload_refusals_are_messages_not_errors(admin_client, owners, store, settings, pdf):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOWED_CONTENT_TYPES": ["image/*"]}
    response = admin_client.post(
        panel_url(owners.alice_note, "upload"), {"file": SimpleUploadedFile("x.png", pdf), "name": ""}, follow=True
    )
    assert "x.png was not attached" in messages_of(response)[0] and "application/pdf" in messages_of(response)[0]
    response = admin_client.post(panel_url(owners.alice_note, "upload"), {"name": "xray"}, follow=True)
    assert messages_of(response)[0].startswith("File:")
    assert not Attachment.objects.exists()


def test_other_owners_attachments_are_out_of_reach(admin_client, owners, store, pdf):
    theirs = services.attach(pdf, owner_type="note", owner_id=owners.alice_note2.pk)
    assert admin_client.get(panel_url(owners.alice_note, "download", theirs)).status_code == 404
    assert admin_client.post(panel_url(owners.alice_note, "unlink", theirs)).status_code == 404
    assert Attachment.objects.filter(pk=theirs.pk).exists()


def test_view_only_staff_can_download_but_not_change(owners, store, png):
    attachment = services.attach(png, owner_type="note", owner_id=owners.alice_note.pk, name="xray")
    user = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_note"))
    client = Client()
    client.force_login(user)
    page = client.get(change_url(owners.alice_note))
    assert page.status_code == 200
    assert page.context["attachments_panel"]["form"] is None and b"attachment-unlink" not in page.content
    assert client.get(panel_url(owners.alice_note, "download", attachment)).status_code == 200
    assert client.post(panel_url(owners.alice_note, "unlink", attachment)).status_code == 403
    upload = client.post(panel_url(owners.alice_note, "upload"), {"file": SimpleUploadedFile("a.png", png)})
    assert upload.status_code == 403
    assert Attachment.objects.count() == 1


def test_get_on_actions_is_refused(admin_client, owners):
    assert admin_client.get(panel_url(owners.alice_note, "upload")).status_code == 405


def test_blob_admin_download_link(admin_client, owners, store, pdf):
    blob = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk).blob
    listing = admin_client.get(reverse("admin:django_attachments_blob_changelist"))
    url = reverse("admin:django_attachments_blob_download", args=[blob.pk])
    assert url in listing.content.decode()
    response = admin_client.get(url)
    assert b"".join(response.streaming_content) == pdf
    store.delete(blob.storage_identifiers)
    assert admin_client.get(url).status_code == 503


class _Forms(HTMLParser):
    """The page's forms: each one's id, and the ids of the elements inside it; nesting noted."""

    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.nested = False
        self.inside: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.nested = self.nested or bool(self.open)
            self.open.append(attrs.get("id") or "")
            self.inside.setdefault(self.open[-1], [])
        elif self.open and "id" in attrs:
            self.inside[self.open[-1]].append(attrs["id"])

    def handle_endtag(self, tag):
        if tag == "form" and self.open:
            self.open.pop()


def test_the_panel_is_in_the_change_form_above_its_submit_row_with_forms_of_its_own(admin_client, owners, store, png):
    services.attach(SimpleUploadedFile("scan.png", png), owner_type="note", owner_id=owners.alice_note.pk, name="xray")
    html = admin_client.get(change_url(owners.alice_note)).content.decode()
    forms = _Forms()
    forms.feed(html)
    assert not forms.nested
    assert "attachments" in forms.inside["note_form"]  # in the change form's flow...
    assert html.index('id="attachments"') < html.rindex('class="submit-row"')  # ...above its Save row
    # Its controls name its own forms, which hold nothing but the CSRF token and stand after the change form.
    assert forms.inside["attachments-upload"] == [] and forms.inside["attachments-unlink"] == []
    assert html.index('id="note_form"') < html.index('<form id="attachments-upload"')
    assert html.count('form="attachments-upload"') == 4  # file, slot, description, Upload
    assert html.count('form="attachments-unlink"') == 1
    # Its fields' ids do not clash with the owner's form's.
    assert 'id="id_attachments_description"' in html and 'id="id_description"' not in html


def test_the_panels_messages_are_shown_in_it_as_uploaded(admin_client, owners, store, settings, pdf):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOWED_CONTENT_TYPES": ["image/*"]}
    response = admin_client.post(
        panel_url(owners.alice_note, "upload"), {"file": SimpleUploadedFile("notes.pdf", pdf)}, follow=True
    )
    html = response.content.decode()
    panel = html[html.index('id="attachments"') :]
    assert '<div role="alert">' in panel and "notes.pdf was not attached: " in panel  # the name as uploaded
    assert "Notes.pdf" not in html and 'class="messagelist"' not in html[: html.index('id="attachments"')]
    # The other messages of the page stay at its top.
    response = admin_client.post(
        change_url(owners.alice_note), {"patient": owners.alice.pk, "text": "x", "_continue": "1"}, follow=True
    )
    html = response.content.decode()
    assert html.index("was changed successfully") < html.index('id="attachments"')
