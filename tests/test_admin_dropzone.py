"""When the admin panel offers its drop zone (direct uploads through the API), and what it hands its script.

The zone is offered to users who may change the owner's files, where the
project serves the API's direct uploads, the API authenticates the admin's
session, and the API would find the owner for this user (its tenant, not the
admin's cross-tenant view). Elsewhere the panel shows its form alone. What the
script then does is tested in a real browser (``test_browser_admin_uploader.py``).
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import path, reverse

from tests.test_admin_tenancy import change_url as patient_change_url
from tests.test_admin_tenancy import cross_tenant, login

pytestmark = pytest.mark.django_db

#: A project that includes the admin but not the API's URLs (``pytest.mark.urls(__name__)``).
urlpatterns = [path("admin/", admin.site.urls)]


def note_change_url(note):
    return reverse("admin:testapp_note_change", args=[note.pk])


def zone_of(response):
    return response.context["attachments_panel"]["dropzone"]


def test_staff_who_may_change_the_owner_get_the_zone_and_its_settings(admin_client, owners, settings):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MULTIPART_THRESHOLD": 8 * 1024 * 1024}
    response = admin_client.get(note_change_url(owners.alice_note))
    zone = zone_of(response)
    assert zone["endpoint"] == reverse("django_attachments:upload-list")
    assert (zone["owner_type"], zone["owner_id"]) == ("note", str(owners.alice_note.pk))
    assert zone["single_put_max"] == 8 * 1024 * 1024
    assert (zone["csrf_cookie"], zone["csrf_header"]) == ("csrftoken", "X-CSRFTOKEN")

    html = response.content.decode()
    # Rendered hidden, for the script to reveal; the form stays, posting to the admin as before.
    tag = re.search(r'<div class="attachments-dropzone" hidden[^>]*>', html)
    assert tag and f'data-endpoint="{zone["endpoint"]}"' in tag.group(0)
    assert f'data-owner-id="{owners.alice_note.pk}"' in tag.group(0)
    assert 'data-form-id="attachments-upload"' in tag.group(0)
    assert re.search(r'<script type="module" src="[^"]*django_attachments/admin-panel\.js"></script>', html)
    words = re.search(r'<script id="attachments-dropzone-messages" type="application/json">(.*?)</script>', html)
    assert json.loads(words.group(1))["cancel"] == "Cancel"
    assert 'id="attachments-upload"' in html and 'type="file"' in html
    assert '<div class="attachments-list">' in html


def test_view_only_staff_get_no_zone(owners):
    user = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_note"))
    client = Client()
    client.force_login(user)
    response = client.get(note_change_url(owners.alice_note))
    assert response.context["attachments_panel"]["dropzone"] is None
    assert b'class="attachments-dropzone"' not in response.content and b'admin-panel.js"' not in response.content


@pytest.mark.urls(__name__)
def test_without_the_apis_urls_the_form_stands_alone(admin_client, owners):
    response = admin_client.get(note_change_url(owners.alice_note))
    panel = response.context["attachments_panel"]
    assert panel["form"] is not None and panel["dropzone"] is None
    assert b'admin-panel.js"' not in response.content and b'id="attachments-upload"' in response.content


def test_an_api_that_does_not_take_sessions_gets_no_zone(admin_client, owners, settings):
    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"],
    }
    assert zone_of(admin_client.get(note_change_url(owners.alice_note))) is None


def test_the_zone_follows_the_apis_tenant_not_the_admins_cross_tenant_view(settings, owners, tenant_resolver, store):
    anna = login("anna", clinic=owners.clinic_a)
    assert zone_of(anna.get(patient_change_url(owners.alice)))["owner_id"] == str(owners.alice.pk)
    assert anna.get(patient_change_url(owners.bob)).context.get("attachments_panel") is None  # not found

    # A superuser of clinic A acting across clinics sees Bob's files and may post the admin's form; the API,
    # which knows only clinic A, would not find Bob: no zone there.
    cross_tenant(settings)
    root = login("root", superuser=True, clinic=owners.clinic_a)
    bob = root.get(patient_change_url(owners.bob)).context["attachments_panel"]
    assert bob["form"] is not None and bob["dropzone"] is None
    assert root.get(patient_change_url(owners.alice)).context["attachments_panel"]["dropzone"] is not None
    # Of no clinic at all: the API refuses the caller.
    nobody = login("nobody", superuser=True)
    assert nobody.get(patient_change_url(owners.alice)).context["attachments_panel"]["dropzone"] is None


@pytest.fixture
def store(disk_store):
    return disk_store
