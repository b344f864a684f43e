"""The admin obeys tenancy: the panel and the read-only pages, as the API does.

With ``TENANT_RESOLVER`` set, staff of one clinic see and change only their
clinic's files, whatever model permissions they hold: another clinic's owner
is "not found", like one that does not exist. Staff with no clinic are
refused. ``ADMIN_CROSS_TENANT`` names who may act across clinics. The owner
types' ``can_view`` and ``can_attach`` hooks apply as in the API.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from django_attachments import services
from django_attachments.models import Attachment, Blob, DirectUpload
from django_attachments.registry import OwnerSpec, attachment_registry
from tests.testapp.owners import resolve_patient

pytestmark = pytest.mark.django_db

PATIENT_PERMS = ("view_patient", "change_patient")


def change_url(patient):
    return reverse("admin:testapp_patient_change", args=[patient.pk])


def panel_url(patient, action, attachment=None):
    args = [patient.pk] + ([attachment.pk] if attachment else [])
    return reverse(f"admin:testapp_patient_attachments_{action}", args=args)


def login(username, *, clinic=None, perms=PATIENT_PERMS, superuser=False):
    """A logged-in admin client: staff of ``clinic`` (None: of no clinic) with ``perms``."""
    from tests.testapp.models import Staff

    User = get_user_model()  # noqa: N806
    if superuser:
        user = User.objects.create_superuser(username, f"{username}@example.com", "x")
    else:
        user = User.objects.create_user(username, password="x", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    if clinic is not None:
        Staff.objects.create(user=user, clinic=clinic)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def files(owners, store, tenant_resolver, png, pdf):
    """One file on Alice (clinic A) and one on Bob (clinic B)."""

    class Files:
        alice = services.attach(
            SimpleUploadedFile("alice-xray.png", png), owner_type="patient", owner_id=owners.alice.pk
        )
        bob = services.attach(SimpleUploadedFile("bob-consent.pdf", pdf), owner_type="patient", owner_id=owners.bob.pk)

    return Files


@pytest.fixture
def anna(owners, tenant_resolver):
    return login("anna", clinic=owners.clinic_a)


@pytest.fixture
def ben(owners, tenant_resolver):
    return login("ben", clinic=owners.clinic_b)


@pytest.fixture
def store(disk_store):
    """Local disk: tenancy does not depend on the store."""
    return disk_store


def cross_tenant(settings, path="django_attachments.policy.is_superuser"):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ADMIN_CROSS_TENANT": path}


def is_auditor(request):
    """A cross-tenant rule of the tests' own: one named account, whatever its clinic."""
    return request.user.username == "audrey"


def rows(response):
    panel = response.context.get("attachments_panel")
    return None if panel is None or "rows" not in panel else [row["attachment"].blob.filename for row in panel["rows"]]


# -- another clinic's owner is not found ----------------------------------------------


def test_another_clinics_change_page_shows_none_of_its_files(ben, owners, files):
    response = ben.get(change_url(owners.alice))
    assert response.status_code == 200  # the project's ModelAdmin shows the patient; its files stay hidden
    html = response.content.decode()
    assert "alice-xray.png" not in html and str(files.alice.pk) not in html
    assert rows(response) is None and 'id="attachments"' not in html
    assert panel_url(owners.alice, "upload") not in html


def test_another_clinics_files_cannot_be_downloaded_unlinked_or_added_to(ben, owners, files, png):
    missing = reverse("admin:testapp_patient_attachments_upload", args=[999999])
    nonexistent = ben.post(missing, {"file": SimpleUploadedFile("x.png", png)})
    assert nonexistent.status_code == 404

    download = ben.get(panel_url(owners.alice, "download", files.alice))
    unlink = ben.post(panel_url(owners.alice, "unlink", files.alice))
    upload = ben.post(panel_url(owners.alice, "upload"), {"file": SimpleUploadedFile("sneaky.png", png)})
    for response in (download, unlink, upload):
        assert response.status_code == 404
        assert response.content == nonexistent.content  # exactly like an owner that does not exist
    # Nor through one's own owner's URLs: Alice's attachment does not belong to Bob.
    assert ben.get(panel_url(owners.bob, "download", files.alice)).status_code == 404
    assert ben.post(panel_url(owners.bob, "unlink", files.alice)).status_code == 404
    assert Attachment.objects.filter(pk=files.alice.pk).exists()
    assert Attachment.objects.count() == 2 and Blob.objects.count() == 2


