"""The API's root (``GET /api/``): its endpoints as absolute URLs, behind the API's permission classes."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import include, path, reverse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

ROOT = "/api/"
ENDPOINTS = {
    "attachments": "http://testserver/api/attachments/",
    "uploads": "http://testserver/api/attachments/uploads/",
}


def test_lists_the_endpoints_as_absolute_urls(staff):
    response = staff["a"].get(ROOT, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == ENDPOINTS


def test_the_listed_urls_answer(staff):
    listing = staff["a"].get(ENDPOINTS["attachments"])
    assert listing.status_code == 200 and listing.json()["count"] == 0
    # Direct uploads start with a POST; the URL exists, a GET is not one of its methods.
    assert staff["a"].get(ENDPOINTS["uploads"]).status_code == 405


def test_is_named_in_the_app_namespace():
    assert reverse("django_attachments:api-root") == ROOT


def test_an_anonymous_caller_is_refused_by_the_default_permission_classes():
    response = APIClient().get(ROOT, HTTP_ACCEPT="application/json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}
    assert "attachments" not in response.content.decode()


def test_follows_the_permission_classes_setting(staff, settings):
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    }
    assert staff["a"].get(ROOT).status_code == 403
    admin = APIClient()
    admin.force_authenticate(get_user_model().objects.create_user("root", is_staff=True))
    assert admin.get(ROOT).json() == ENDPOINTS


def test_an_anonymous_caller_sees_what_allow_any_permits_and_no_more(settings):
    settings.DJANGO_ATTACHMENTS = {
        **settings.DJANGO_ATTACHMENTS,
        "PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    }
    # DRF's root view shows the endpoints' addresses, nothing of anyone's files.
    assert APIClient().get(ROOT).json() == ENDPOINTS


def test_browsers_get_the_browsable_api(staff):
    response = staff["a"].get(ROOT, HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")


def test_an_id_with_a_dot_is_an_id_not_a_format_suffix(staff):
    response = staff["a"].get("/api/attachments/abc.json/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


urlpatterns = [path("files/", include(("django_attachments.urls", "django_attachments"), namespace="files"))]


@pytest.mark.urls(__name__)
def test_under_another_prefix_and_namespace(staff):
    response = staff["a"].get("/files/")
    assert response.json() == {
        "attachments": "http://testserver/files/attachments/",
        "uploads": "http://testserver/files/attachments/uploads/",
    }
