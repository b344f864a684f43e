"""Races between requests, over a live server: what one client sends never loses another's bytes.

The example project is served for real (``runserver``, a thread per request)
on SQLite, and — when the suite runs under ``python -m tests.pgcluster`` — on
PostgreSQL. Each round starts a direct upload (local disk: the bytes go to
the API's own upload URL), then at once, from several connections: two PUTs
of the bytes (two tabs) and three clients completing the ticket again and
again (a browser that retries). Whatever the interleaving:

- exactly one PUT is kept (204); the other is refused (409), never a 5xx;
- exactly one completion creates the attachment (201), the others answer it (200);
- every completed attachment downloads exactly its bytes, and
  ``verify_attachments`` finds every blob's object, with its checksum, at the end.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import re
import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.live import example_server

ROUNDS = int(os.environ.get("LIVE_RACE_ROUNDS", "40"))
USERNAME, PASSWORD = "north", "north-demo"  # staff of Northside Dental (seed_demo)
TIMEOUT = 60
#: The session cookie and CSRF token every request sends, as a browser would (set by the fixture).
SESSION: dict[str, str] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    database = "postgres" if os.environ.get("DJANGO_ATTACHMENTS_TEST_PG") else "sqlite"
    with example_server(tmp_path_factory.mktemp("race-server"), database=database) as server:
        SESSION.update(log_in(server.url))
        yield server
        SESSION.clear()


def _raw(base_url: str, method: str, path: str, body: bytes, headers: dict):
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Set-Cookie", ""), response.read()
    finally:
        conn.close()


def log_in(base_url: str) -> dict[str, str]:
    """Log in through the API's login form (a session: one password hash, not one per request)."""
    _, cookies, page = _raw(base_url, "GET", "/api-auth/login/", b"", {})
    csrf = re.search(r"csrftoken=([^;]+)", cookies).group(1)
    form = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    body = f"username={USERNAME}&password={PASSWORD}&csrfmiddlewaretoken={form}".encode()
    headers = {"Cookie": f"csrftoken={csrf}", "Content-Type": "application/x-www-form-urlencoded"}
    status, cookies, _ = _raw(base_url, "POST", "/api-auth/login/", body, headers)
    assert status == 302, status
    session = re.search(r"sessionid=([^;]+)", cookies).group(1)
    return {"Cookie": f"csrftoken={csrf}; sessionid={session}", "X-CSRFToken": csrf}


def request(base_url: str, method: str, path: str, *, body: bytes = b"", headers: dict | None = None):
    status, _, raw = _raw(base_url, method, path, body, {**SESSION, **(headers or {})})
    return status, raw


