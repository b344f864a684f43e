"""Every kind of file gets its thumbnail from a real worker, on local disk and on both S3 servers.

The example project is served live (:mod:`tests.workers`) on the suite's
database, its storage local disk or a bucket of the session's moto or
SeaweedFS server, on django-tasks-db's database backend: the request only
enqueues, and ``manage.py db_worker`` scans nothing (no scanner here),
analyzes and renders. A JPEG, a PNG, a PDF, a DICOM image and a video are
uploaded through the API; each ends with its eager ``thumb`` made by the
worker, stored in the project's storage, served as a picture; the lazy
``preview`` of each answers 202 until the worker made it, then the picture.
"""

from __future__ import annotations

import io
import os
from urllib.parse import urlsplit

import pytest

from tests.test_variants import _sample
from tests.test_worker import needs_db_worker
from tests.workers import Browser, wait_for, worker_project

DATABASE = "postgres" if os.environ.get("DJANGO_ATTACHMENTS_TEST_PG") else "sqlite"
USERNAME, PASSWORD = "north", "north-demo"  # staff of Northside Dental (seed_demo)
KINDS = ["jpeg", "png", "pdf", "dicom", "video"]


def storage_env(request, kind: str) -> dict[str, str]:
    if kind == "disk":
        return {}
    from tests.conftest import get_s3_server

    server = get_s3_server(request, kind.removeprefix("s3-"))
    return {
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": server.make_bucket(),
        "AWS_S3_ENDPOINT_URL": server.endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        # Never a developer's own configuration.
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }


@pytest.mark.parametrize(
    "storage", ["disk", "s3-seaweedfs", pytest.param("s3-moto", marks=pytest.mark.slow)], ids=lambda kind: kind
)
def test_a_real_worker_makes_every_kind_of_files_thumbnail(request, storage, tmp_path_factory):
    needs_db_worker()
    workdir = tmp_path_factory.mktemp(f"variants-{storage}")
    with worker_project(workdir, database=DATABASE, env=storage_env(request, storage)) as immediate:
        with immediate.on_workers() as project:
            browser = Browser(project.server.url)
            browser.log_in(USERNAME, PASSWORD)
            (row,) = project.db.rows("SELECT id FROM patients_patient WHERE record_number = %s", ["N-0002"])
            patient = str(row["id"])
            uploaded = {}
            for kind in KINDS:
                filename, data = _sample(kind, workdir)
                uploaded[kind] = browser.upload_api("patient", patient, f"worker-{filename}", data)
            for kind, attachment in uploaded.items():  # no worker yet: nothing is made
                status, _, _ = browser.request("GET", f"/api/attachments/{attachment['id']}/variants/preview/")
                assert status == 202, (kind, status)
            project.start_worker("variants")

            def thumbnails():
                ids = [attachment["blob_id"].replace("-", "") for attachment in uploaded.values()]
                rows = project.db.rows("SELECT blob_id, storage FROM django_attachments_variant WHERE name = 'thumb'")
                made = {str(row["blob_id"]).replace("-", ""): row for row in rows}
                return all(blob_id in made for blob_id in ids) and made

            made = wait_for("every thumbnail", thumbnails, timeout=120)
            assert {row["storage"] for row in made.values()} == {"default"}
            from PIL import Image

            for kind, attachment in uploaded.items():
                for name in ("thumb", "preview"):
                    path = f"/api/attachments/{attachment['id']}/variants/{name}/"
                    status, headers, raw = wait_for(
                        f"the {name} of the {kind}",
                        lambda path=path: (answer := browser.request("GET", path))[0] != 202 and answer,
                        timeout=60,
                    )
                    assert status == 200, (kind, name, status, raw[:300])
                    image = Image.open(io.BytesIO(raw))
                    image.load()
                    low, high = image.convert("L").getextrema()
                    assert high - low > 40, (kind, name, (low, high))  # a picture, not a blank
            listed = {a["id"]: a for a in browser.attachments("patient", patient)}
            for attachment in uploaded.values():
                variants = listed[attachment["id"]]["variants"]
                assert variants["thumb"]["ready"] and variants["preview"]["ready"]
                assert urlsplit(variants["thumb"]["url"]).path.endswith("/variants/thumb/")
            done = project.db.finished_tasks("django_attachments.tasks.make_variant")
            assert len(done) == len(KINDS) and {row["status"] for row in done} == {"SUCCESSFUL"}
