"""Run a command against a throwaway PostgreSQL cluster.

    python -m tests.pgcluster -- pytest -q

initdb into a temporary folder, start the server on a free port of 127.0.0.1
(fsync off: the data is thrown away), create the ``attachments`` database,
export ``DJANGO_ATTACHMENTS_TEST_PG=127.0.0.1:PORT`` to the command, and stop
and remove the cluster afterwards, whatever the command's outcome. The server
refuses to run as root, so as root the cluster belongs to the ``postgres``
user and its programs run through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from tests import servers


def _bindir() -> str:
    for candidate in (os.environ.get("PG_BINDIR"), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)):
        if candidate and os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise SystemExit("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql or set PG_BINDIR.")


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """Yield "127.0.0.1:PORT" of a running throwaway cluster."""
    bindir = _bindir()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    workdir = tempfile.mkdtemp(prefix="attachments-pg-")
    datadir = os.path.join(workdir, "data")
    if as_root:
        shutil.chown(workdir, "postgres", "postgres")
    port = servers.free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, stdout=subprocess.DEVNULL)

    try:
        run(os.path.join(bindir, "initdb"), "-D", datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(
            os.path.join(bindir, "pg_ctl"),
            "-D",
            datadir,
            "-l",
            os.path.join(workdir, "server.log"),
            "-w",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -c fsync=off -c synchronous_commit=off "
            f"-c full_page_writes=off -c max_connections=200 -k {workdir}",
            "start",
        )
        try:
            run(os.path.join(bindir, "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "attachments")
            yield f"127.0.0.1:{port}"
        finally:
            subprocess.run(
                [*prefix, os.path.join(bindir, "pg_ctl"), "-D", datadir, "-m", "immediate", "-w", "stop"],
                stdout=subprocess.DEVNULL,
                check=False,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with cluster() as address:
        env = dict(os.environ, DJANGO_ATTACHMENTS_TEST_PG=address)
        print(f"PostgreSQL test cluster on {address}", flush=True)
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
