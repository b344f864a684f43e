"""Schemathesis against the example project's live schema: no 5xx, no schema violations.

Every endpoint, authenticated as a clinic's staff member, with generated valid
and invalid inputs and stateful sequences (upload -> read -> edit -> delete).
Bounded: a fixed number of examples per operation (``MAX_EXAMPLES``, for every
phase, the stateful one included) and a fixed seed, so a run is reproducible
(``SCHEMATHESIS_SEED`` picks another). A deeper run is one command away::

    SCHEMATHESIS_EXAMPLES=100 .venv/bin/python -m pytest tests/test_schemathesis.py

The check "valid input is accepted" is left out: the app rightly refuses
schema-valid requests that break its rules (an owner in another clinic, a slot
the owner type lacks).

Every request authenticates with HTTP Basic, which checks the password each
time: the server runs the example project's settings with a fast password
hasher (``FAST_HASHER_SETTINGS``), as the suite's own settings do, or hashing
would take most of the run. Marked slow: it runs on SQLite only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import example_server

pytestmark = pytest.mark.slow

#: Examples per operation and phase; the environment's SCHEMATHESIS_EXAMPLES asks for a deeper (or shorter) run.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))

#: The example project's settings with a password hasher that costs nothing: every Basic-auth request
#: checks the password, and the default PBKDF2 (a million iterations) would cost most of a second each.
FAST_HASHER_SETTINGS = """\
from example_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
"""


def fast_hasher_env(folder: Path) -> dict[str, str]:
    """The environment that makes the example server (and its seed_demo) use FAST_HASHER_SETTINGS."""
    folder.mkdir()
    (folder / "schemathesis_settings.py").write_text(FAST_HASHER_SETTINGS)
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return {"DJANGO_SETTINGS_MODULE": "schemathesis_settings", "PYTHONPATH": path}


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(tmp_path: Path):
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    assert cli, "schemathesis is part of the test extra"
    with example_server(tmp_path, env=fast_hasher_env(tmp_path / "settings")) as server:
        proc = subprocess.run(
            [
                cli,
                "run",
                f"{server.url}/api/schema/",
                "--url",
                server.url,
                "--auth",
                "north:north-demo",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                os.environ.get("SCHEMATHESIS_SEED", "1"),
                "--request-timeout",
                "30",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )
        server_errors = [line for line in server.log.read_text().splitlines() if "Traceback" in line]
    summary = proc.stdout[-6000:]
    print(summary)
    assert proc.returncode == 0, summary
    assert server_errors == [], server.log.read_text()[-6000:]
