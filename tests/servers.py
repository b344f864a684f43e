"""Processes the tests and benchmarks start on 127.0.0.1: free ports, waiting, moto's S3 server,
reading another process's memory (Linux ``/proc``), and room on disk for their files.

::

    with moto_server(workdir) as endpoint:      # "http://127.0.0.1:PORT"
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(url: str, proc: subprocess.Popen, what: str, logfile: Path | None = None, timeout: float = 60) -> None:
    """Poll ``url`` until it answers; raise RuntimeError with the log's tail if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = logfile.read_text(errors="replace")[-3000:] if logfile and logfile.exists() else ""
                raise RuntimeError(f"{what} did not start:\n{tail}") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def moto_server(workdir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """moto's S3 server in a subprocess on a free port; yields its endpoint URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    logfile = workdir / "moto.log"
    tmp = workdir / "moto-tmp"
    tmp.mkdir(exist_ok=True)
    port = free_port()
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), "TMPDIR": str(tmp)},
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(endpoint + "/moto-api/", proc, "the moto server", logfile, timeout=30)
        yield endpoint
    finally:
        stop(proc)


def status_kib(pid: int, field: str) -> int:
    """A ``Vm*`` field (``VmRSS``, ``VmHWM``, …) of ``/proc/PID/status``, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS; False where the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def roomy_tempdir(prefix: str, needed: float) -> Iterator[Path]:
    """A temporary folder on a file system with ``needed`` bytes free (else the test is skipped), removed after."""
    import pytest

    base = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        free = shutil.disk_usage(base).free
        if free < needed:
            pytest.skip(f"needs ~{needed / 2**20:.0f} MiB free in {base.parent}, has {free / 2**20:.0f} MiB")
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
