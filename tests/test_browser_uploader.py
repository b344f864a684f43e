"""The packaged JavaScript uploader (static/django_attachments/) in a real browser.

First its parts that need no Django: the SHA-256 (against :mod:`hashlib` at
the 64-byte block and 56-byte padding edges, fed in uneven pieces, and through
WebCrypto), the pool of hashing workers (parts of a real File, several at once,
and its fallback to the main thread when no worker can start) and the IndexedDB
store that lets an upload resume after a reload. The static folder is served
over HTTP on 127.0.0.1 (module scripts and workers are not loaded from
``set_content`` pages); 127.0.0.1 is a secure context, so ``crypto.subtle``
exists there.

Headless Chromium, as in ``tests/test_browser.py``, whose ``page`` fixture
this module shares.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import django_attachments
from tests import test_browser

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
        for chunk_size in (1, 7, 64, 65)
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


def test_hash_pool_hashes_parts_in_workers(modules, tmp_path):
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


def test_hash_pool_uses_javascript_for_a_part_too_large_for_webcrypto(modules, tmp_path):
    data = os.urandom(2 * MiB + 7)
    path = tmp_path / "big-part.bin"
    path.write_bytes(data)
    modules.set_input_files("#file", str(path))
    options = {"workers": 2, "webCryptoMax": MiB}
    outcome = modules.evaluate(HASH_PARTS, [MiB + 3, options])  # parts of MiB + 3, MiB + 3 and 1 byte
    assert [r["method"] for r in outcome["results"]] == ["js", "js", "webcrypto"]
    assert [r["checksum"] for r in outcome["results"]] == [
        hashlib.sha256(data[i : i + MiB + 3]).hexdigest() for i in range(0, len(data), MiB + 3)
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
