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


# -- STORE_OPTIONS: the shape here, each option against its store's class (stores/) ------------------


def s3_storage(alias="files"):
    from tests.conftest import s3_backend

    # Building the store sends nothing: no server needed.
    return {alias: s3_backend("http://127.0.0.1:9", "bucket")}


def test_store_options_default_to_none():
    assert app_settings.STORE_OPTIONS == DEFAULTS["STORE_OPTIONS"] == {}


@pytest.mark.parametrize(
    "value, key",
    [
        (["files"], "STORE_OPTIONS"),
        ({"files": 5}, "STORE_OPTIONS'\\]\\['files"),
        ({"files": [("part_size", 1)]}, "STORE_OPTIONS'\\]\\['files"),
        ({"files": {5: 1}}, "STORE_OPTIONS'\\]\\['files"),
    ],
)
def test_store_options_shape_names_the_key(value, key):
    with override_settings(DJANGO_ATTACHMENTS={"STORE_OPTIONS": value}):
        with pytest.raises(ImproperlyConfigured, match=f"DJANGO_ATTACHMENTS\\['{key}'\\]"):
            app_settings.STORE_OPTIONS


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("part_size", 5 * 2**20 - 1, "an integer from 5242880"),
        ("part_size", 5 * 2**30 + 1, "to 5368709120"),
        ("part_size", "8MB", "an integer"),
        ("part_size", True, "an integer"),
        ("max_parts_in_flight", 0, "an integer >= 1"),
        ("max_parts_in_flight", -2, "an integer >= 1"),
        ("max_parts_in_flight", True, "an integer >= 1"),
        ("multipart_threshold", -1, "an integer from 0"),
        ("multipart_threshold", 5 * 2**30 + 1, "the most one PutObject takes"),
        ("multipart_threshold", 1.5, "an integer"),
    ],
)
def test_a_wrong_store_option_names_the_exact_key(settings, option, value, expected):
    from django_attachments.stores import get_store

    settings.STORAGES = {**settings.STORAGES, **s3_storage()}
    settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"files": {option: value}}}
    with pytest.raises(ImproperlyConfigured) as raised:
        get_store("files")
    message = str(raised.value)
    assert message.startswith(f"DJANGO_ATTACHMENTS['STORE_OPTIONS']['files'][{option!r}] must be an integer")
    assert expected in message and message.endswith(f", not {value!r}.")


def test_an_unknown_store_option_names_the_key_and_the_valid_ones(settings):
    from django_attachments.stores import get_store

    settings.STORAGES = {**settings.STORAGES, **s3_storage()}
    settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"files": {"part_size": 6 * 2**20, "partsize": 1}}}
    with pytest.raises(
        ImproperlyConfigured,
        match=r"DJANGO_ATTACHMENTS\['STORE_OPTIONS'\]\['files'\]\['partsize'\] is not an option of S3Store .*"
        "its options are: multipart_threshold, part_size, max_parts_in_flight",
    ):
        get_store("files")


def test_a_store_without_options_takes_none(settings, tmp_path):
    from django_attachments.stores import get_store

    settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"default": {"part_size": 6 * 2**20}}}
    with pytest.raises(
        ImproperlyConfigured,
        match=r"\['STORE_OPTIONS'\]\['default'\]\['part_size'\] is not an option of FileSystemStore .*it takes none",
    ):
        get_store("default")


def test_store_options_are_read_per_alias_and_reloaded(settings):
    from django_attachments.stores import get_store

    settings.STORAGES = {**settings.STORAGES, **s3_storage("files"), **s3_storage("archive")}
    settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"files": {"part_size": 6 * 2**20}}}
    assert get_store("files").options.part_size == 6 * 2**20
    assert get_store("archive").options.part_size == 8 * 2**20  # the default
    settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"files": {"max_parts_in_flight": 4}}}
    files = get_store("files")
    assert (files.options.part_size, files.options.max_parts_in_flight) == (8 * 2**20, 4)
