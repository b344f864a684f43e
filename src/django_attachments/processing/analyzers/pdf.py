"""PDF metadata with pypdf: page count, encryption, first page size, version.

::

    PdfAnalyzer().analyze(stream)
    # {"pdf.pages": 12, "pdf.encrypted": False, "pdf.page_width": 595.0, "pdf.page_height": 842.0,
    #  "pdf.version": "1.7"}

Keys: ``pdf.pages`` (the page tree's ``/Count``), ``pdf.encrypted``,
``pdf.page_width`` and ``pdf.page_height`` (the first page's MediaBox, in
points, before any ``/Rotate``; None for a PDF of no pages), ``pdf.version``
(from the ``%PDF-x.y`` header; None if the header has none).

An encrypted PDF is opened with the empty user password, as viewers do when
they open one without asking; if that fails (a password is set), the pages
and page size are None and ``pdf.encrypted`` is True -- not an error.

What is read (the stream must be seekable; pypdf reads a PDF from its end):
the header, the trailer and cross-reference table(s) at the end, the
catalog, and the page tree's nodes on the path down to the first page. Page
contents, fonts and images are never read, and the other pages' objects are
not loaded (``/Count`` is trusted instead of walking every page). The file is
read in pypdf's strict mode first, which trusts a sound cross-reference table;
only a file strict mode refuses is read again leniently, where pypdf checks
the table with a seek and a few bytes per object (through ranged reads of a
store, most of the file). What grows with the file is pypdf's
cross-reference table: one entry per object (about a third of a KiB each). A PDF whose
cross-reference table is damaged is repaired by pypdf from a scan of the whole
file held in memory; a file larger than ``max_read_size`` is refused instead.
"""

from __future__ import annotations

import re
from typing import IO, Any

from .base import DEFAULT_MAX_READ_SIZE, AnalysisError, AnalysisUnavailable, Analyzer, Metadata, ReadGuard

_VERSION = re.compile(r"[0-9]\.[0-9]")

#: The deepest page tree walked to the first page (real files nest a few levels; a loop never ends).
MAX_TREE_DEPTH = 64


def _pypdf() -> Any:
    try:
        import pypdf
    except ImportError as exc:
        raise AnalysisUnavailable(
            "PdfAnalyzer needs pypdf, which is not installed (install the 'analyze' extra)."
        ) from exc
    return pypdf


class PdfAnalyzer(Analyzer):
    """Pages, encryption, first page size and version of PDF documents.

    ``max_read_size``: the most bytes one read may take (only pypdf's repair
    of a damaged file reads more than a few objects at once).
    """

    name = "pdf"
    content_types = frozenset({"application/pdf"})

    def __init__(self, *, max_read_size: int = DEFAULT_MAX_READ_SIZE) -> None:
        if max_read_size < 1:
            raise ValueError("max_read_size must be positive.")
        self.max_read_size = max_read_size

    def unavailable_reason(self) -> str | None:
        try:
            _pypdf()
        except AnalysisUnavailable as exc:
            return str(exc)
        return None

    def analyze(self, stream: IO[bytes]) -> Metadata:
        pypdf = _pypdf()
        self.check_stream(stream)
        _check_end_marker(stream)
        guard = ReadGuard(stream, max_read=self.max_read_size)
        metadata: Metadata = {
            "pdf.pages": None,
            "pdf.encrypted": False,
            "pdf.page_width": None,
            "pdf.page_height": None,
            "pdf.version": None,
        }
        try:
            try:
                # Strict first: a sound file is read from its end (its cross-reference table) and
                # the path to its first page. pypdf's lenient mode, next, also reads the header of
                # every object to check the table: on a store read by ranges, most of the file.
                _read(pypdf, guard, metadata, strict=True)
            except AnalysisError:
                raise
            except Exception:
                guard.reraise_stream_error()
                if guard.refused is not None:
                    raise
                _read(pypdf, guard, metadata, strict=False)  # what strict refused, pypdf may repair
        except AnalysisError:
            raise
        except Exception as exc:
            guard.reraise_stream_error()
            if guard.refused is None:
                raise AnalysisError("The file is not a readable PDF: it is corrupt or truncated.") from exc
        if guard.refused is not None:
            raise AnalysisError(
                f"The PDF is damaged (its cross-reference table is broken), and larger than the "
                f"{self.max_read_size:,} bytes that can be read at once to repair it."
            ) from guard.refused
        return metadata


#: How far from its end a PDF's ``%%EOF`` may be (the format says 1,024 bytes; files with trailing junk exist).
EOF_SEARCH_BYTES = 1024 * 1024


def _check_end_marker(stream: IO[bytes]) -> None:
    """Refuse, with one read of its tail, a "PDF" with no ``%%EOF`` near its end.

    pypdf would look for the marker line by line backwards through the whole
    file: through a store read by ranges, a request every few dozen bytes
    (160,000 of them for 10 MiB of junk behind a PDF header).
    """
    size = stream.seek(0, 2)
    stream.seek(max(0, size - EOF_SEARCH_BYTES))
    tail = b""
    while chunk := stream.read(EOF_SEARCH_BYTES - len(tail)):
        tail += chunk
    stream.seek(0)
    if b"%%EOF" not in tail:  # truncated, or junk behind a PDF header
        raise AnalysisError("The file is not a readable PDF: it is corrupt or truncated.")


def _read(pypdf: Any, stream: ReadGuard, metadata: Metadata, *, strict: bool) -> None:
    stream.seek(0)
    reader = pypdf.PdfReader(stream, strict=strict)
    header = reader.pdf_header
    version = header[5:] if header.startswith("%PDF-") else ""
    metadata["pdf.version"] = version if _VERSION.fullmatch(version) else None
    metadata["pdf.encrypted"] = bool(reader.is_encrypted)
    # Locked by a password: the version and the lock are all there is to say.
    if not reader.is_encrypted or _open_without_password(pypdf, reader):
        pages, first_page = _page_tree(reader)
        metadata["pdf.pages"] = pages
        if first_page is not None:
            metadata["pdf.page_width"], metadata["pdf.page_height"] = first_page


def _open_without_password(pypdf: Any, reader: Any) -> bool:
    try:
        return bool(reader.decrypt(""))  # PasswordType.NOT_DECRYPTED is 0
    except pypdf.errors.DependencyError:  # AES without the cryptography package: as if locked
        return False


def _page_tree(reader: Any) -> tuple[int, tuple[float, float] | None]:
    """The page count and the first page's MediaBox size, walking only the path to the first page."""
    node = reader.trailer["/Root"].get_object()["/Pages"].get_object()
    count = node.get("/Count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise AnalysisError("The PDF's page tree has no valid page count.")
    if count == 0:
        return 0, None
    mediabox = None
    for _ in range(MAX_TREE_DEPTH):
        # MediaBox is inherited: the nearest node on the path that has one wins.
        mediabox = node.get("/MediaBox", mediabox)
        kids = node.get("/Kids")
        if kids is None:
            break
        kids = kids.get_object()
        if not kids:
            raise AnalysisError("The PDF's page tree is broken: a node lists no pages.")
        node = kids[0].get_object()
    else:
        raise AnalysisError("The PDF's page tree is broken: it is nested too deeply or loops.")
    if mediabox is None:
        return count, None
    left, bottom, right, top = (float(value) for value in mediabox.get_object())
    return count, (abs(right - left), abs(top - bottom))
