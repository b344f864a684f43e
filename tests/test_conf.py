"""Settings: defaults, validation with the exact key to fix, reload under override_settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_attachments.conf import DEFAULTS, app_settings


def test_defaults():
    assert app_settings.STORAGE == "default"
    assert app_settings.KEY_PREFIX == "attachments/"
    assert app_settings.ORPHAN_GRACE_PERIOD == timedelta(hours=24)
    assert app_settings.ALLOWED_CONTENT_TYPES is None


def test_reloads_on_override_settings():
    assert app_settings.MAX_UPLOAD_SIZE == DEFAULTS["MAX_UPLOAD_SIZE"]
    with override_settings(DJANGO_ATTACHMENTS={"MAX_UPLOAD_SIZE": 5, "URL_EXPIRY": 30}):
        assert app_settings.MAX_UPLOAD_SIZE == 5
        assert app_settings.URL_EXPIRY == timedelta(seconds=30)
    assert app_settings.MAX_UPLOAD_SIZE == DEFAULTS["MAX_UPLOAD_SIZE"]


def test_normalises_values():
    with override_settings(
        DJANGO_ATTACHMENTS={"KEY_PREFIX": "files", "ALLOWED_CONTENT_TYPES": ["Image/*", "application/PDF"]}
    ):
        assert app_settings.KEY_PREFIX == "files/"
        assert app_settings.ALLOWED_CONTENT_TYPES == ("image/*", "application/pdf")


@pytest.mark.parametrize(
    "key, value",
    [
        ("MAX_UPLOAD_SIZE", "10MB"),
        ("MAX_UPLOAD_SIZE", -1),
        ("ALLOWED_CONTENT_TYPES", "image/*"),
        ("ALLOWED_CONTENT_TYPES", ["png"]),
        ("ORPHAN_GRACE_PERIOD", "24h"),
        ("ORPHAN_GRACE_PERIOD", -5),
        ("KEY_PREFIX", "/abs/"),
        ("KEY_PREFIX", "../up"),
        ("KEY_PREFIX", ""),
        ("STORAGE", None),
        ("ALLOW_EMPTY_FILES", "yes"),
        ("CHUNK_SIZE", 10),
        ("TENANT_RESOLVER", "no.such.module.func"),
        ("TENANT_RESOLVER", 42),
        ("ADMIN_CROSS_TENANT", True),
        ("ADMIN_CROSS_TENANT", "no.such.module.func"),
    ],
)
def test_wrong_values_name_the_key(key, value):
    with override_settings(DJANGO_ATTACHMENTS={key: value}):
        with pytest.raises(ImproperlyConfigured, match=f"DJANGO_ATTACHMENTS\\['{key}'\\]"):
            getattr(app_settings, key)


def test_unknown_keys_are_refused_with_the_valid_ones():
    with override_settings(DJANGO_ATTACHMENTS={"MAX_UPLAOD_SIZE": 5}):
        with pytest.raises(ImproperlyConfigured, match="'MAX_UPLAOD_SIZE'.*valid keys are: .*MAX_UPLOAD_SIZE"):
            app_settings.STORAGE


def test_not_a_dict():
    with override_settings(DJANGO_ATTACHMENTS=["STORAGE"]):
        with pytest.raises(ImproperlyConfigured, match="must be a dict"):
            app_settings.STORAGE


def test_tenant_resolver_is_imported_lazily():
    with override_settings(DJANGO_ATTACHMENTS={"TENANT_RESOLVER": "tests.test_conf.tenant_of"}):
        assert app_settings.TENANT_RESOLVER is tenant_of


def test_admin_cross_tenant_defaults_to_nobody_and_is_imported_lazily():
    from django_attachments.policy import is_superuser

    assert app_settings.ADMIN_CROSS_TENANT is None
    with override_settings(DJANGO_ATTACHMENTS={"ADMIN_CROSS_TENANT": "django_attachments.policy.is_superuser"}):
        assert app_settings.ADMIN_CROSS_TENANT is is_superuser


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        app_settings.NOT_A_SETTING


def tenant_of(request):
    return "t"
