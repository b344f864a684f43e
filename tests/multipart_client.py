"""A plain HTTP client of the multipart direct upload API, as a script or another language would write one.

It never holds the file: the bytes come from ``source(offset, length)``, one
chunk at a time, both to hash each part and to send it. Parts are hashed and
sent by a small pool of threads (``hashlib`` and sockets release the GIL),
each with its own connection. Used by the live tests and the benchmark::

    client = MultipartClient(base_url, auth_header)
    result = client.upload({"owner_type": "patient", "owner_id": "1", "filename": "cbct.bin"}, size, source)
    result.attachment["checksum"], result.seconds, result.parts_sent
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CHUNK = 1024 * 1024
TIMEOUT = 600

#: ``source(offset, length)`` yields ``length`` bytes of the file from ``offset``, in chunks.
Source = Callable[[int, int], Iterator[bytes]]


def pattern_source(seed: bytes) -> Source:
    """Reproducible bytes that never repeat a MiB: the MiB's index, then a block derived from ``seed``."""
    block = hashlib.sha512(seed).digest() * (CHUNK // 64)

    def source(offset: int, length: int) -> Iterator[bytes]:
        end = offset + length
        while offset < end:
            index, within = divmod(offset, CHUNK)
            data = index.to_bytes(8, "big") + block[8:]
            piece = data[within : within + min(CHUNK - within, end - offset)]
            yield piece
            offset += len(piece)

    return source


@dataclass
class Result:
    status: int
    body: Any
    seconds: float = 0.0
    parts_sent: int = 0
    polls: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def attachment(self) -> dict[str, Any]:
        return self.body["attachment"]


class MultipartClient:
    def __init__(self, base_url: str, auth: str, *, concurrency: int = 4) -> None:
        self.base_url, self.auth, self.concurrency = base_url, auth, concurrency
        self._local = threading.local()

    # -- HTTP -------------------------------------------------------------------------

    def _connection(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        key = (parts.hostname, parts.port)
        pool = getattr(self._local, "connections", None)
        if pool is None:
            pool = self._local.connections = {}
        if key not in pool:
            pool[key] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
        return pool[key]

    def request(self, method: str, url: str, payload: Any = None) -> tuple[int, Any, dict[str, str]]:
        """A JSON request to the API (``url`` absolute or a path); (status, parsed body, headers)."""
        if url.startswith("/"):
            url = self.base_url + url
        parts = urlsplit(url)
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Authorization": self.auth, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        connection = self._connection(url)
        try:
            connection.request(method, f"{parts.path}?{parts.query}" if parts.query else parts.path, body, headers)
            response = connection.getresponse()
            raw = response.read()
        except (http.client.HTTPException, OSError):
            connection.close()
            raise
        return response.status, json.loads(raw) if raw else None, dict(response.getheaders())

    def put(self, target: dict[str, Any], chunks: Iterator[bytes]) -> tuple[int, bytes]:
        """Send ``chunks`` as ``target`` (method, url, headers) says, streaming them."""
        url = target["url"]
        parts = urlsplit(url)
        connection = self._connection(url)
        try:
            connection.putrequest(target["method"], f"{parts.path}?{parts.query}", skip_accept_encoding=True)
            for name, value in target["headers"].items():
                connection.putheader(name, value)
            connection.endheaders()
            for chunk in chunks:
                connection.send(chunk)
            response = connection.getresponse()
            return response.status, response.read()
        except (http.client.HTTPException, OSError):
            connection.close()
            raise

    # -- the flow ---------------------------------------------------------------------

    def part_checksum(self, source: Source, offset: int, length: int) -> str:
        hasher = hashlib.sha256()
        for chunk in source(offset, length):
            hasher.update(chunk)
        return hasher.hexdigest()

    def upload(self, declaration: dict[str, Any], size: int, source: Source) -> Result:
        """Start, hash and send every part (4 at a time), complete, and poll until verified."""
        started = time.monotonic()
        status, body, _ = self.request("POST", "/api/attachments/uploads/", {**declaration, "size": size})
        if status not in (200, 201) or body["upload"] is None:
            return Result(status, body)
        ticket = body["upload"]
        multipart = ticket["multipart"]
        assert multipart is not None, ticket
        part_size, count = multipart["part_size"], multipart["part_count"]
        timings: dict[str, float] = {}

        def span(number: int) -> tuple[int, int]:
            offset = (number - 1) * part_size
            return offset, min(part_size, size - offset)

        def send(number: int, target: dict[str, Any]) -> None:
            offset, length = span(number)
            status, answer = self.put(target, source(offset, length))
            if status not in (200, 204):
                raise RuntimeError(f"part {number}: {status} {answer[:500]!r}")

        sent = 0
        with ThreadPoolExecutor(self.concurrency) as pool:
            for first in range(1, count + 1, 100):
                numbers = list(range(first, min(first + 100, count + 1)))
                checksums = list(pool.map(lambda n: self.part_checksum(source, *span(n)), numbers))
                wanted = [{"number": n, "checksum": c} for n, c in zip(numbers, checksums, strict=True)]
                status, signed, _ = self.request("POST", multipart["parts_url"], {"parts": wanted})
                if status != 200:
                    return Result(status, signed, time.monotonic() - started)
                list(pool.map(lambda part: send(part["number"], part), signed["parts"]))
                sent += len(numbers)
        timings["sent"] = time.monotonic() - started
        polls = 0
        while True:
            status, body, headers = self.request("POST", ticket["complete_url"], {})
            if status != 202:
                break
            polls += 1
            time.sleep(float(headers.get("Retry-After", "1")))
        timings["verified"] = time.monotonic() - started
        return Result(status, body, time.monotonic() - started, sent, polls, timings)