# -- one's own clinic works -------------------------------------------------------------


def test_same_clinic_staff_see_download_upload_and_unlink(anna, owners, files, png, monkeypatch):
    page = anna.get(change_url(owners.alice))
    assert rows(page) == ["alice-xray.png"] and b"bob-consent.pdf" not in page.content
    assert page.context["attachments_panel"]["form"] is not None

    download = anna.get(panel_url(owners.alice, "download", files.alice))
    assert download.status_code == 200 and b"".join(download.streaming_content) == png

    seen = []
    attach = services.attach

    def spy(*args, **kwargs):
        seen.append(kwargs.get("tenant"))
        return attach(*args, **kwargs)

    monkeypatch.setattr(services, "attach", spy)
    upload = anna.post(panel_url(owners.alice, "upload"), {"file": SimpleUploadedFile("new.png", b"\x00" + png)})
    assert upload.status_code == 302
    assert seen == [owners.tenant_a]  # the service checks the tenant too
    new = Attachment.objects.get(blob__filename="new.png")
    assert new.blob.tenant == owners.tenant_a and new.created_by.username == "anna"

    unlinked = anna.post(panel_url(owners.alice, "unlink", files.alice))
    assert unlinked.status_code == 302 and not Attachment.objects.filter(pk=files.alice.pk).exists()


# -- who acts across clinics ------------------------------------------------------------


def test_a_superuser_with_no_clinic_is_refused_unless_cross_tenant(settings, owners, files, png):
    root = login("root", superuser=True)
    assert root.get(panel_url(owners.alice, "download", files.alice)).status_code == 403
    page = root.get(change_url(owners.alice))
    assert b"alice-xray.png" not in page.content and rows(page) is None

    cross_tenant(settings)
    page = root.get(change_url(owners.alice))
    assert rows(page) == ["alice-xray.png"]
    assert root.get(change_url(owners.bob)).context["attachments_panel"]["rows"][0]["attachment"] == files.bob
    assert root.get(panel_url(owners.bob, "download", files.bob)).status_code == 200
    upload = root.post(panel_url(owners.bob, "upload"), {"file": SimpleUploadedFile("by-root.png", png)})
    assert upload.status_code == 302
    assert Attachment.objects.get(blob__filename="by-root.png").blob.tenant == owners.tenant_b  # the owner's
    assert root.post(panel_url(owners.alice, "unlink", files.alice)).status_code == 302
    assert not Attachment.objects.filter(pk=files.alice.pk).exists()


def test_a_custom_cross_tenant_rule(settings, owners, files):
    cross_tenant(settings, "tests.test_admin_tenancy.is_auditor")
    audrey = login("audrey", clinic=owners.clinic_b)
    assert rows(audrey.get(change_url(owners.alice))) == ["alice-xray.png"]
    assert audrey.get(panel_url(owners.alice, "download", files.alice)).status_code == 200
    # Anyone else stays in their clinic, superusers included.
    root = login("root", superuser=True, clinic=owners.clinic_b)
    assert root.get(panel_url(owners.alice, "download", files.alice)).status_code == 404


def test_staff_with_no_clinic_are_refused(owners, files, png, tenant_resolver):
    nobody = login("nobody")
    page = nobody.get(change_url(owners.alice))
    assert page.status_code == 200 and b"alice-xray.png" not in page.content
    assert b"not part of any tenant" in page.content and rows(page) is None
    assert nobody.get(panel_url(owners.alice, "download", files.alice)).status_code == 403
    assert nobody.post(panel_url(owners.alice, "unlink", files.alice)).status_code == 403
    upload = nobody.post(panel_url(owners.alice, "upload"), {"file": SimpleUploadedFile("n.png", png)})
    assert upload.status_code == 403
    assert Attachment.objects.count() == 2 and Blob.objects.count() == 2


# -- the owner types' hooks ------------------------------------------------------------


@pytest.fixture
def hooks():
    """Register "patient" with hooks whose answers the test sets in the dict yielded."""
    allowed = {"view": True, "attach": True}
    spec = OwnerSpec(
        owner_type="patient",
        resolver=resolve_patient,
        can_view=lambda request, owner: allowed["view"],
        can_attach=lambda request, owner: allowed["attach"],
    )
    with attachment_registry.override(spec):
        yield allowed


