"""A direct upload larger than 5 GiB (S3's largest single PUT), in parts, to a live server: memory stays flat.

The example project runs with ``runserver`` in a subprocess on local disk
(the parts go to the API's own part URLs and are joined on completion) and on
SeaweedFS (the parts go to presigned ``UploadPart`` URLs that bind each part's
length and SHA-256; the server only reads the object back). A plain HTTP
client (:mod:`tests.multipart_client`) generates the 5.5 GiB while it hashes
and sends each part, four at a time; it never holds the file, and declares no
whole SHA-256 (the server computes it, reading the object back once).

Checked: the server's peak RSS grows by at most 32 MiB from a warm baseline,
the attachment's SHA-256 is the file's, and afterwards the purge finds no
incomplete multipart upload. Figures are printed (``-s``); nothing asserts on
time. Needs ~12 GiB free on local disk (the parts, then the joined object).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading

import pytest

from tests.conftest import SEAWEEDFS_KEYS, make_bucket
from tests.live import example_server
from tests.multipart_client import MultipartClient, pattern_source
from tests.servers import reset_peak, roomy_tempdir, seaweedfs_server, status_kib
from tests.test_live_upload import AUTH, GIB, MIB, patient_of_north

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status (Linux)"),
]

SIZE = 5 * GIB + GIB // 2
BOUND_MIB = 32


def whole_checksum(source, size: int, into: dict) -> None:
    hasher = hashlib.sha256()
    for chunk in source(0, size):
        hasher.update(chunk)
    into["sha256"] = hasher.hexdigest()


def run(server, store: str) -> None:
    source = pattern_source(store.encode())
    expected: dict[str, str] = {}
    hashing = threading.Thread(target=whole_checksum, args=(source, SIZE, expected))
    hashing.start()
    client = MultipartClient(server.url, AUTH)
    owner_id = patient_of_north(server.url)
    # Warm-up: a small multipart upload (imports, the first queries, the store's client).
    warm = pattern_source(b"warm-up")
    result = client.upload({"owner_type": "patient", "owner_id": owner_id, "filename": "warm.bin"}, 65 * MIB, warm)
    assert result.status in (200, 201), result.body
    reset = reset_peak(server.pid)
    baseline = status_kib(server.pid, "VmHWM")
    result = client.upload({"owner_type": "patient", "owner_id": owner_id, "filename": "cbct.bin"}, SIZE, source)
    growth = (status_kib(server.pid, "VmHWM") - baseline) / 1024
    hashing.join()
    sent, verified = result.timings.get("sent", 0), result.timings.get("verified", 0)
    figures = (
        f"multipart direct upload of {SIZE / GIB:.1f} GiB to {store} ({result.parts_sent} parts; peak reset: "
        f"{'yes' if reset else 'no'}): parts hashed and sent in {sent:.1f} s ({SIZE / max(sent, 1e-9) / 1e6:.0f} "
        f"MB/s), verified {verified - sent:.1f} s later ({result.polls} polls); server peak +{growth:.1f} MiB"
    )
    print("\n" + figures)
    assert result.status in (200, 201), f"{figures}\n{result.body}\n{server.log.read_text()[-3000:]}"
    assert result.attachment["size"] == SIZE and result.attachment["checksum"] == expected["sha256"], figures
    assert growth < BOUND_MIB, figures
    done = server.manage(
        "purge_orphan_attachments", "--json", "--dry-run", "--older-than", "0s", "--allow-young-strays"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["multipart"]["found"] == 0, done.stdout


def test_live_multipart_upload_above_5_gib_to_local_disk(tmp_path_factory):
    with roomy_tempdir("attachments-live-multipart-", 2.3 * SIZE) as workdir:
        (workdir / "tmp").mkdir()
        env = {"ATTACHMENTS_MAX_UPLOAD_SIZE": str(6 * GIB), "TMPDIR": str(workdir / "tmp")}
        with example_server(workdir, env=env) as server:
            run(server, "local disk")
        assert not list((workdir / "tmp").iterdir()), "the parts left temporary files behind"


def test_live_multipart_upload_above_5_gib_to_seaweedfs(tmp_path_factory):
    with roomy_tempdir("attachments-live-multipart-", 2.3 * SIZE) as workdir:
        with seaweedfs_server(workdir / "seaweedfs", **SEAWEEDFS_KEYS) as endpoint:
            bucket = make_bucket(endpoint, **SEAWEEDFS_KEYS)
            env = {
                "ATTACHMENTS_MAX_UPLOAD_SIZE": str(6 * GIB),
                "TMPDIR": str(workdir),
                "STORAGE_BACKEND": "s3",
                "AWS_STORAGE_BUCKET_NAME": bucket,
                "AWS_S3_ENDPOINT_URL": endpoint,
                "AWS_S3_REGION_NAME": "us-east-1",
                "AWS_ACCESS_KEY_ID": SEAWEEDFS_KEYS["access_key"],
                "AWS_SECRET_ACCESS_KEY": SEAWEEDFS_KEYS["secret_key"],
            }
            with example_server(workdir / "server", env=env) as server:
                run(server, "SeaweedFS")
