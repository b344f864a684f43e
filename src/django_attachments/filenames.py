"""Turning a client's filename into one that is safe to store and serve.

The filename is only ever shown back to people (and used in a
``Content-Disposition`` header); it is never part of a storage key. Still, it
must not smuggle paths, control characters or direction overrides::

    >>> sanitize_filename("../../etc/passwd")
    'passwd'
    >>> sanitize_filename("C:\\\\Users\\\\me\\\\scan\\u202egpj.exe")
    'scangpj.exe'
    >>> sanitize_filename("..")
    'file'
"""

from __future__ import annotations

import unicodedata

from .conf import app_settings

#: Used when nothing usable is left of the client's name.
FALLBACK_FILENAME = "file"
#: An extension longer than this is treated as part of the stem when shortening.
_MAX_EXTENSION = 16
# Unicode categories removed outright: controls (NUL included), format
# characters (bidi overrides, zero-width joiners), surrogates, unassigned and
# private-use code points, and line/paragraph separators.
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Cn", "Co", "Zl", "Zp"}


def sanitize_filename(name: object, *, max_length: int | None = None) -> str:
    """Return a safe, non-empty, NFC-normalised base name of at most ``max_length`` characters."""
    if max_length is None:
        max_length = app_settings.MAX_FILENAME_LENGTH
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="replace")
    if not isinstance(name, str):
        return FALLBACK_FILENAME
    # Keep the last path component, whichever separator the client used.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    # White space (tabs and newlines included) becomes a plain space; every
    # other control or format character is dropped.
    name = "".join(
        " " if ch.isspace() else ch
        for ch in name
        if ch.isspace() or unicodedata.category(ch) not in _DROPPED_CATEGORIES
    )
    name = " ".join(name.split())  # collapse runs of white space
    name = name.strip(" .")  # no leading/trailing dots: "..", ".", "name." are not names
    if not name:
        return FALLBACK_FILENAME
    return _shorten(name, max_length)


def _shorten(name: str, max_length: int) -> str:
    if len(name) <= max_length:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and 0 < len(extension) <= _MAX_EXTENSION and len(extension) + 2 <= max_length:
        return stem[: max_length - len(extension) - 1].rstrip(" .") + "." + extension
    return name[:max_length].rstrip(" .") or FALLBACK_FILENAME
