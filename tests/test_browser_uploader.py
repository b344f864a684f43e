"""The packaged JavaScript uploader (static/django_attachments/) in a real browser.

First its parts that need no Django: the SHA-256 (against :mod:`hashlib` at
the 64-byte block and 56-byte padding edges, fed in uneven pieces, and through
WebCrypto), the pool of hashing workers (parts of a real File, several at once,
and its fallback to the main thread when no worker can start) and the IndexedDB
store that lets an upload resume after a reload. The static folder is served
over HTTP on 127.0.0.1 (module scripts and workers are not loaded from
``set_content`` pages); 127.0.0.1 is a secure context, so ``crypto.subtle``
exists there.

Then the whole uploader against the live example project (``tests/live.py``),
on local disk and on SeaweedFS (which, as S3 does and moto does not, refuses a
part whose SHA-256 is not the signed one), with multipart uploads from 5 MiB
in parts of 5 MiB: a multipart upload whose progress bar moves within parts
(on a link throttled to 16 MiB/s); the parts' network cut half-way
(``page.route(...).abort()``), the page reloaded and the same file picked
again, which resumes the ticket and sends only the parts the storage lacks
(the part PUTs counted), and a completed ticket still remembered is only
completed again; a part corrupted on its way (same length, one byte
changed), refused by the storage and sent again; a remembered ticket
cancelled meanwhile, forgotten and started over; a small file in one PUT, the
same bytes again (nothing sent) and a start refused for want of a checksum;
abort() half-way. Every upload that completes is checked: the attachment's
SHA-256 is the file's and, but for the largest, so is its download's. The
largest, a few hundred MiB, runs last, with the page's heap sampled.

Headless Chromium, as in ``tests/test_browser.py``, whose ``page`` fixture
this module shares.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import django_attachments
from tests import test_browser
from tests.conftest import get_s3_server
from tests.live import example_server

page = test_browser.page  # the fixture: headless Chromium, with a screenshot of any failure

pytestmark = pytest.mark.slow

STATIC = Path(django_attachments.__file__).resolve().parent / "static" / "django_attachments"
MiB = 1024 * 1024
BLANK_PAGE = (
    b'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><input type="file" id="file"></body></html>'
)


class _StaticHandler(SimpleHTTPRequestHandler):
    """The package's static folder, plus a blank page with a file input at ``/``."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def do_GET(self):
        if self.path.split("?")[0] != "/":
            return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(BLANK_PAGE)))
        self.end_headers()
        self.wfile.write(BLANK_PAGE)

    def log_message(self, format, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def static_server():
    """The static folder served on a free port of 127.0.0.1; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_StaticHandler, directory=str(STATIC)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def modules(page, static_server):
    """A blank page of the static server with the uploader's modules imported as ``window.m``."""
    page.goto(f"{static_server}/")
    page.evaluate(
        """async () => {
            window.m = {
                ...(await import("./sha256.js")),
                ...(await import("./hashing.js")),
                ...(await import("./resume.js")),
                ...(await import("./uploader.js")),
            };
        }"""
    )
    return page


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- SHA-256 -------------------------------------------------------------------------------


# Each of [[base64 bytes, chunk size], ...] hashed five ways: in one update, in uneven pieces (1, 2, 3, ...
# bytes, which cross the 64-byte block boundary at every offset), by hashBlob() in chunks, and by
# digestBlob() with and without WebCrypto.
HASH_FIVE_WAYS = """async (cases) => {
    const digests = [];
    for (const [encoded, chunkSize] of cases) {
        const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
        const blob = new Blob([bytes]);
        const pieces = new m.Sha256();
        for (let offset = 0, step = 1; offset < bytes.length; offset += step, step++) {
            pieces.update(bytes.subarray(offset, offset + step));
        }
        digests.push({
            once: new m.Sha256().update(bytes).hexdigest(),
            pieces: pieces.hexdigest(),
            chunks: await m.hashBlob(blob, { chunkSize }),
            js: await m.digestBlob(blob, { chunkSize, webCrypto: false }),
            webcrypto: await m.digestBlob(blob, { chunkSize }),
        });
    }
    return digests;
}"""


def test_sha256_matches_hashlib_at_block_and_padding_edges_and_on_known_vectors(modules):
    assert modules.evaluate("m.webCryptoFor(1) !== null")  # 127.0.0.1 is a secure context
    cases = [
        (os.urandom(size), chunk_size)
        for size in [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 121, 127, 128, 129, 1000]
        for chunk_size in (7, 64, 65)  # the pieces fed to Sha256.update() cover every other split
    ]
    vectors = [b"", b"abc", b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", b"a" * 1_000_000]
    cases += [(data, 65_537) for data in vectors]
    results = modules.evaluate(HASH_FIVE_WAYS, [[_b64(data), chunk_size] for data, chunk_size in cases])
    for (data, chunk_size), digests in zip(cases, results, strict=True):
        expected = hashlib.sha256(data).hexdigest()
        assert digests == dict.fromkeys(digests, expected), f"{len(data)} bytes, chunks of {chunk_size}"


def test_sha256_of_a_file_in_chunks_reports_progress(modules, tmp_path):
    """A real File of 3 MiB + 3 bytes (no multiple of 64), hashed a slice at a time with progress."""
    data = os.urandom(3 * MiB + 3)
    path = tmp_path / "random.bin"
    path.write_bytes(data)
    modules.set_input_files("#file", str(path))
    for chunk_size in [MiB, MiB + 5, 1_000_003]:
        result = modules.evaluate(
            """async (chunkSize) => {
                const file = document.getElementById("file").files[0];
                const seen = [];
                const onProgress = (done, total) => seen.push([done, total]);
                const js = await m.hashBlob(file, { chunkSize, onProgress });
                const webcrypto = await m.digestBlob(file, { chunkSize });
                return { js, webcrypto, seen };
            }""",
            chunk_size,
        )
        assert result["js"] == result["webcrypto"] == hashlib.sha256(data).hexdigest()
        assert len(result["seen"]) == -(-len(data) // chunk_size)
        assert result["seen"][-1] == [len(data), len(data)]
        assert [done for done, _ in result["seen"]] == sorted(done for done, _ in result["seen"])
    error = modules.evaluate(
        """() => {
            const hash = new m.Sha256().update(new Uint8Array([1, 2, 3]));
            hash.hexdigest();
            try { hash.update(new Uint8Array([4])); } catch (error) { return error.message; }
            return null;
        }"""
    )
    assert error and "finished" in error, "a finished hash takes no more bytes"


# -- The hashing workers ----------------------------------------------------------------------


# Hash the parts of the input's File with a HashPool; each part's checksum, method and thread, the most
# jobs seen running at once, and the last progress each part reported.
HASH_PARTS = """async ([partSize, options]) => {
    const file = document.getElementById("file").files[0];
    const pool = new m.HashPool(options);
    let running = 0, most = 0;
    const last = {};
    const jobs = [];
    for (let start = 0, n = 1; start < file.size; start += partSize, n++) {
        running++;
        most = Math.max(most, pool.busy.size);
        jobs.push(pool.hash(file.slice(start, start + partSize), (done, total) => {
            last[n] = [done, total];
            most = Math.max(most, pool.busy.size);
        }).finally(() => running--));
    }
    const results = await Promise.all(jobs);
    const workers = pool.workers.length;
    pool.terminate();
    return { results, most, last, workers };
}"""


def test_hash_pool_hashes_parts_in_workers_with_webcrypto_or_javascript(modules, tmp_path):
    part_size = MiB + 1  # parts that start at no block boundary
    data = os.urandom(5 * MiB + 12_345)
    path = tmp_path / "parts.bin"
    path.write_bytes(data)
    modules.set_input_files("#file", str(path))
    parts = [data[start : start + part_size] for start in range(0, len(data), part_size)]
    for web_crypto in (True, False):
        options = {"workers": 3, "chunkSize": 256 * 1024, "webCrypto": web_crypto}
        outcome = modules.evaluate(HASH_PARTS, [part_size, options])
        assert [r["checksum"] for r in outcome["results"]] == [hashlib.sha256(p).hexdigest() for p in parts]
        assert {r["thread"] for r in outcome["results"]} == {"worker"}
        assert {r["method"] for r in outcome["results"]} == {"webcrypto" if web_crypto else "js"}
        assert outcome["workers"] == 3 and outcome["most"] == 3  # three parts were hashed at once
        # Each part reported its progress up to its own size.
        assert {int(n): done for n, (done, _) in outcome["last"].items()} == {
            n: len(part) for n, part in enumerate(parts, start=1)
        }

    # Parts above webCryptoMax are hashed by the JavaScript SHA-256 (WebCrypto would hold them whole).
    outcome = modules.evaluate(HASH_PARTS, [2 * MiB + 3, {"workers": 2, "webCryptoMax": 2 * MiB}])
    assert [r["method"] for r in outcome["results"]] == ["js", "js", "webcrypto"]
    assert [r["checksum"] for r in outcome["results"]] == [
        hashlib.sha256(data[i : i + 2 * MiB + 3]).hexdigest() for i in range(0, len(data), 2 * MiB + 3)
    ]


def test_hash_pool_falls_back_to_the_main_thread_when_no_worker_starts(modules, tmp_path, static_server):
    data = os.urandom(MiB + 99)
    path = tmp_path / "fallback.bin"
    path.write_bytes(data)
    modules.set_input_files("#file", str(path))
    options = {"workers": 2, "workerUrl": f"{static_server}/no-such-worker.js"}
    outcome = modules.evaluate(HASH_PARTS, [300_000, options])
    assert {r["thread"] for r in outcome["results"]} == {"main"}
    assert outcome["workers"] == 0
    assert [r["checksum"] for r in outcome["results"]] == [
        hashlib.sha256(data[i : i + 300_000]).hexdigest() for i in range(0, len(data), 300_000)
    ]


def test_hash_pool_terminate_rejects_what_is_left(modules, tmp_path):
    data = os.urandom(4 * MiB)
    path = tmp_path / "stop.bin"
    path.write_bytes(data)
    modules.set_input_files("#file", str(path))
    codes = modules.evaluate(
        """async () => {
            const file = document.getElementById("file").files[0];
            const pool = new m.HashPool({ workers: 1, webCrypto: false, chunkSize: 65536 });
            const jobs = [0, 1, 2, 3].map((i) => pool.hash(file.slice(i * 1048576, (i + 1) * 1048576)));
            pool.terminate();
            return Promise.all(jobs.map((job) => job.then(() => "hashed", (error) => error.code)));
        }"""
    )
    assert codes == ["aborted"] * 4


# -- The resume store (IndexedDB) ----------------------------------------------------------------


def test_resume_store_keeps_records_across_a_reload(modules, static_server, tmp_path):
    path = tmp_path / "scan.bin"
    path.write_bytes(b"some bytes")
    modules.set_input_files("#file", str(path))
    key = modules.evaluate(
        """async () => {
            const file = document.getElementById("file").files[0];
            const key = m.resumeKey(file, { ownerType: "patient", ownerId: "7", name: "xray" });
            const store = new m.ResumeStore();
            await store.put({ key, ticketId: "t-1", partSize: 5242880, checksums: { 1: "ab" },
                              urls: { 1: { method: "PUT", url: "https://s3/p1", headers: {} } },
                              expiresAt: new Date(Date.now() + 3600e3).toISOString() });
            return key;
        }"""
    )
    modules.reload()
    modules.evaluate('async () => { window.m = await import("./resume.js"); }')
    record = modules.evaluate("async (key) => new m.ResumeStore().get(key)", key)
    assert record["ticketId"] == "t-1" and record["checksums"] == {"1": "ab"}
    assert record["urls"]["1"]["url"] == "https://s3/p1" and isinstance(record["savedAt"], int)
    modules.evaluate("async (key) => new m.ResumeStore().delete(key)", key)
    assert modules.evaluate("async (key) => new m.ResumeStore().get(key)", key) is None


def test_resume_key_tells_files_and_targets_apart_and_expired_records_are_pruned(modules):
    keys = modules.evaluate(
        """() => {
            const file = (name, size, lastModified) => new File([new Uint8Array(size)], name, { lastModified });
            const target = { ownerType: "patient", ownerId: "7", name: "xray" };
            return [
                m.resumeKey(file("a.bin", 10, 1000), target),
                m.resumeKey(file("a.bin", 10, 1000), target),                    // the same again
                m.resumeKey(file("b.bin", 10, 1000), target),                    // another name
                m.resumeKey(file("a.bin", 11, 1000), target),                    // another size
                m.resumeKey(file("a.bin", 10, 2000), target),                    // modified since
                m.resumeKey(file("a.bin", 10, 1000), { ...target, ownerId: "8" }),
                m.resumeKey(file("a.bin", 10, 1000), { ...target, ownerType: "plan_item" }),
                m.resumeKey(file("a.bin", 10, 1000), { ...target, name: "" }),
            ];
        }"""
    )
    assert keys[0] == keys[1]
    assert len(set(keys[1:])) == len(keys) - 1

    left = modules.evaluate(
        """async () => {
            const store = new m.ResumeStore({ database: "prune-test" });
            const hour = 3600e3;
            await store.put({ key: "old", expiresAt: new Date(Date.now() - hour).toISOString() });
            await store.put({ key: "new", expiresAt: new Date(Date.now() + hour).toISOString() });
            const removed = await store.prune();
            return { removed, keys: (await store.all()).map((record) => record.key) };
        }"""
    )
    assert left == {"removed": 1, "keys": ["new"]}


def test_resume_store_does_nothing_without_indexeddb(modules):
    outcome = modules.evaluate(
        """async () => {
            const saved = Object.getOwnPropertyDescriptor(globalThis, "indexedDB");
            Object.defineProperty(globalThis, "indexedDB", { value: undefined, configurable: true });
            try {
                const store = new m.ResumeStore({ database: "absent" });
                await store.put({ key: "k", ticketId: "t" });
                return { got: await store.get("k"), all: await store.all() };
            } finally {
                Object.defineProperty(globalThis, "indexedDB", saved);
            }
        }"""
    )
    assert outcome == {"got": None, "all": []}


# -- End to end, against the live example project -----------------------------------------------

USERNAME, PASSWORD = "north", "north-demo"  # staff of "Northside Dental", from seed_demo
PART_SIZE = 5 * MiB  # S3's smallest part, so that tens of MiB make several parts

# The example project's settings, through its environment: multipart uploads from 5 MiB on, in parts of
# 5 MiB, files up to 1 GiB.
LIVE_ENV = {
    "ATTACHMENTS_MULTIPART_THRESHOLD": str(PART_SIZE),
    "ATTACHMENTS_MULTIPART_PART_SIZE": str(PART_SIZE),
    "ATTACHMENTS_MAX_UPLOAD_SIZE": str(1024 * MiB),
}

# The page the uploads run on: one of the live server's own (its origin's session cookie, CSRF token and
# IndexedDB; a page the browser made up itself would have no address, and Chromium would keep it from
# reaching the storage on 127.0.0.1), given a file input and a progress bar.
HOST_PATH = "/api/attachments/"
ADD_INPUT = """() => document.body.insertAdjacentHTML(
    "afterbegin", '<input type="file" id="file"> <progress id="bar" max="1" value="0"></progress>'
)"""


# Start an upload of the input's file; its progress events (and the bar's values) are recorded in
# window.events, its outcome in window.outcome.
START_UPLOAD = """async (options) => {
    const { Uploader, csrfFromCookie } = await import("/static/django_attachments/uploader.js");
    const file = document.getElementById("file").files[0];
    const bar = document.getElementById("bar");
    const uploader = new Uploader(file, { ...options, headers: csrfFromCookie() });
    window.events = [];
    window.bar = [];
    window.outcome = null;
    uploader.addEventListener("progress", ({ detail }) => {
        window.events.push(detail);
        bar.value = detail.sent / detail.total;
        window.bar.push(bar.value);
    });
    uploader.addEventListener("abort", () => { window.aborted = true; });
    uploader.addEventListener("error", ({ detail }) => { window.errors.push(detail.error.code); });
    window.aborted = false;
    window.errors = [];
    uploader.start().then(
        (attachment) => { window.outcome = { attachment }; },
        (error) => { window.outcome = { error: { code: error.code, detail: error.detail } }; },
    );
    window.uploader = uploader;
}"""


@pytest.fixture(scope="module", params=["disk", "s3-seaweedfs"])
def live(request, tmp_path_factory):
    """The example project served live with multipart uploads from 5 MiB, on local disk or SeaweedFS."""
    workdir = tmp_path_factory.mktemp(f"live-{request.param}")
    env = dict(LIVE_ENV)
    endpoint = None
    if request.param.startswith("s3-"):  # the browser PUTs to presigned URLs of another origin (it allows any)
        s3_server = get_s3_server(request, request.param.removeprefix("s3-"))
        endpoint = s3_server.endpoint
        env |= {
            "STORAGE_BACKEND": "s3",
            "AWS_STORAGE_BUCKET_NAME": s3_server.make_bucket(),
            "AWS_S3_ENDPOINT_URL": endpoint,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        }
    with example_server(workdir / "server", env=env) as server:
        patients = server.manage(
            "shell", "-c", "from patients.models import Patient; print(Patient.objects.get(record_number='N-0002').pk)"
        )
        assert patients.returncode == 0, patients.stderr
        yield Live(server, endpoint, patient=patients.stdout.split()[-1])


class Live:
    """The live server: its URL, the patient the uploads are for, and how its storage's part URLs look."""

    def __init__(self, server, s3_endpoint, patient):
        self.server, self.s3_endpoint, self.patient = server, s3_endpoint, patient
        self.api = f"{server.url}/api/attachments/"

    def part_number(self, url: str) -> int | None:
        """The part a URL sends, if it is one: S3's partNumber, or the API's own part URL."""
        parsed = urlsplit(url)
        if self.s3_endpoint is not None:
            if not url.startswith(self.s3_endpoint + "/"):
                return None
            number = parse_qs(parsed.query).get("partNumber")
            return int(number[0]) if number else None
        match = re.fullmatch(r"/api/attachments/uploads/[^/]+/parts/(\d+)", parsed.path)
        return int(match.group(1)) if match and url.startswith(self.server.url) else None


class Exchanges:
    """What a page sent: each part PUT's (number, status), API calls as (method, path, status)."""

    def __init__(self, page, live: Live):
        self.live = live
        self.parts: list[tuple[int, int]] = []
        self.puts: list[tuple[str, int]] = []  # every PUT: (url, status)
        self.api: list[tuple[str, str, int]] = []
        page.on("response", self._record)
        page.on("requestfailed", self._failed)

    def _record(self, response):
        request = response.request
        if request.method == "PUT":
            self.puts.append((request.url, response.status))
        number = self.live.part_number(request.url)
        if number is not None and request.method == "PUT":
            self.parts.append((number, response.status))
        elif request.method != "PUT" and request.url.startswith(self.live.api + "uploads/"):
            self.api.append((request.method, urlsplit(request.url).path, response.status))

    def _failed(self, request):
        number = self.live.part_number(request.url)
        if number is not None and request.method == "PUT":
            self.parts.append((number, 0))

    def accepted(self) -> set[int]:
        return {number for number, status in self.parts if 200 <= status < 300}

    def clear(self):
        self.parts.clear()
        self.puts.clear()
        self.api.clear()


def live_page(page, live: Live):
    """Log ``page`` in as clinic staff, on a page of the live server with a file input and a progress bar."""
    page.goto(f"{live.server.url}/api-auth/login/?next={HOST_PATH}")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("#submit-id-submit")
    page.wait_for_url(f"{live.server.url}{HOST_PATH}")
    page.evaluate(ADD_INPUT)
    return Exchanges(page, live)


def upload(page, path, live: Live, **options):
    """Pick ``path`` in the input and start uploading it to the live patient; do not wait."""
    page.set_input_files("#file", str(path))
    page.evaluate(START_UPLOAD, {"ownerType": "patient", "ownerId": live.patient, **options})


def outcome(page, timeout: float = 60_000) -> dict:
    page.wait_for_function("window.outcome !== null", timeout=timeout)
    return page.evaluate("window.outcome")


def random_file(tmp_path, name: str, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def check_attached(page, live: Live, attachment: dict, data: bytes, name: str) -> None:
    """The attachment is the file's bytes, under its name, for the patient."""
    assert attachment["checksum"] == hashlib.sha256(data).hexdigest()
    assert attachment["size"] == len(data) and attachment["filename"] == name
    assert (attachment["owner_type"], attachment["owner_id"]) == ("patient", live.patient)
    # Downloaded and hashed in the page (tens of MiB would crawl through the browser's protocol).
    downloaded = page.evaluate(
        """async (url) => {
            const response = await fetch(url);
            const digest = await crypto.subtle.digest("SHA-256", await response.arrayBuffer());
            const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
            return [response.status, hex];
        }""",
        attachment["download_url"],
    )
    assert downloaded == [200, attachment["checksum"]]


def resume_records(page) -> list:
    """The uploads the page's IndexedDB remembers."""
    return page.evaluate(
        """async () => {
            const { ResumeStore } = await import("/static/django_attachments/resume.js");
            return new ResumeStore().all();
        }"""
    )


def throttle(cdp, upload_bytes_per_second: int | None) -> None:
    """Make the browser's uploads this slow (None: as fast as they go)."""
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_bytes_per_second or -1},
    )


def phases(page) -> list[str]:
    """The phases the progress events went through, each once."""
    seen = [event["phase"] for event in page.evaluate("window.events")]
    return [phase for i, phase in enumerate(seen) if i == 0 or seen[i - 1] != phase]


def test_multipart_upload_with_a_moving_progress_bar(page, live, tmp_path):
    size = 4 * PART_SIZE + 12_345  # five parts, the last a small one
    path, data = random_file(tmp_path, "scan-series.bin", size)
    exchanges = live_page(page, live)
    # A link of 16 MiB/s, so that the bar has time to move within a part (on loopback a part goes at once).
    throttle(page.context.new_cdp_session(page), 16 * MiB)
    upload(page, path, live, concurrency=2, singlePutMax=PART_SIZE)  # the server's threshold: no whole hash
    done = outcome(page)
    assert "attachment" in done, done
    check_attached(page, live, done["attachment"], data, "scan-series.bin")

    # Each part went once, and was taken at once.
    assert sorted(exchanges.parts) == [(n, 200 if live.s3_endpoint else 204) for n in range(1, 6)]
    starts = [call for call in exchanges.api if call[0] == "POST" and call[1].endswith("/uploads/")]
    assert [status for *_, status in starts] == [201]
    events = page.evaluate("window.events")
    assert events[-1] == {"phase": "done", "hashed": size, "sent": size, "verified": size, "total": size}
    # The bar moved as the bytes went, within parts and not only when each was taken, and never back.
    sent = [event["sent"] for event in events]
    assert sent == sorted(sent)
    within = {value for value in sent if value % PART_SIZE and value != size}
    assert len(within) >= 5, "; ".join(f"{e['phase']} {e['hashed']} {e['sent']}" for e in events)
    bar = page.evaluate("window.bar")
    assert bar == sorted(bar) and bar[-1] == 1 and len(set(bar)) >= 10
    phases = [event["phase"] for event in events]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [
        "starting",
        "sending",
        "verifying",
        "done",
    ]
    assert resume_records(page) == []  # forgotten once done


def test_upload_cut_off_resumes_after_a_reload_without_sending_parts_again(page, live, tmp_path):
    parts = 6
    size = parts * PART_SIZE - 777
    path, data = random_file(tmp_path, "cbct.bin", size)
    exchanges = live_page(page, live)

    # On a link of 16 MiB/s, the network goes down for the parts once two have been taken: the parts on
    # their way arrive, the rest fail after their retries.
    cdp = page.context.new_cdp_session(page)
    throttle(cdp, 16 * MiB)
    upload(page, path, live, concurrency=2, retries=2, retryDelay=50, singlePutMax=PART_SIZE)
    page.wait_for_function(f"window.events.some((event) => event.verified >= {2 * PART_SIZE})")
    page.route(lambda url: live.part_number(url) is not None, lambda route: route.abort("internetdisconnected"))
    failed = outcome(page)
    assert failed["error"]["code"] == "network_error", failed
    taken = exchanges.accepted()
    assert 2 <= len(taken) < parts, exchanges.parts
    assert any(status == 0 for _, status in exchanges.parts)  # refused by the cut, not by the storage
    (record,) = resume_records(page)
    assert record["partSize"] == PART_SIZE and len(record["checksums"]) >= len(taken)

    # The network is back; the page is reloaded and the same file picked again.
    page.unroute_all()
    throttle(cdp, None)
    page.reload()
    page.evaluate(ADD_INPUT)
    exchanges.clear()
    upload(page, path, live, concurrency=2, singlePutMax=PART_SIZE)
    done = outcome(page)
    assert "attachment" in done, done
    check_attached(page, live, done["attachment"], data, "cbct.bin")

    # Only the parts the storage did not hold went, once each; the same ticket, asked what it holds.
    resent = [number for number, _ in exchanges.parts]
    assert sorted(resent) == sorted(set(range(1, parts + 1)) - taken), (taken, exchanges.parts)
    ticket = f"/api/attachments/uploads/{record['ticketId']}/"
    assert ("GET", ticket, 200) in exchanges.api
    assert ("GET", ticket + "parts/", 200) in exchanges.api
    assert not [call for call in exchanges.api if call[:2] == ("POST", "/api/attachments/uploads/")]
    # The progress starts from the parts held: they count as hashed, sent and verified.
    held = sum(min(PART_SIZE, size - (n - 1) * PART_SIZE) for n in taken)
    sending = [event for event in page.evaluate("window.events") if event["phase"] == "sending"]
    assert sending[0]["sent"] == sending[0]["verified"] == sending[0]["hashed"] == held
    assert min(event["sent"] for event in sending) == held
    assert resume_records(page) == []

    # Had the page gone between the last part and forgetting the ticket, the record would still be there:
    # the ticket, completed, is completed again, which answers its attachment; nothing is sent.
    page.evaluate(
        """async (record) => {
            const { ResumeStore } = await import("/static/django_attachments/resume.js");
            await new ResumeStore().put(record);
        }""",
        record,
    )
    exchanges.clear()
    upload(page, path, live, singlePutMax=PART_SIZE)
    again = outcome(page)
    assert again["attachment"]["id"] == done["attachment"]["id"]
    assert exchanges.puts == [] and [(method, status) for method, _, status in exchanges.api] == [
        ("GET", 200),
        ("POST", 200),
    ]
    assert resume_records(page) == []


def test_a_remembered_ticket_that_failed_meanwhile_is_forgotten_and_the_upload_starts_over(page, live, tmp_path):
    size = 3 * PART_SIZE + 99
    path, data = random_file(tmp_path, "panoramic.bin", size)
    exchanges = live_page(page, live)
    cdp = page.context.new_cdp_session(page)
    throttle(cdp, 4 * MiB)  # the parts take seconds: time to cancel the ticket before they all arrive
    upload(page, path, live, concurrency=1, singlePutMax=PART_SIZE)
    page.wait_for_function(f"window.events.some((event) => event.verified >= {PART_SIZE})")
    # Cancelled elsewhere (another tab, an admin) while its parts go: the upload fails, its record stays.
    (first,) = resume_records(page)
    csrf = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    ticket = f"{live.api}uploads/{first['ticketId']}/"
    assert page.request.delete(ticket, headers={"X-CSRFToken": csrf}).status == 204
    failed = outcome(page)
    assert "error" in failed, failed
    assert [record["ticketId"] for record in resume_records(page)] == [first["ticketId"]]

    throttle(cdp, None)
    page.reload()
    page.evaluate(ADD_INPUT)
    exchanges.clear()
    upload(page, path, live, singlePutMax=PART_SIZE)
    done = outcome(page)
    assert "attachment" in done, done
    check_attached(page, live, done["attachment"], data, "panoramic.bin")
    # Asked about, found failed, forgotten: a new ticket, every part sent to it.
    calls = [(method, status) for method, _, status in exchanges.api]
    assert calls[:2] == [("GET", 200), ("POST", 201)], exchanges.api
    assert sorted(number for number, _ in exchanges.parts) == [1, 2, 3, 4]
    assert page.evaluate("window.uploader.ticket.id") != first["ticketId"]
    assert resume_records(page) == []


def test_a_corrupted_part_is_refused_by_the_storage_and_sent_again(page, live, tmp_path):
    size = 2 * PART_SIZE + 4321  # three parts
    path, data = random_file(tmp_path, "ortho.bin", size)
    exchanges = live_page(page, live)

    # Part 2's first PUT arrives with one byte changed (same length): the storage checks its SHA-256.
    corrupted = []

    def corrupt(route):
        number = live.part_number(route.request.url)
        if number == 2 and not corrupted:
            body = bytearray(data[PART_SIZE : 2 * PART_SIZE])
            body[12345] ^= 0xFF
            corrupted.append(number)
            route.continue_(post_data=bytes(body))
        else:
            route.continue_()

    page.route(lambda url: live.part_number(url) == 2, corrupt)
    # A file under singlePutMax: hashed whole first, so the start declares its SHA-256 (and completion checks it).
    upload(page, path, live, concurrency=3, retryDelay=50)
    done = outcome(page)
    assert "attachment" in done, done
    check_attached(page, live, done["attachment"], data, "ortho.bin")
    ok = 200 if live.s3_endpoint else 204
    by_part = {n: [status for number, status in exchanges.parts if number == n] for n in (1, 2, 3)}
    assert by_part == {1: [ok], 2: [400, ok], 3: [ok]}, exchanges.parts


def test_a_small_file_goes_in_one_put_and_known_bytes_are_not_sent_again(page, live, tmp_path):
    size = MiB + 17  # under the threshold: a single-PUT ticket, which wants the SHA-256 at the start
    path, data = random_file(tmp_path, "letter.bin", size)
    exchanges = live_page(page, live)
    upload(page, path, live)
    done = outcome(page)
    assert "attachment" in done, done
    check_attached(page, live, done["attachment"], data, "letter.bin")
    assert phases(page) == ["hashing", "starting", "sending", "verifying", "done"]
    assert [status for _, status in exchanges.puts] == [200 if live.s3_endpoint else 204]
    assert exchanges.parts == []
    assert [(method, status) for method, _, status in exchanges.api] == [("POST", 201), ("POST", 201)]

    # The same bytes again, for the same owner: attached already, nothing to send.
    exchanges.clear()
    upload(page, path, live)
    again = outcome(page)
    assert again["attachment"]["id"] == done["attachment"]["id"]
    assert phases(page) == ["hashing", "starting", "done"]
    assert exchanges.puts == [] and [(m, status) for m, _, status in exchanges.api] == [("POST", 200)]

    # singlePutMax below the server's threshold: declared without its SHA-256, refused for want of it,
    # then hashed and started again.
    path, data = random_file(tmp_path, "letter-2.bin", size)
    exchanges.clear()
    upload(page, path, live, singlePutMax=MiB)
    done = outcome(page)
    assert "attachment" in done, done
    check_attached(page, live, done["attachment"], data, "letter-2.bin")
    assert phases(page) == ["starting", "hashing", "starting", "sending", "verifying", "done"]
    assert [(m, status) for m, _, status in exchanges.api] == [("POST", 400), ("POST", 201), ("POST", 201)]


def test_abort_stops_the_transfers_cancels_the_ticket_and_forgets_it(page, live, tmp_path):
    path, _ = random_file(tmp_path, "video.bin", 4 * PART_SIZE)
    exchanges = live_page(page, live)
    throttle(page.context.new_cdp_session(page), 8 * MiB)  # slowly enough to abort it half-way
    upload(page, path, live, concurrency=1, singlePutMax=PART_SIZE)
    page.wait_for_function(f"window.events.some((event) => event.verified >= {PART_SIZE})")
    assert len(resume_records(page)) == 1
    page.evaluate("window.uploader.abort()")
    assert outcome(page) == {"error": {"code": "aborted", "detail": "The upload was aborted."}}
    assert page.evaluate("[window.aborted, window.errors]") == [True, []]  # an abort is no error
    ticket_id = page.evaluate("window.uploader.ticket.id")
    ticket = f"/api/attachments/uploads/{ticket_id}/"
    assert ("DELETE", ticket, 204) in exchanges.api
    assert resume_records(page) == []
    answer = page.request.get(f"{live.server.url}{ticket}")
    assert answer.ok and answer.json()["status"] == "failed" and answer.json()["error_code"] == "upload_cancelled"
    # Nothing more goes: the part on its way was dropped, and no other starts.
    sent = len(exchanges.puts)
    page.wait_for_timeout(1000)
    assert len(exchanges.puts) == sent and 1 <= len(exchanges.accepted()) < 4


def test_a_few_hundred_mib_in_parts_with_the_page_memory_flat(page, live, tmp_path):
    size = 300 * MiB + 1234
    path = tmp_path / "scan-archive.bin"
    digest = hashlib.sha256()
    with path.open("wb") as out:  # written (and hashed) a MiB at a time
        for offset in range(0, size, MiB):
            chunk = os.urandom(min(MiB, size - offset))
            digest.update(chunk)
            out.write(chunk)
    exchanges = live_page(page, live)
    upload(page, path, live, singlePutMax=PART_SIZE)
    # The page's own heap, sampled as the parts go: it never holds the file (the workers read one part each).
    page.evaluate(
        """() => {
            window.heap = 0;
            window.uploader.addEventListener("progress", () => {
                window.heap = Math.max(window.heap, performance.memory.usedJSHeapSize);
            });
        }"""
    )
    done = outcome(page, timeout=300_000)
    assert "attachment" in done, done
    assert done["attachment"]["checksum"] == digest.hexdigest() and done["attachment"]["size"] == size
    parts = -(-size // PART_SIZE)
    assert sorted(number for number, _ in exchanges.parts) == list(range(1, parts + 1))
    signs = [call for call in exchanges.api if call[0] == "POST" and call[1].endswith("/parts/")]
    assert 1 <= len(signs) <= parts
    heap = page.evaluate("window.heap")
    assert 0 < heap < 64 * MiB, heap