def api_json(base_url: str, method: str, path: str, payload: dict | None = None):
    status, raw = request(
        base_url,
        method,
        path,
        body=json.dumps(payload).encode() if payload is not None else b"",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw[:500]


def put(ticket: dict, data: bytes):
    parts = urlsplit(ticket["url"])
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.putrequest(ticket["method"], f"{parts.path}?{parts.query}")
        for name, value in ticket["headers"].items():
            conn.putheader(name, value)
        conn.endheaders()
        view = memoryview(data)
        for offset in range(0, len(data), 64 * 1024):  # in pieces, so that the server reads while others act
            conn.send(view[offset : offset + 64 * 1024])
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def patient_id(base_url: str) -> str:
    status, body = api_json(base_url, "GET", "/api/attachments/?owner_type=patient")
    assert status == 200, body
    return str(body["results"][0]["owner_id"])


def race(base_url: str, ticket: dict, data: bytes) -> tuple[list[int], list[tuple[int, object]]]:
    """Two PUTs of the bytes and three completing clients, released at once; their final answers."""
    complete_path = urlsplit(ticket["complete_url"]).path
    puts: list[int] = []
    completions: list[tuple[int, object]] = []
    barrier = threading.Barrier(5)

    def send():
        barrier.wait()
        puts.append(put(ticket, data)[0])

    def complete():
        barrier.wait()
        deadline = time.monotonic() + TIMEOUT
        while True:
            status, body = api_json(base_url, "POST", complete_path)
            waiting = status == 400 and isinstance(body, dict) and body.get("code") == "upload_missing"
            if not waiting or time.monotonic() > deadline:
                completions.append((status, body))
                return
            time.sleep(0.02)

    threads = [threading.Thread(target=send) for _ in range(2)] + [threading.Thread(target=complete) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return puts, completions


def test_puts_racing_completions_never_lose_the_bytes(server):
    owner_id = patient_id(server.url)
    rng = random.Random(12)
    completed: list[tuple[str, bytes]] = []
    problems: list[str] = []

    for round_number in range(ROUNDS):
        data = os.urandom(rng.randrange(1024, 1536 * 1024))
        status, started = api_json(
            server.url,
            "POST",
            "/api/attachments/uploads/",
            {
                "owner_type": "patient",
                "owner_id": owner_id,
                "filename": f"race-{round_number}.bin",
                "size": len(data),
                "checksum": hashlib.sha256(data).hexdigest(),
            },
        )
        assert status == 201 and started["upload"], started
        ticket = started["upload"]
        puts, completions = race(server.url, ticket, data)

        statuses = sorted(status for status, _ in completions)
        if sorted(puts) != [204, 409] or statuses != [200, 200, 201]:
            problems.append(f"round {round_number}: PUTs {sorted(puts)}, completions {completions}")
            continue
        attachment = next(body["attachment"] for status, body in completions if status == 201)
        assert all(body["attachment"]["id"] == attachment["id"] for _, body in completions)
        completed.append((attachment["download_url"], data))

    assert not problems, "\n".join(problems[:10]) + "\n" + server.log.read_text(errors="replace")[-4000:]
    for url, data in completed:
        status, body = request(server.url, "GET", urlsplit(url).path)
        assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(data).digest(), (url, status)
    verified = server.manage("verify_attachments", "--json")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]


# -- variants: many first requests for one lazy variant ------------------------------------------

VARIANT_ROUNDS = int(os.environ.get("LIVE_VARIANT_ROUNDS", "15"))
VARIANT_CLIENTS = 16


def upload_file(base_url: str, owner_id: str, filename: str, data: bytes) -> dict:
    boundary = f"----race{random.randrange(10**12)}"
    fields = {"owner_type": "patient", "owner_id": owner_id}
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, raw = request(
        base_url,
        "POST",
        "/api/attachments/",
        body=b"".join(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "application/json"},
    )
    assert status == 201, raw[:500]
    return json.loads(raw)


def noisy_jpeg(seed: int) -> bytes:
    import io

    from PIL import Image

    image = Image.frombytes("RGB", (480, 320), random.Random(seed).randbytes(480 * 320 * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_first_requests_for_a_lazy_variant_render_it_once(server):
    """Many clients ask for a variant nobody made yet, at once: one render, one answer for all, never a 5xx."""
    owner_id = patient_id(server.url)
    problems: list[str] = []
    for round_number in range(VARIANT_ROUNDS):
        attachment = upload_file(server.url, owner_id, f"photo-{round_number}.jpg", noisy_jpeg(round_number))
        path = urlsplit(attachment["variants"]["preview"]["url"]).path
        assert attachment["variants"]["preview"]["ready"] is False
        first: list[int] = []
        bodies: list[bytes] = []
        barrier = threading.Barrier(VARIANT_CLIENTS)

        def client(path=path, barrier=barrier, first=first, bodies=bodies):
            barrier.wait()
            deadline = time.monotonic() + TIMEOUT
            status, body = request(server.url, "GET", path)
            first.append(status)
            while status == 202 and time.monotonic() < deadline:
                time.sleep(0.05)
                status, body = request(server.url, "GET", path)
            bodies.append(body if status == 200 else f"status {status}".encode())

        threads = [threading.Thread(target=client) for _ in range(VARIANT_CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        renders = server.log.read_text(errors="replace").count(
            f"Rendering the 'preview' variant of blob {attachment['blob_id']}"
        )
        if set(first) - {200, 202} or len(set(bodies)) != 1 or renders != 1:
            problems.append(
                f"round {round_number}: first answers {sorted(first)}, {len(set(bodies))} bodies, {renders} renders"
            )
    assert not problems, "\n".join(problems[:10]) + "\n" + server.log.read_text(errors="replace")[-4000:]
    verified = server.manage("verify_attachments", "--json")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]


# -- multipart uploads: parts sent twice, completions, and a cancel, all at once -----------------

MULTIPART_ROUNDS = int(os.environ.get("LIVE_MULTIPART_ROUNDS", "15"))
PART = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def multipart_server(tmp_path_factory):
    """The example project with multipart uploads from 5 MiB up, in parts of 5 MiB (S3's smallest)."""
    database = "postgres" if os.environ.get("DJANGO_ATTACHMENTS_TEST_PG") else "sqlite"
    env = {"ATTACHMENTS_MULTIPART_THRESHOLD": str(PART), "ATTACHMENTS_MULTIPART_PART_SIZE": str(PART)}
    with example_server(tmp_path_factory.mktemp("race-multipart"), database=database, env=env) as server:
        saved = dict(SESSION)
        SESSION.clear()
        SESSION.update(log_in(server.url))
        yield server
        SESSION.clear()
        SESSION.update(saved)


def multipart_race(base_url: str, ticket: dict, parts: list, pieces: list, *, cancel: bool) -> list:
    """Each part sent twice, three completing clients and maybe a cancel, released at once; their answers."""
    answers: list[tuple[str, int, object]] = []
    barrier = threading.Barrier(2 * len(parts) + 3 + (1 if cancel else 0))
    complete_path = urlsplit(ticket["complete_url"]).path

    def send(part: dict) -> None:
        barrier.wait()
        status, body = put(part, pieces[part["number"] - 1])
        answers.append(("put", status, body[:200]))

    def complete() -> None:
        barrier.wait()
        deadline = time.monotonic() + TIMEOUT
        while True:
            status, body = api_json(base_url, "POST", complete_path)
            code = body.get("code") if isinstance(body, dict) else None
            if (status == 202 or (status == 400 and code == "parts_missing")) and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            answers.append(("complete", status, body))
            return

    def cancel_it() -> None:
        barrier.wait()
        time.sleep(random.random() * 0.05)
        status, body = api_json(base_url, "DELETE", f"/api/attachments/uploads/{ticket['id']}/")
        answers.append(("cancel", status, body))

    threads = [threading.Thread(target=send, args=(part,)) for part in parts * 2]
    threads += [threading.Thread(target=complete) for _ in range(3)]
    if cancel:
        threads.append(threading.Thread(target=cancel_it))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_parts_sent_twice_racing_completions_and_a_cancel_never_make_a_wrong_blob(multipart_server):
    """Each round: both parts sent twice at once (two tabs), three clients completing again and again, and
    in every third round a fourth cancelling. Either the upload completes (one 201, the other answers 200,
    the blob is exactly the file) or it is cancelled (every later answer 409); never a 5xx."""
    server = multipart_server
    owner_id = patient_id(server.url)
    rng = random.Random(17)
    completed: list[tuple[str, bytes]] = []
    problems: list[str] = []

    for round_number in range(MULTIPART_ROUNDS):
        data = os.urandom(PART + rng.randrange(1, 2 * 1024 * 1024))
        status, started = api_json(
            server.url,
            "POST",
            "/api/attachments/uploads/",
            {"owner_type": "patient", "owner_id": owner_id, "filename": f"mp-{round_number}.bin", "size": len(data)},
        )
        assert status == 201 and started["upload"]["multipart"], started
        ticket = started["upload"]
        pieces = [data[:PART], data[PART:]]
        wanted = [{"number": n, "checksum": hashlib.sha256(p).hexdigest()} for n, p in enumerate(pieces, 1)]
        status, signed = api_json(
            server.url, "POST", urlsplit(ticket["multipart"]["parts_url"]).path, {"parts": wanted}
        )
        assert status == 200, signed
        answers = multipart_race(server.url, ticket, signed["parts"], pieces, cancel=round_number % 3 == 2)

        if any(status >= 500 for _, status, _ in answers):
            problems.append(f"round {round_number}: a 5xx: {answers}")
            continue
        completions = sorted(status for kind, status, _ in answers if kind == "complete")
        cancelled = any(kind == "cancel" and status == 204 for kind, status, _ in answers)
        if cancelled:
            # Completions that came before the cancel may have answered 400 parts_missing; after it, 409.
            if any(status in (200, 201) for kind, status, _ in answers if kind == "complete"):
                problems.append(f"round {round_number}: cancelled, yet completed: {answers}")
            continue
        if completions != [200, 200, 201]:
            problems.append(f"round {round_number}: completions {completions}: {answers}")
            continue
        bodies = [body for kind, status, body in answers if kind == "complete"]
        attachment = next(body["attachment"] for body in bodies if body["upload"]["status"] == "completed")
        assert all(body["attachment"]["id"] == attachment["id"] for body in bodies)
        assert attachment["checksum"] == hashlib.sha256(data).hexdigest()
        completed.append((attachment["download_url"], data))

    assert not problems, "\n".join(problems[:10]) + "\n" + server.log.read_text(errors="replace")[-4000:]
    for url, data in completed:
        status, body = request(server.url, "GET", urlsplit(url).path)
        assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(data).digest(), (url, status)
    verified = server.manage("verify_attachments", "--json")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    purge = server.manage(
        "purge_orphan_attachments", "--json", "--dry-run", "--older-than", "0s", "--allow-young-strays"
    )
    assert purge.returncode == 0 and json.loads(purge.stdout)["multipart"]["found"] == 0, purge.stdout
