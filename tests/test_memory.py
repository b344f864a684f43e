"""Attaching a 200 MiB file grows peak memory by less than 64 MiB, on disk and on S3.

A bound, not a speed test. Each case runs ``tests/memory_probe.py`` in a fresh
interpreter (``sys.executable``) so that pytest's own memory and earlier tests
do not blur the figures; the probe warms up, reads its peak RSS, attaches the
file, reads the peak again, streams the stored bytes back and reads it once
more. On S3 the bytes go to the session's moto server, whose memory is its own
process's and does not count. Run with ``-s`` to see the figures::

    .venv/bin/python -m pytest tests/test_memory.py -s -q
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import make_bucket
from tests.servers import roomy_tempdir

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
FILE_SIZE = 200 * MIB
BOUND_MIB = 64
#: Input file + stored copy + spool of a non-seekable stream, with room to spare.
FREE_SPACE_NEEDED = 1024 * MIB
PROBE = Path(__file__).with_name("memory_probe.py")
REPO_ROOT = PROBE.parent.parent
#: A guard against a hung subprocess, not a speed assertion.
PROBE_TIMEOUT = 900


@pytest.fixture(scope="module")
def workspace():
    """A temporary folder with enough free space, removed afterwards."""
    with roomy_tempdir("attachments-memory-", FREE_SPACE_NEEDED) as base:
        yield base


@pytest.fixture(scope="module")
def big_file(workspace):
    """A 200 MiB file of random bytes, written 1 MiB at a time; (path, sha256 hex)."""
    path = workspace / "big.bin"
    hasher = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(FILE_SIZE // MIB):
            chunk = os.urandom(MIB)  # never repeats, so nothing can be deduplicated or compressed
            hasher.update(chunk)
            out.write(chunk)
    yield path, hasher.hexdigest()
    path.unlink(missing_ok=True)


@pytest.fixture
def case_dir(workspace):
    """An empty folder per case for the probe's database, storage and spool."""
    path = Path(tempfile.mkdtemp(prefix="case-", dir=workspace))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_probe(args: list[str], workdir: Path) -> dict:
    env = dict(os.environ)
    env.pop("DJANGO_ATTACHMENTS_TEST_PG", None)  # SQLite in a temporary file
    env.pop("PYTHONTRACEMALLOC", None)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["TMPDIR"] = str(workdir / "tmp")  # any tempfile (and tests.settings' MEDIA_ROOT) lands here
    (workdir / "tmp").mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(PROBE), "--workdir", str(workdir), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("MEMORY_PROBE ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"memory probe failed (exit {proc.returncode}):\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return json.loads(lines[-1].removeprefix("MEMORY_PROBE "))


@pytest.mark.parametrize("mode", ["file", "stream"])
# The bound is this process's memory, whichever S3 server receives the bytes: moto's is enough.
@pytest.mark.parametrize("kind", ["disk", "s3"])
def test_attach_200_mib_peak_memory_is_bounded(kind, mode, big_file, case_dir, request):
    path, sha256 = big_file
    args = ["--store", kind, "--mode", mode, "--input", str(path), "--sha256", sha256]
    if kind == "s3":
        endpoint = request.getfixturevalue("moto_server")
        args += ["--endpoint", endpoint, "--bucket", make_bucket(endpoint)]

    result = run_probe(args, case_dir)

    attach = result["attach_growth_mib"]
    read = result["read_back_growth_mib"]
    alone = result["read_back_alone_growth_mib"]
    samples = result["samples_mib"]
    figures = (
        f"[{kind}-{mode}] {result['size_mib']:.0f} MiB, bound {BOUND_MIB} MiB: "
        f"attach grew peak RSS by {attach['max']} MiB (ru_maxrss {attach['maxrss']}, VmHWM {attach['hwm']}); "
        f"attach + read-back by {read['max']} MiB (ru_maxrss {read['maxrss']}, VmHWM {read['hwm']}); "
        f"read-back alone by {alone and alone['max']} MiB; "
        f"baseline ru_maxrss {samples['baseline']['maxrss']} MiB, VmHWM {samples['baseline']['hwm']} MiB; "
        f"spooled {result['spooled']}"
    )
    print("\n" + figures)

    assert result["was_created"] and result["distinct_from_warm_up"], figures
    # The non-seekable stream must take the spooling path, the open file must not.
    assert result["spooled"] == (1 if mode == "stream" else 0), figures
    assert result["blob_size_ok"] and result["blob_sha256_ok"], f"stored blob does not match the input; {result}"
    assert result["read_back_size_ok"] and result["read_back_sha256_ok"], f"bytes read back differ; {result}"
    # "max" is the larger of the ru_maxrss and VmHWM (Linux) measures.
    assert attach["max"] < BOUND_MIB, figures
    assert read["max"] < BOUND_MIB, figures
    if alone is not None:
        assert alone["max"] < BOUND_MIB, figures


@pytest.fixture(scope="module")
def big_clamd(tmp_path_factory):
    """clamd with the test signatures and a StreamMaxLength above the big file.

    Its MaxScanSize is far above: clamd counts against it every byte it scans, and it scans again what
    it finds embedded in a file (from the embedded file's start to the end), so 200 MiB of random bytes
    that happen to hold an embedded-file header now and then count for more than 300 MiB.
    """
    from tests import clamd as clamd_helpers
    from tests import servers

    clamd_helpers.skip_without_clamd()
    with servers.clamd_server(
        tmp_path_factory.mktemp("memory-clamd"),
        clamd_helpers.databases(),
        stream_max_length="300M",
        max_scan_size="4000M",
    ) as clamd:
        yield clamd


# S3 only: the store's stream is the one the read-back above bounds on both stores; what is new here is the
# scanner's side, and a boto3 body is the stream most likely to buffer (measured once on disk: +1.5 MiB).
@pytest.mark.parametrize("kind", ["s3"])
def test_scan_200_mib_peak_memory_is_bounded(kind, big_file, case_dir, big_clamd, request):
    """The pipeline streams the stored object to clamd in chunks: a 200 MiB scan holds no more than a chunk."""
    path, sha256 = big_file
    args = ["--store", kind, "--mode", "file", "--input", str(path), "--sha256", sha256]
    args += ["--scan-socket", big_clamd.socket]
    if kind == "s3":
        endpoint = request.getfixturevalue("moto_server")
        args += ["--endpoint", endpoint, "--bucket", make_bucket(endpoint)]

    result = run_probe(args, case_dir)

    scan, alone = result["scan_growth_mib"], result["scan_alone_growth_mib"]
    figures = f"[{kind}-scan] 200 MiB, bound {BOUND_MIB} MiB: scan grew peak RSS by {scan['max']} MiB (alone: {alone})"
    print("\n" + figures)
    assert result["scan_state"] == "clean", result["scan_error"]
    assert scan["max"] < BOUND_MIB, figures
    if alone is not None:
        assert alone["max"] < BOUND_MIB, figures
