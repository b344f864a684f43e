"""The dependency arrow points one way: django_attachments never imports its consumers.

Every import in the package must name the standard library, a declared
dependency, or the package itself; consumer apps (the test app, the example
project's apps, anything else) register with the app, never the reverse.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import django_attachments

PACKAGE_DIR = Path(django_attachments.__file__).parent
#: The optional extras' imports are allowed too: zlib_ng (s3), PIL and pypdf (analyze), pypdfium2 (preview),
#: pydicom and numpy (dicom).
ALLOWED_THIRD_PARTY = {
    "django",
    "rest_framework",
    "storages",
    "boto3",
    "botocore",
    "zlib_ng",
    "magic",
    # Django's Tasks framework before Django 6 (django.tasks from 6.0 on).
    "django_tasks",
    "drf_spectacular",
    "PIL",
    "pypdf",
    "pypdfium2",
    "pydicom",
    "numpy",
}
CONSUMERS = {"tests", "testapp", "example_project", "clinics", "patients", "clinical_notes", "treatment_plan"}


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"import_module", "__import__"}:
            if node.args and isinstance(node.args[0], ast.Constant):
                yield node.lineno, node.args[0].value


def test_package_imports_only_stdlib_dependencies_and_itself():
    offenders = []
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        for lineno, module in imported_modules(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY or top == "django_attachments":
                continue
            offenders.append(f"{path.relative_to(PACKAGE_DIR)}:{lineno} imports {module}")
    assert offenders == []


def test_the_check_catches_a_consumer_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from tests.testapp.models import Patient\nimport clinics\n")
    tops = {module.split(".")[0] for _, module in imported_modules(bad)}
    assert tops <= CONSUMERS and tops
