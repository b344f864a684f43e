"""Request bodies: a file of random bytes made once, and payloads cut from it with known digests."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import CHUNK, TAIL


class Pool:
    """A file of random bytes, made once; payloads are its prefixes plus a unique tail."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._prefix_digests: dict[int, tuple[Any, int]] = {}
        with open(path, "wb") as out:
            remaining = size
            while remaining:
                n = min(CHUNK, remaining)
                out.write(os.urandom(n))
                remaining -= n
        self.fd = os.open(path, os.O_RDONLY)

    def prefix_digests(self, length: int) -> tuple[Any, int]:
        """(sha256 object, crc32) of the first ``length`` bytes; computed once per length."""
        if length not in self._prefix_digests:
            hasher, crc = hashlib.sha256(), 0
            for chunk in self.chunks(0, length):
                hasher.update(chunk)
                crc = zlib.crc32(chunk, crc)
            self._prefix_digests[length] = (hasher, crc)
        return self._prefix_digests[length]

    def chunks(self, start: int, end: int) -> Iterator[memoryview]:
        """Bytes [start, end) of the pool, 1 MiB at a time, in one reused buffer."""
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        position = start
        while position < end:
            n = os.preadv(self.fd, [view[: min(CHUNK, end - position)]], position)
            if n <= 0:
                raise RuntimeError("the pool file is shorter than expected")
            yield view[:n]
            position += n

    def close(self) -> None:
        os.close(self.fd)


class Payload:
    """``size`` bytes: the pool's first ``size - TAIL`` bytes, then TAIL unique ones."""

    def __init__(self, pool: Pool, size: int) -> None:
        if size <= TAIL or size > pool.size + TAIL:
            raise ValueError(f"payload size {size} out of range")
        self.pool = pool
        self.size = size
        self.base = size - TAIL
        self.tail = uuid.uuid4().hex.encode()[:TAIL].ljust(TAIL, b"-")
        hasher, crc = pool.prefix_digests(self.base)
        hasher = hasher.copy()
        hasher.update(self.tail)
        self.sha256 = hasher.hexdigest()
        self.crc32 = zlib.crc32(self.tail, crc)

    def chunks(self) -> Iterator[memoryview | bytes]:
        yield from self.pool.chunks(0, self.base)
        yield self.tail

    def slice_crc(self, start: int, end: int) -> int:
        """CRC-32 of bytes [start, end] (inclusive)."""
        crc = 0
        stop = end + 1
        for chunk in self.pool.chunks(start, min(stop, self.base)):
            crc = zlib.crc32(chunk, crc)
        if stop > self.base:
            crc = zlib.crc32(self.tail[max(start - self.base, 0) : stop - self.base], crc)
        return crc

    def reader(self) -> PayloadReader:
        return PayloadReader(self)


class PayloadReader(io.RawIOBase):
    """A seekable, read-only file object over a payload (for boto3)."""

    def __init__(self, payload: Payload) -> None:
        super().__init__()
        self.payload = payload
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.payload.size}[whence]
        self.position = max(base + offset, 0)
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        payload = self.payload
        want = min(len(view), payload.size - self.position)
        filled = 0
        while filled < want:
            if self.position < payload.base:
                n = os.preadv(
                    payload.pool.fd,
                    [view[filled : filled + min(want - filled, payload.base - self.position)]],
                    self.position,
                )
                if n <= 0:
                    raise OSError("short read from the pool file")
            else:
                offset = self.position - payload.base
                n = min(want - filled, TAIL - offset)
                view[filled : filled + n] = payload.tail[offset : offset + n]
            filled += n
            self.position += n
        return filled


def file_crc(path: str | Path) -> tuple[int, int]:
    """(size, CRC-32) of a file."""
    crc, size = 0, 0
    buffer = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            crc = zlib.crc32(memoryview(buffer)[:n], crc)
            size += n
    return size, crc
