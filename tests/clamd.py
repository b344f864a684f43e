"""A real clamd for the tests, with signatures of our own (none can be downloaded here).

A test module starts one for its session with :func:`running_clamd`; it is
skipped, with the reason, where clamd is not installed (CI installs it)::

    @pytest.fixture(scope="session")
    def clamd(tmp_path_factory):
        yield from running_clamd(tmp_path_factory)

The daemon loads two signatures:

- :data:`EICAR`, the standard 68-byte antivirus test file, by the MD5 and size
  of the whole stream (a ``.hdb`` line ``MD5:SIZE:NAME``): found only if every
  byte arrives, in order, and nothing else;
- :data:`MARKER`, a body signature (a ``.ndb`` line
  ``NAME:TARGET:OFFSET:HEX``, any file type, any offset): found wherever it
  lies in a stream, however large.

clamd names signatures from databases other than its own with a
``.UNOFFICIAL`` suffix: :data:`EICAR_FOUND` and :data:`MARKER_FOUND` are the
names its verdicts carry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from tests import servers

#: The EICAR test file (eicar.org): harmless, and found by every antivirus.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_SIGNATURE = "DjangoAttachments.Test.EICAR"
#: Bytes that no real file holds by chance, found anywhere in a stream.
MARKER = b"django-attachments synthetic malware marker \x00\x01\x02\xfd\xfe\xff"
MARKER_SIGNATURE = "DjangoAttachments.Test.Marker"

EICAR_FOUND = EICAR_SIGNATURE + ".UNOFFICIAL"
MARKER_FOUND = MARKER_SIGNATURE + ".UNOFFICIAL"

#: The session daemon's StreamMaxLength: above the largest stream a test scans (50 MiB).
STREAM_MAX_LENGTH = 64 * 1024 * 1024


def databases() -> dict[str, str]:
    """The signature database files clamd loads: file name -> content."""
    assert len(EICAR) == 68
    return {
        "tests.hdb": f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:{EICAR_SIGNATURE}\n",
        "tests.ndb": f"{MARKER_SIGNATURE}:0:*:{MARKER.hex()}\n",
    }


def skip_without_clamd() -> None:
    if servers.clamd_binary() is None:
        pytest.skip("clamd is not installed (Debian package clamav-daemon; .ci/run installs it)")


def running_clamd(tmp_path_factory: pytest.TempPathFactory, name: str = "clamd") -> Iterator[servers.Clamd]:
    """A clamd with :func:`databases`, until the generator is closed; skips the test without clamd."""
    skip_without_clamd()
    with servers.clamd_server(
        tmp_path_factory.mktemp(name), databases(), stream_max_length=str(STREAM_MAX_LENGTH)
    ) as clamd:
        yield clamd
