"""System checks: stable ids, and a hint that says what to fix."""

from __future__ import annotations

import django
import pytest
from django.core import checks

from django_attachments.checks import (
    TAG,
    check_blob_storages,
    check_libmagic,
    check_scanner,
    check_settings,
    check_tasks,
)
from django_attachments.processing.analyzers import Analyzer


def ids(messages):
    return [m.id for m in messages]


def test_all_clear():
    assert check_settings() == [] and check_libmagic() == []


def test_wrong_settings_are_all_reported(settings):
    settings.DJANGO_ATTACHMENTS = {"MAX_UPLOAD_SIZE": "big", "SNIFF_BYTES": 5}
    messages = check_settings()
    assert ids(messages) == ["django_attachments.E001"] * 2
    assert "MAX_UPLOAD_SIZE" in messages[0].msg and "SNIFF_BYTES" in messages[1].msg


def test_unknown_key(settings):
    settings.DJANGO_ATTACHMENTS = {"STORGE": "x"}
    assert ids(check_settings()) == ["django_attachments.E001"]


def test_relative_local_location_is_a_warning(settings):
    settings.MEDIA_ROOT = ""
    messages = check_settings()
    assert ids(messages) == ["django_attachments.W001"] and "absolute path" in messages[0].hint
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": "/srv/files"}},
    }
    assert check_settings() == []


def test_cross_tenant_users_without_tenants_are_a_warning(settings):
    settings.DJANGO_ATTACHMENTS = {"ADMIN_CROSS_TENANT": "django_attachments.policy.is_superuser"}
    messages = check_settings()
    assert ids(messages) == ["django_attachments.W003"] and "TENANT_RESOLVER" in messages[0].hint
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "TENANT_RESOLVER": "tests.test_conf.tenant_of"}
    assert check_settings() == []


def test_unknown_storage_alias(settings):
    settings.DJANGO_ATTACHMENTS = {"STORAGE": "attachments"}
    messages = check_settings()
    assert ids(messages) == ["django_attachments.E002"]
    assert "default" in messages[0].hint and "staticfiles" not in messages[0].hint


@pytest.mark.django_db
def test_blobs_in_a_storage_that_is_gone(owners, pdf):
    from django_attachments.models import Blob

    Blob.objects.create(checksum="0" * 64, size=1, content_type="x/y", filename="f", storage="retired")
    assert ids(check_blob_storages(databases=["default"])) == ["django_attachments.W002"]
    assert check_blob_storages(databases=None) == []


def test_checks_are_registered():
    registered = {c.__name__ for c in checks.registry.registry.get_checks(include_deployment_checks=False)}
    assert {"check_settings", "check_libmagic", "check_blob_storages"} <= registered


def test_store_options_for_an_alias_not_in_storages(settings):
    settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"atachments": {"part_size": 6 * 2**20}, "default": {}}}
    messages = check_settings()
    assert ids(messages) == ["django_attachments.E004"]
    assert "'atachments'" in messages[0].msg and "default" in messages[0].hint


def test_a_wrong_store_option_is_reported_by_the_check(settings):
    from tests.conftest import s3_backend

    settings.STORAGES = {**settings.STORAGES, "files": s3_backend("http://127.0.0.1:9", "bucket")}
    settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"files": {"part_size": 1024}, "default": {"x": 1}}}
    messages = check_settings()
    assert ids(messages) == ["django_attachments.E001"] * 2
    assert messages[0].msg.startswith("DJANGO_ATTACHMENTS['STORE_OPTIONS']['files']['part_size'] must be")
    assert messages[1].msg.startswith("DJANGO_ATTACHMENTS['STORE_OPTIONS']['default']['x'] is not an option")
    settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"files": {"part_size": 16 * 2**20}}}
    assert check_settings() == []


def test_store_options_of_the_wrong_shape_are_e001(settings):
    settings.DJANGO_ATTACHMENTS = {"STORE_OPTIONS": {"default": 5}}
    messages = check_settings()
    assert ids(messages) == ["django_attachments.E001"] and "['STORE_OPTIONS']['default']" in messages[0].msg


# -- the processing pipeline ---------------------------------------------------------------------


class MissingLibraryAnalyzer(Analyzer):
    """An analyzer whose library is not installed here."""

    name = "missing"
    content_types = frozenset({"image/png"})

    def unavailable_reason(self):
        return "the library it needs is not installed (pip install something)"


