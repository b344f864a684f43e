"""The HTTP client: streamed request bodies with an exact Content-Length, bodies read 1 MiB at a time."""

from __future__ import annotations

import http.client
import json
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any
from urllib.parse import urlsplit

from .config import CHUNK, SOCKET_TIMEOUT
from .payloads import Payload


def connect(base_url: str) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=SOCKET_TIMEOUT)


@dataclass
class Reply:
    status: int
    body: Any
    seconds: float
    received: int = 0
    crc32: int = 0
    headers: dict[str, str] = field(default_factory=dict)


def post_multipart(
    base_url: str,
    path: str,
    fields: dict[str, str],
    payload: Payload,
    filename: str,
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST ``fields`` and ``payload`` as multipart/form-data, streamed, with an exact Content-Length.

    ``headers``: more to send (credentials, a cookie).
    """
    boundary = f"----bench-{uuid.uuid4().hex}"
    preamble = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    preamble += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{boundary}--\r\n".encode()
    sent = {
        "Accept": "application/json",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(preamble) + payload.size + len(epilogue)),
        **(headers or {}),
    }
    status, raw, seconds = _stream(base_url, "POST", path, sent, chain([preamble], payload.chunks(), [epilogue]))
    return Reply(status, _parsed(raw), seconds)


def _stream(base_url: str, method: str, path: str, headers: dict[str, str], parts: Iterable[bytes]) -> tuple:
    """Send ``parts`` as the body, straight to the socket; (status, raw answer, seconds)."""
    conn = connect(base_url)
    started = time.perf_counter()
    try:
        conn.putrequest(method, path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        try:
            sock = conn.sock
            for part in parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early: read its answer below
        response = conn.getresponse()
        raw = response.read()
        return response.status, raw, time.perf_counter() - started
    finally:
        conn.close()


def _parsed(raw: bytes) -> Any:
    """The answer as JSON where it is JSON, else its first bytes."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:2000]


def get(base_url: str, path: str, headers: dict[str, str] | None = None) -> Reply:
    """GET ``path``, reading the body 1 MiB at a time into one buffer, with its CRC-32."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    crc, received = 0, 0
    conn = connect(base_url)
    started = time.perf_counter()
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        while n := response.readinto(buffer):
            crc = zlib.crc32(view[:n], crc)
            received += n
        seconds = time.perf_counter() - started
        reply_headers = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    return Reply(response.status, None, seconds, received, crc, reply_headers)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def post_json(
    base_url: str, path: str, data: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """POST ``data`` as JSON (an empty body for None); the answer parsed as JSON where it is JSON.

    ``headers``: more to send (credentials, a cookie).
    """
    body = b"" if data is None else json.dumps(data).encode()
    conn = connect(base_url)
    started = time.perf_counter()
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Accept": "application/json", "Content-Type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        raw = response.read()
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    return Reply(response.status, _parsed(raw), seconds)


def send_payload(method: str, url: str, headers: dict[str, str], payload: Payload) -> Reply:
    """Send ``payload`` to the absolute ``url`` with exactly ``headers`` (a direct upload's), streamed.

    The headers must carry the Content-Length (a direct upload's do); nothing
    is added but what ``http.client`` always sends (Host, Accept-Encoding).
    """
    status, raw, seconds = _stream(url, method, path_of(url), headers, payload.chunks())
    return Reply(status, raw[:2000], seconds)
