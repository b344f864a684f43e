"""Any Range header, however malformed or absurd, is answered 200, 206 or 416 — never a server error.

On the API's download, the admin panel's and the blob admin's: the same
parser serves all three. A property test throws arbitrary headers at the
parser; the endpoints get the absurd ones people and fuzzers send.
"""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from django_attachments import services
from django_attachments.downloads import RangeNotSatisfiable, parse_range
from tests.apitools import body, download

SIZE = 10_240
HUGE = "9" * 5000  # past Python's int() digit limit (4300)

ABSURD = [
    f"bytes=0-{HUGE}",
    f"bytes={HUGE}-",
    f"bytes=-{HUGE}",
    f"bytes={HUGE}-{HUGE}",
    f"bytes=0{'0' * 5000}-1",
    f"bytes=1-{'0' * 5000}",
    "bytes=18446744073709551616-",
    "bytes=0-18446744073709551616",
    "bytes=-18446744073709551616",
    "bytes=9223372036854775807-",
    "bytes=\u0661-\u0662",  # Arabic-Indic digits: not digits to HTTP
    "bytes=\uff11-\uff12",  # full-width digits
    "bytes=5-1",
    "bytes=-",
    "bytes= 0-1",
    "BYTES=0-9",
    "bytes=0-9 ",
    "bytes=0-9\x00",
    "bytes=0--1",
    "bytes=-0",
    "bytes=0-0,-1",
    "bytes=" + ",".join(["0-1"] * 2000),
    "x" * 8000,
    "",
]


def check(header: str | None, size: int):
    try:
        result = parse_range(header, size)
    except RangeNotSatisfiable:
        return "416"
    if result is None:
        return "200"
    start, end = result
    assert 0 <= start <= end < size
    return "206"


@given(header=st.text(max_size=300), size=st.integers(min_value=0, max_value=2**63 - 1))
def test_any_text_parses_to_a_range_inside_the_file_or_none(header, size):
    check(header, size)


@given(
    first=st.one_of(st.just(""), st.integers(min_value=0, max_value=10**30).map(str)),
    last=st.one_of(st.just(""), st.integers(min_value=0, max_value=10**30).map(str)),
    zeros=st.integers(min_value=0, max_value=50),
    size=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_any_numbers_parse_to_a_range_inside_the_file_or_none(first, last, zeros, size):
    pad = "0" * zeros
    check(f"bytes={pad + first if first else ''}-{pad + last if last else ''}", size)


def test_huge_positions_mean_past_the_end():
    assert parse_range(f"bytes=0-{HUGE}", SIZE) == (0, SIZE - 1)
    assert parse_range(f"bytes=-{HUGE}", SIZE) == (0, SIZE - 1)
    assert parse_range(f"bytes=10-{'0' * 5000}20", SIZE) == (10, 20)
    with pytest.raises(RangeNotSatisfiable):
        parse_range(f"bytes={HUGE}-", SIZE)
    assert parse_range("bytes=\u0661-\u0662", SIZE) is None


@pytest.fixture
def stored(owners, store):
    data = bytes(range(256)) * (SIZE // 256)
    attachment = services.attach(
        ContentFile(data, name="r.bin"), owner_type="note", owner_id=str(owners.alice_note.pk), tenant=owners.tenant_a
    )
    return attachment, data


def _expect(response, header, data):
    assert response.status_code in (200, 206, 416), (header[:60], response.status_code)
    expected = check(header, len(data))
    assert str(response.status_code) == expected, header[:60]
    if response.status_code == 200:
        assert body(response) == data
    elif response.status_code == 206:
        start, end = parse_range(header, len(data))
        assert body(response) == data[start : end + 1]
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"private", "no-store"} <= directives  # the admin adds never_cache's own


@pytest.mark.parametrize("header", ABSURD, ids=range(len(ABSURD)))
def test_api_download_answers_absurd_ranges(staff, stored, header):
    attachment, data = stored
    _expect(staff["a"].get(download(attachment.pk), HTTP_RANGE=header), header, data)


@pytest.mark.parametrize("header", ABSURD, ids=range(len(ABSURD)))
def test_admin_downloads_answer_absurd_ranges(admin_client, stored, header):
    attachment, data = stored
    blob_url = reverse("admin:django_attachments_blob_download", args=[attachment.blob_id])
    _expect(admin_client.get(blob_url, HTTP_RANGE=header), header, data)
    panel_url = reverse("admin:testapp_note_attachments_download", args=[attachment.owner_id, attachment.pk])
    _expect(admin_client.get(panel_url, HTTP_RANGE=header), header, data)


@pytest.mark.parametrize("status", ["200", "304", "416"])
def test_every_download_answer_forbids_storing(staff, stored, status):
    attachment, data = stored
    headers = {
        "200": {},
        "304": {"HTTP_IF_NONE_MATCH": f'"{attachment.blob.checksum}"'},
        "416": {"HTTP_RANGE": f"bytes={SIZE}-"},
    }[status]
    response = staff["a"].get(download(attachment.pk), **headers)
    assert str(response.status_code) == status
    assert response["Cache-Control"] == "private, no-store"
