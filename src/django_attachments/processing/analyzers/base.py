"""The analyzer contract: a file's stream in, a flat dict of metadata out.

An analyzer reads what a file says about itself (an image's size, a PDF's page
count) without touching the database or a store: the service that runs it
decides when, opens the stream and records the result::

    analyzer = ImageAnalyzer()
    if analyzer.accepts(blob.content_type):
        with spooled_copy_of(blob) as stream:     # the caller's business
            metadata = analyzer.analyze(stream)  # {"image.width": 640, ...}

The stream
    A binary file-like object holding the whole file from offset 0. Every
    analyzer needs ``read(n)``; one whose :attr:`Analyzer.needs_seekable` is
    True (both built-ins) also needs ``seek()`` and ``tell()`` and refuses a
    stream whose ``seekable()`` is False with ``TypeError`` -- a store's
    ``RangeReader`` is not seekable, so the caller spools it to a temporary
    file first. An analyzer may seek anywhere and leaves the position
    anywhere; it never closes the stream. Each analyzer's docstring says which
    part of the file it reads.

The result
    A flat dict of JSON-able scalars (str, int, float, bool or None) whose keys
    are namespaced by the analyzer's :attr:`Analyzer.name`: ``image.width``,
    ``pdf.pages``. Every key is always present; None means "not known" (an
    encrypted PDF's page count).

Errors
    :class:`AnalysisError` -- the file is malformed, truncated or refused
    (a decompression bomb); its message can be shown to staff as it is.
    :class:`AnalysisUnavailable` -- the library or program the analyzer
    stands on is not installed (the ``analyze`` or ``dicom`` extra, FFmpeg's
    ``ffprobe``); :meth:`Analyzer.unavailable_reason`
    asks the same without a stream. :meth:`Analyzer.accepts` answers for the
    content type alone, so a missing library is reported, never mistaken for
    "nothing to analyze". An error of the stream itself (a storage failing
    mid-read) propagates as it is: it says nothing about the file.
"""

from __future__ import annotations

from typing import IO, Any

from ...exceptions import AttachmentError, AttachmentsImproperlyConfigured

#: What an analyzer returns: namespaced keys -> JSON-able scalars.
Metadata = dict[str, str | int | float | bool | None]

#: The most bytes one read of a parser may ask for (see :class:`ReadGuard`).
DEFAULT_MAX_READ_SIZE = 32 * 1024 * 1024


class AnalysisError(AttachmentError, ValueError):
    """The file is malformed, truncated or refused; the message says which, for staff to read."""

    code = "analysis_failed"
    status_code = 422


class AnalysisUnavailable(AttachmentsImproperlyConfigured):
    """The library or program an analyzer needs is not installed; the message names what brings it."""


class Analyzer:
    """Base of every analyzer.

    Subclasses set :attr:`name` and :attr:`content_types` and implement
    :meth:`analyze`; one that stands on an optional library overrides
    :meth:`unavailable_reason`.
    """

    #: The prefix of every key the analyzer returns ("image" -> "image.width").
    name: str = ""
    #: The sniffed content types the analyzer reads (see :meth:`accepts`).
    content_types: frozenset[str] = frozenset()
    #: Whether :meth:`analyze` needs ``seek()`` and ``tell()`` on its stream.
    needs_seekable: bool = True

    def accepts(self, content_type: str) -> bool:
        """Whether this analyzer reads files of ``content_type`` (parameters and case ignored).

        Answers for the type alone, whether or not the analyzer's library is installed.
        """
        return content_type.split(";", 1)[0].strip().lower() in self.content_types

    def unavailable_reason(self) -> str | None:
        """Why :meth:`analyze` cannot run here (a library missing), or None when it can."""
        return None

    def analyze(self, stream: IO[bytes]) -> Metadata:
        """The file's metadata, read from ``stream`` (see the module's docstring for the contract).

        Raises :class:`AnalysisError` for a malformed file and :class:`AnalysisUnavailable`
        when the analyzer's library is missing.
        """
        raise NotImplementedError(".analyze() must be overridden.")

    def check_stream(self, stream: IO[bytes]) -> None:
        """Refuse a stream this analyzer cannot read (a caller's bug, hence TypeError)."""
        if self.needs_seekable and not stream.seekable():
            raise TypeError(f"{type(self).__name__} needs a seekable stream; spool the file to a temporary file first.")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class ReadTooLarge(Exception):
    """A parser asked :class:`ReadGuard` for more bytes at once than it allows."""


class ReadGuard:
    """A stream as a parser of untrusted files sees it.

    It does two things a parser cannot: it remembers an error of the stream
    itself (:attr:`error`), so that a storage failing mid-read is told apart
    from the parser's complaint about the bytes; and it refuses (with
    :class:`ReadTooLarge`) any single read of more than ``max_read`` bytes, so
    that a parser falling back to reading the whole file at once (pypdf
    repairing a damaged PDF, Pillow's WebP plugin) cannot hold more than that
    in memory.
    """

    def __init__(self, stream: IO[bytes], max_read: int | None = None) -> None:
        self.stream = stream
        self.max_read = max_read
        #: The exception the stream itself raised, if any.
        self.error: BaseException | None = None
        #: The read refused for its size, if any: a parser may catch the error and carry on
        #: (pypdf does, around its repair), so callers check this rather than the exception.
        self.refused: ReadTooLarge | None = None
        self._size: int | None = None

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self.stream, method)(*args)
        except Exception as exc:
            self.error = exc
            raise

    def _remaining(self) -> int:
        if self._size is None:
            position = self.tell()
            self._size = self._call("seek", 0, 2)
            self._call("seek", position)
        return max(0, self._size - self.tell())

    def read(self, size: int | None = -1) -> bytes:
        # Small reads, a parser's usual diet, pass straight through.
        if self.max_read is not None and (size is None or size < 0 or size > self.max_read):
            want = self._remaining() if size is None or size < 0 else min(size, self._remaining())
            if want > self.max_read:
                self.refused = ReadTooLarge(f"a single read of {want} bytes, more than {self.max_read}")
                raise self.refused
        return self._call("read", -1 if size is None else size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._call("seek", offset, whence)

    def tell(self) -> int:
        return self._call("tell")

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def reraise_stream_error(self) -> None:
        """Raise the stream's own error again, if it failed: that is not the file's fault."""
        if self.error is not None:
            raise self.error