def test_can_view_denied_is_not_found(anna, owners, files, hooks, png):
    hooks["view"] = False
    page = anna.get(change_url(owners.alice))
    assert b"alice-xray.png" not in page.content and rows(page) is None
    assert anna.get(panel_url(owners.alice, "download", files.alice)).status_code == 404
    assert anna.post(panel_url(owners.alice, "unlink", files.alice)).status_code == 404
    assert anna.post(panel_url(owners.alice, "upload"), {"file": SimpleUploadedFile("v.png", png)}).status_code == 404
    assert Attachment.objects.count() == 2


def test_can_attach_denied_reads_but_cannot_change(anna, owners, files, hooks, png):
    hooks["attach"] = False
    page = anna.get(change_url(owners.alice))
    assert rows(page) == ["alice-xray.png"]
    assert page.context["attachments_panel"]["form"] is None and b"attachment-unlink" not in page.content
    assert anna.get(panel_url(owners.alice, "download", files.alice)).status_code == 200
    assert anna.post(panel_url(owners.alice, "unlink", files.alice)).status_code == 403
    assert anna.post(panel_url(owners.alice, "upload"), {"file": SimpleUploadedFile("a.png", png)}).status_code == 403
    assert Attachment.objects.count() == 2


def test_hooks_apply_in_a_single_tenant_project_too(admin_client, owners, store, hooks, png):
    attachment = services.attach(png, owner_type="patient", owner_id=owners.alice.pk)
    hooks["view"] = False
    assert admin_client.get(panel_url(owners.alice, "download", attachment)).status_code == 404
    hooks["view"], hooks["attach"] = True, False
    assert admin_client.post(panel_url(owners.alice, "unlink", attachment)).status_code == 403
    assert Attachment.objects.filter(pk=attachment.pk).exists()


# -- the read-only pages: blobs, attachments, direct uploads ------------------------------

MODEL_PERMS = ("view_blob", "view_attachment", "view_directupload", "delete_blob")


def test_read_only_pages_show_only_ones_own_clinics_rows(owners, files, tenant_resolver):
    import hashlib

    services.start_upload(
        owner_type="patient", owner_id=owners.alice.pk, filename="a.pdf", size=3,
        checksum=hashlib.sha256(b"abc").hexdigest(),
    )  # fmt: skip
    ben = login("ben", clinic=owners.clinic_b, perms=MODEL_PERMS)
    blobs = ben.get(reverse("admin:django_attachments_blob_changelist"))
    assert [b.filename for b in blobs.context["cl"].result_list] == ["bob-consent.pdf"]
    links = ben.get(reverse("admin:django_attachments_attachment_changelist"))
    assert [a.pk for a in links.context["cl"].result_list] == [files.bob.pk]
    tickets = ben.get(reverse("admin:django_attachments_directupload_changelist"))
    assert tickets.context["cl"].result_count == 0
    # Alice's blob is not found, on its page and its download.
    alice_blob = files.alice.blob_id
    assert ben.get(reverse("admin:django_attachments_blob_download", args=[alice_blob])).status_code == 404
    assert ben.get(reverse("admin:django_attachments_attachment_change", args=[files.alice.pk])).status_code == 302
    assert ben.get(reverse("admin:django_attachments_blob_change", args=[alice_blob])).status_code == 302
    assert DirectUpload.objects.count() == 1


def test_read_only_pages_refuse_staff_with_no_clinic(owners, files, tenant_resolver):
    nobody = login("nobody", perms=MODEL_PERMS)
    assert nobody.get(reverse("admin:django_attachments_blob_changelist")).status_code == 403
    assert nobody.get(reverse("admin:django_attachments_blob_download", args=[files.bob.blob_id])).status_code == 403
    index = nobody.get(reverse("admin:index"))
    assert b"django_attachments/blob" not in index.content


def test_read_only_pages_show_every_clinic_to_cross_tenant_users_only(settings, owners, files):
    root = login("root", superuser=True)
    url = reverse("admin:django_attachments_blob_changelist")
    assert root.get(url).status_code == 403  # a superuser of no clinic is no exception by default
    cross_tenant(settings)
    assert root.get(url).context["cl"].result_count == 2


def test_read_only_pages_leave_out_owners_with_a_can_view_hook(owners, files, hooks, tenant_resolver):
    anna = login("anna", clinic=owners.clinic_a, perms=MODEL_PERMS)
    links = anna.get(reverse("admin:django_attachments_attachment_changelist"))
    assert links.context["cl"].result_count == 0  # as the API's unfiltered list: asked per owner only
    blobs = anna.get(reverse("admin:django_attachments_blob_changelist"))
    assert blobs.context["cl"].result_count == 0
