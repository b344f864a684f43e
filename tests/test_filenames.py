"""Filenames are sanitised for display and headers, never used as storage keys."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_attachments.filenames import FALLBACK_FILENAME, sanitize_filename


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/absolute/path/scan.png", "scan.png"),
        ("C:\\Users\\me\\scan.png", "scan.png"),
        ("nul\x00byte.txt", "nulbyte.txt"),
        ("tab\tand\nnewline.txt", "tab and newline.txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("..", FALLBACK_FILENAME),
        ("...", FALLBACK_FILENAME),
        ("", FALLBACK_FILENAME),
        ("   ", FALLBACK_FILENAME),
        (None, FALLBACK_FILENAME),
        ("dir/", FALLBACK_FILENAME),
        ("trailing. ", "trailing"),
        (b"bytes-name.pdf", "bytes-name.pdf"),
        ("Cafe\u0301.txt", "Caf\u00e9.txt"),  # NFC
    ],
)
def test_sanitize(raw, expected):
    assert sanitize_filename(raw, max_length=255) == expected


def test_long_names_keep_their_extension():
    name = sanitize_filename("a" * 10_000 + ".pdf", max_length=255)
    assert len(name) == 255 and name.endswith(".pdf")


def test_long_name_without_extension():
    assert sanitize_filename("b" * 300, max_length=100) == "b" * 100


def test_default_length_comes_from_settings(settings):
    settings.DJANGO_ATTACHMENTS = {"MAX_FILENAME_LENGTH": 20}
    assert len(sanitize_filename("x" * 50 + ".txt")) == 20


@given(st.text(max_size=400))
def test_any_input_gives_a_safe_name(raw):
    name = sanitize_filename(raw, max_length=120)
    assert 0 < len(name) <= 120
    assert "/" not in name and "\\" not in name
    assert name not in {".", ".."}
    assert all(unicodedata.category(ch) not in {"Cc", "Cf", "Cs"} for ch in name)
    assert name == unicodedata.normalize("NFC", name) or len(name) == 120
