"""The quick start, the recipes and the lifecycle page, run as a reader would run them.

Each page's marked code blocks (see tests/docs_pages.py) run in order in a fresh Django project in a
temporary directory, with this environment's Python (the package is installed in it): files the
page says to write are written, commands it shows are run with bash, and where it shows their
output, the output is compared (ids, dates and tokens aside). The quick start runs from
``startproject`` on, its server on a free port instead of 8000; the other pages start from a copy
of the project its steps 2 to 5 build. S3 pages run against the session's moto server, which
stands in for the bucket the page names. Blocks marked ``skip`` are listed as skipped tests, each
with its reason in the test id.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import servers
from tests.docs_pages import Block, bind_ids, blocks, json_matches, merge_settings, normalise

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SHOWN_HOST = "127.0.0.1:8000"  # the server's address on the pages
PASSWORD = "s3cret-pass"  # the quick start's createsuperuser password
# photo.jpg, the "photo at hand" of the quick start: 40 bytes that libmagic takes for a JPEG.
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xfe\x00\x10doc-test photo\xff\xd9"
QUICKSTART = "quickstart.md"
#: The pages run on a copy of the quick start's project, and whether they need an S3 bucket.
PAGES = {
    "recipes/testing.md": False,
    "recipes/scheduling-purge.md": False,
    "recipes/switching-storages.md": True,
    "recipes/s3.md": True,
    "lifecycle.md": False,
}
#: Recipes not run, and why (each is also listed as a skipped test).
NOT_RUN = {
    "recipes/direct-uploads.md": "runs against the example project's demo data (make demo) with curl and jq",
    "recipes/multi-tenant.md": "fragments of the example project's clinics and patients apps, not files to write",
    "recipes/resolvers.md": "fragments of the example project's treatment_plan app, not files to write",
}


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without the outer test run's settings, with this venv first on PATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DJANGO_SETTINGS_MODULE" and not key.startswith(("PYTEST_", "DJANGO_ATTACHMENTS_TEST"))
    }
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(BIN.parent), **extra)
    return env


class Project:
    """A temporary Django project that a page's blocks are run in, in order."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env
        self.port = servers.free_port()
        self.output: str | None = None  # what the last ``sh`` block printed
        self.ids: dict[str, str] = {}  # ids shown on the page -> the ones of this run, for later commands
        self.background: list[subprocess.Popen] = []

    def run(self, block: Block) -> None:
        handler = getattr(self, "do_" + block.action.replace("-", "_"), None)
        if handler is None:
            raise AssertionError(f"{block.where}: unknown directive {block.action!r}")
        handler(block)

    # -- files ---------------------------------------------------------------------------------

    def do_file(self, block: Block) -> None:
        (self.root / block.argument).write_text(block.code)

    def do_append(self, block: Block) -> None:
        path = self.root / block.argument
        before = path.read_text() if path.exists() else ""
        path.write_text(before + ("\n\n" if before else "") + block.code)

    def do_settings(self, block: Block) -> None:
        path = self.root / block.argument
        path.write_text(merge_settings(path.read_text(), block.code))

    # -- commands ------------------------------------------------------------------------------

    def script(self, code: str) -> str:
        """The commands as the reader types them: with their own server's address and ids."""
        for shown, real in self.ids.items():
            code = code.replace(shown, real)
        return code.replace(SHOWN_HOST, f"127.0.0.1:{self.port}")

    def shown(self, text: str) -> str:
        return text.replace(f"127.0.0.1:{self.port}", SHOWN_HOST)

    def bash(self, code: str, where: str) -> str:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", self.script(code)],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode:
            raise AssertionError(
                f"{where}: exit status {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def do_sh(self, block: Block) -> None:
        if block.argument == "background":
            self.start_server(block)
        elif block.argument == "tty":
            self.on_terminal(block)  # prompts and answers: nothing to compare
        else:
            self.output = self.shown(self.bash(block.code, block.where))

    def start_server(self, block: Block) -> None:
        log = self.root.parent / f"server-{self.port}.log"
        # Without the autoreloader: a source file of the package edited meanwhile would restart the
        # server in the middle of a request.
        code = self.script(block.code).replace("runserver ", "runserver --noreload ")
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", code],
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stopped with its process group
            )
        self.background.append(proc)
        servers.wait_until(f"http://127.0.0.1:{self.port}/", proc, block.where, log, any_status=True)

    def on_terminal(self, block: Block) -> str:
        """Run the block on a pseudo-terminal, typing PASSWORD at each password prompt."""
        pid, fd = pty.fork()
        if pid == 0:  # the child: bash on the terminal
            os.chdir(self.root)
            os.execve("/bin/bash", ["bash", "-e", "-c", self.script(block.code)], self.env)
        seen = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if seen.rstrip().endswith(b"Password:") or seen.rstrip().endswith(b"Password (again):"):
                os.write(fd, PASSWORD.encode() + b"\n")
                seen += b"\n"
        else:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        text = seen.decode(errors="replace").replace("\r\n", "\n")
        assert os.waitstatus_to_exitcode(status) == 0, f"{block.where}: failed on the terminal:\n{text[-3000:]}"
        return text

    def do_output(self, block: Block) -> None:
        assert self.output is not None, f"{block.where}: an output block with no command before it"
        if block.lang == "json":
            actual = json.loads(self.output)
            expected = json.loads(block.code)
            assert json_matches(expected, actual, self.ids), (
                f"{block.where}: the page shows\n{block.code}\nbut the command printed\n{json.dumps(actual, indent=2)}"
            )
        else:
            bind_ids(block.code, self.output, self.ids)
            assert normalise(self.output) == normalise(block.code), (
                f"{block.where}: the page shows\n{block.code}\nbut the command printed\n{self.output}"
            )
        self.output = None

    def python(self, code: str, where: str) -> str:
        """Run ``code`` as a script of the project: settings loaded, and nothing imported for it."""
        prelude = (
            "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings'); django.setup()"
        )
        return self.bash(f"python - <<'__CODE__'\n{prelude}\n{code}__CODE__\n", where)

    def do_shell(self, block: Block) -> None:
        self.output = self.python(block.code, block.where)

    def do_manage(self, block: Block) -> None:
        for line in block.code.splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                self.bash(f"python {command}", f"{block.where}: {command}")

    def do_cron(self, block: Block) -> None:
        for line in block.code.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            command = line.split(None, 5)[5]
            log = self.root / "cron.log"
            log.unlink(missing_ok=True)
            command = (
                command.replace("cd /srv/mysite", f"cd {self.root}")
                .replace(".venv/bin/python", sys.executable)
                .replace("/var/log/mysite/purge-attachments.log", str(log))
            )
            for _ in range(2):
                self.bash(command, f"{block.where}: {line}")
            runs = log.read_text().splitlines()
            assert len(runs) == 2, f"{block.where}: two runs wrote {len(runs)} lines to the log:\n{log.read_text()}"
            assert all(isinstance(json.loads(run), dict) for run in runs)

    def do_identifiers(self, block: Block) -> None:
        """What an upload to the configured storage records: the blob's alias and identifiers."""
        code = (
            "import json\n"
            "from django_attachments import services\n"
            "from notes.models import Note\n"
            "note = Note.objects.create(title='identifiers')\n"
            "blob = services.attach(b'%PDF-1.4\\n%%EOF\\n', owner_type='note', owner_id=note.pk).blob\n"
            "print(json.dumps({'storage': blob.storage, **blob.storage_identifiers}))\n"
        )
        self.output = self.python(code, block.where)
        self.do_output(block)

    def stop(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def run_page(page: str, project: Project, *, until_background: bool = False) -> list[Block]:
    """Run the page's marked blocks in order; return those run."""
    ran = []
    for block in blocks(page):
        if block.action is None or block.action == "skip":
            continue
        if until_background and block.action == "sh" and block.argument == "background":
            break
        project.run(block)
        ran.append(block)
    return ran


@pytest.fixture(scope="module")
def quickstart_project(tmp_path_factory):
    """The quick start's project after its step 5: files written, migrated, a superuser and a note."""
    root = tmp_path_factory.mktemp("quickstart-base") / "project"
    root.mkdir()
    project = Project(root, environment())
    try:
        run_page(QUICKSTART, project, until_background=True)
    finally:
        project.stop()
    return root


@pytest.fixture
def bucket_endpoint(request):
    """moto's server, with the bucket the S3 pages name (clinic-files, in eu-west-1)."""
    import boto3

    endpoint = request.getfixturevalue("moto_server")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1")
    if "clinic-files" not in [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket="clinic-files", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return endpoint


def test_quickstart(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "photo.jpg").write_bytes(PHOTO)
    project = Project(root, environment())
    try:
        ran = run_page(QUICKSTART, project)
    finally:
        project.stop()
    assert any(block.action == "output" for block in ran)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page(page, quickstart_project, tmp_path, request):
    root = tmp_path / "project"
    shutil.copytree(quickstart_project, root)
    # The S3 pages name no endpoint (AWS's own): boto3 takes moto's from the environment.
    extra = {"AWS_ENDPOINT_URL_S3": request.getfixturevalue("bucket_endpoint")} if PAGES[page] else {}
    project = Project(root, environment(**extra))
    try:
        ran = run_page(page, project)
    finally:
        project.stop()
    assert ran, f"{page}: no block is marked to run"


def skipped_blocks():
    for page in [QUICKSTART, *PAGES]:
        for block in blocks(page):
            if block.action == "skip":
                yield pytest.param(block, id=f"{block.where} {block.argument}", marks=pytest.mark.skip(block.argument))
    for page, reason in NOT_RUN.items():
        yield pytest.param(None, id=f"{page} {reason}", marks=pytest.mark.skip(reason))


@pytest.mark.parametrize("block", list(skipped_blocks()))
def test_skipped(block):
    """Never runs: lists each block and page not run, with the reason in its id."""


def test_every_recipe_is_run_or_skipped_with_a_reason():
    recipes = {f"recipes/{path.name}" for path in (Path(__file__).parent.parent / "docs" / "recipes").glob("*.md")}
    assert recipes == {page for page in [*PAGES, *NOT_RUN] if page.startswith("recipes/")}
