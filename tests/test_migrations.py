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
