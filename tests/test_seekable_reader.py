"""stores.SeekableReader: random access to a stored object by ranged reads, on every store.

What the analyzers stand on: the bytes at any position are the object's, a
jump costs one ranged read of a small window, a sequential read widens its
window (few requests), and an object shorter than its recorded size is a
storage error, never silently short data.
"""

from __future__ import annotations

import hashlib
import io
import os
import random

import pytest
from django.core.files import File

from django_attachments.exceptions import StorageError
from django_attachments.stores import SeekableReader

KIB = 1024


def saved(store, data: bytes):
    return store.save(
        File(io.BytesIO(data)), size=len(data), checksum=hashlib.sha256(data).hexdigest(), content_type="x/y"
    )


@pytest.fixture
def stored(store):
    data = os.urandom(3 * 1024 * KIB + 123)
    return store, saved(store, data), data


def test_random_seeks_and_reads_return_the_objects_bytes(stored):
    store, identifiers, data = stored
    rng = random.Random(7)
    with SeekableReader.buffered(store, identifiers, len(data), window=64 * KIB) as stream:
        for _ in range(200):
            position = rng.randrange(0, len(data) + 10)
            size = rng.choice([1, 7, 4096, 70_000, 300_000])
            whence = rng.choice([os.SEEK_SET, os.SEEK_END])
            offset = position if whence == os.SEEK_SET else position - len(data)
            assert stream.seek(offset, whence) == position
            assert stream.read(size) == data[position : position + size]
            assert stream.tell() == min(position + size, max(position, len(data)))


def test_reading_to_the_end_is_the_whole_object_in_few_requests(stored):
    store, identifiers, data = stored
    raw = SeekableReader(store, identifiers, len(data), window=64 * KIB, max_window=1024 * KIB)
    with io.BufferedReader(raw) as stream:
        assert stream.read() == data
    # 64 KiB, doubled to 1 MiB (128 + 256 + 512 KiB), then 1 MiB at a time: about 7 ranges for 3 MiB.
    assert raw.requests <= 8 and raw.fetched == len(data)


def test_a_jump_fetches_a_window_not_the_rest_of_the_file(stored):
    store, identifiers, data = stored
    raw = SeekableReader(store, identifiers, len(data), window=32 * KIB)
    raw.seek(-100, os.SEEK_END)
    assert raw.read(100) == data[-100:]
    raw.seek(10)
    assert raw.read(10) == data[10:20]
    assert raw.requests == 2 and raw.fetched == 100 + 32 * KIB  # the tail's range ends at the end


def test_an_object_shorter_than_recorded_is_a_storage_error(stored):
    store, identifiers, data = stored
    with SeekableReader.buffered(store, identifiers, len(data) + 10) as stream:
        stream.seek(len(data) - 5)
        with pytest.raises(StorageError, match="ended before its recorded size"):
            stream.read(20)


def test_seeking_before_the_start_is_refused(stored):
    store, identifiers, data = stored
    raw = SeekableReader(store, identifiers, len(data))
    with pytest.raises(OSError):
        raw.seek(-1)
    with pytest.raises(ValueError):
        raw.seek(0, 5)
    assert raw.seekable() and raw.readable() and raw.tell() == 0