def test_a_task_backend_that_is_not_configured_is_e005(settings):
    if django.VERSION < (6, 0):
        # The backport drops its cached backends on a TASKS change only once its signals module is
        # imported (by its first backend); this test changes TASKS before any backend exists.
        import django_tasks.signals  # noqa: F401
    settings.DJANGO_ATTACHMENTS = {"TASK_BACKEND": "workers"}
    messages = check_tasks()
    assert ids(messages) == ["django_attachments.E005"]
    assert "'workers'" in messages[0].msg and "settings.TASKS" in messages[0].hint
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
        "workers": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["files"]},
    }
    messages = check_tasks()  # the alias is there now, but its QUEUES do not take the default queue
    assert ids(messages) == ["django_attachments.E005"] and "'default'" in messages[0].msg
    settings.DJANGO_ATTACHMENTS = {"TASK_BACKEND": "workers", "TASK_QUEUE": "files"}
    assert check_tasks() == []
    settings.DJANGO_ATTACHMENTS = {"TASK_BACKEND": "workers", "TASK_QUEUE": "elsewhere"}
    assert ids(check_tasks()) == ["django_attachments.E005"]


def test_an_analyzer_listed_but_unable_to_run_is_w004(settings):
    settings.DJANGO_ATTACHMENTS = {
        "ANALYZERS": ["django_attachments.processing.analyzers.PdfAnalyzer", "tests.test_checks.MissingLibraryAnalyzer"]
    }
    messages = check_settings()
    assert ids(messages) == ["django_attachments.W004"] and "not installed" in messages[0].msg
    # The default (None) takes what can run, silently.
    settings.DJANGO_ATTACHMENTS = {}
    assert check_settings() == []


def test_a_scanner_that_does_not_answer_is_w005_on_deploy_only(settings, tmp_path):
    settings.DJANGO_ATTACHMENTS = {
        "SCANNER": {
            "BACKEND": "django_attachments.processing.scanners.ClamdScanner",
            "OPTIONS": {"socket": str(tmp_path / "nothing.sock"), "timeout": 1},
        }
    }
    messages = check_scanner()
    assert ids(messages) == ["django_attachments.W005"] and "nothing.sock" in messages[0].msg
    deploy_only = checks.run_checks(tags=[TAG])
    assert "django_attachments.W005" not in ids(deploy_only)
    assert "django_attachments.W005" in ids(checks.run_checks(tags=[TAG], include_deployment_checks=True))


def test_a_wrong_scanner_setting_is_e001(settings):
    settings.DJANGO_ATTACHMENTS = {
        "SCANNER": {"BACKEND": "django_attachments.processing.scanners.ClamdScanner", "OPTIONS": {"sockett": "x"}}
    }
    messages = check_settings()
    assert ids(messages) == ["django_attachments.E001"] and "'sockett'" in messages[0].msg
    settings.DJANGO_ATTACHMENTS = {"SCANNER": "django_attachments.processing.analyzers.PdfAnalyzer"}
    assert "not a subclass of Scanner" in check_settings()[0].msg
    assert check_scanner() == [] and check_tasks() == []  # E001 says it; the others stay quiet


@pytest.mark.parametrize(
    "value, key",
    [
        (
            {
                "ANALYZERS": [
                    {"BACKEND": "django_attachments.processing.analyzers.ImageAnalyzer", "OPTIONS": {"max_pixels": 0}}
                ]
            },
            "ANALYZERS",
        ),
        (
            {
                "ANALYZERS": [
                    {"BACKEND": "django_attachments.processing.analyzers.PdfAnalyzer", "OPTIONS": {"max_read_size": 0}}
                ]
            },
            "ANALYZERS",
        ),
        (
            {
                "ANALYZERS": [
                    {"BACKEND": "django_attachments.processing.analyzers.MediaAnalyzer", "OPTIONS": {"timeout": 0}}
                ]
            },
            "ANALYZERS",
        ),
        ({"SCANNER": "."}, "SCANNER"),
        ({"SCAN_RETRY_DELAY": float("nan")}, "SCAN_RETRY_DELAY"),
        ({"SCAN_RETRY_DELAY": float("inf")}, "SCAN_RETRY_DELAY"),
        ({"SCAN_RETRY_DELAY": 1e300}, "SCAN_RETRY_DELAY"),
        ({"SCAN_MAX_ATTEMPTS": 40_000}, "SCAN_MAX_ATTEMPTS"),
    ],
    ids=["max_pixels", "max_read_size", "timeout", "scanner-dot", "nan", "inf", "huge", "attempts"],
)
def test_an_out_of_range_processing_setting_is_e001_naming_the_key(settings, value, key):
    """Not a bare ValueError that fails every upload and the check command itself."""
    settings.DJANGO_ATTACHMENTS = value
    messages = check_settings()
    assert ids(messages) == ["django_attachments.E001"] and f"'{key}'" in messages[0].msg, messages
