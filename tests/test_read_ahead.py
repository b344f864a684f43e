"""``ingest.read_ahead``: the chunks of a stream, read by a thread ahead of the caller (the read-back's hashing)."""

from __future__ import annotations

import threading
import time

import pytest

from django_attachments import ingest


def numbered(count: int, *, read: list[int] | None = None, fail_at: int | None = None):
    for number in range(count):
        if number == fail_at:
            raise OSError(f"connection reset at chunk {number}")
        if read is not None:
            read.append(number)
        yield number.to_bytes(4, "big")


def readers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "attachments-read-ahead"]


def test_every_chunk_arrives_once_and_in_order():
    with ingest.read_ahead(numbered(1000)) as chunks:
        assert [int.from_bytes(chunk, "big") for chunk in chunks] == list(range(1000))
    assert readers() == []


def test_the_reader_stays_at_most_depth_chunks_ahead():
    read: list[int] = []
    with ingest.read_ahead(numbered(100, read=read), depth=3) as chunks:
        first = next(chunks)
        time.sleep(0.3)  # time to read as far as it may
        # The queue holds three, and the reader holds one more it cannot hand over yet.
        assert int.from_bytes(first, "big") == 0 and len(read) == 5
        assert len(list(chunks)) == 99
    assert len(read) == 100


def test_a_failed_read_is_raised_where_its_chunk_would_have_been():
    got = []
    with pytest.raises(OSError, match="reset at chunk 7"), ingest.read_ahead(numbered(20, fail_at=7)) as chunks:
        for chunk in chunks:
            got.append(int.from_bytes(chunk, "big"))
    assert got == list(range(7)) and readers() == []


def test_leaving_early_stops_the_reader_before_the_stream_is_closed():
    read: list[int] = []
    source = numbered(10_000, read=read)
    with ingest.read_ahead(source, depth=2) as chunks:
        next(chunks)
    # The reader has stopped: nothing reads the stream after the block, so it can be closed.
    assert readers() == []
    stopped_at = len(read)
    time.sleep(0.2)
    assert len(read) == stopped_at < 10
    source.close()


def test_an_error_in_the_callers_block_stops_the_reader_too():
    with pytest.raises(ValueError, match="refused"), ingest.read_ahead(numbered(10_000)) as chunks:
        next(chunks)
        raise ValueError("refused")
    assert readers() == []
