"""Migrations: complete, and owner_type stays free text in every one of them, forever."""

from __future__ import annotations

import ast
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

import django_attachments

MIGRATIONS = sorted((Path(django_attachments.__file__).parent / "migrations").glob("0*.py"))


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = StringIO()
    call_command("makemigrations", "django_attachments", "--check", "--dry-run", stdout=out)


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_no_check_constraint_and_no_choices_on_owner_type(path):
    source = path.read_text()
    tree = ast.parse(source)
    assert "CheckConstraint" not in source
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and node.elts and getattr(node.elts[0], "value", None) == "owner_type":
            field = ast.unparse(node.elts[1])
            assert "max_length=40" in field and "choices" not in field, field


@pytest.mark.django_db(transaction=True)
def test_existing_attachments_take_their_blob_s_filename():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("django_attachments", "0003_direct_upload")], [("django_attachments", "0004_attachment_filename")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Blob, Attachment = apps.get_model("django_attachments", "Blob"), apps.get_model("django_attachments", "Attachment")
    blob = Blob.objects.create(checksum="0" * 64, size=1, content_type="x/y", filename="first.pdf", storage="default")
    Attachment.objects.create(blob=blob, owner_type="patient", owner_id="1")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    apps = executor.loader.project_state(after).apps
    assert apps.get_model("django_attachments", "Attachment").objects.get().filename == "first.pdf"
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
