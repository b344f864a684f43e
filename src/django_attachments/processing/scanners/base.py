"""The contract every malware scanner fulfils: a stream of bytes in, a verdict out.

::

    scanner = ClamdScanner.from_options({"socket": "/run/clamav/clamd.ctl"})
    with store.open(identifiers) as stream:
        result = scanner.scan(stream.chunks())   # ScanResult, or ScanError
    if not result.clean:
        ...  # result.signature names what was found

A scanner answers with a :class:`ScanResult` only when it scanned every byte
of the stream. Whatever keeps it from doing so (the daemon is down, hangs,
refuses the size, answers something unexpected) raises :class:`ScanError`,
never a clean result: a caller that only looks at ``result.clean`` cannot
mistake "not scanned" for "clean". Errors raised by the stream itself (a
storage failing mid-read) propagate unchanged.

A scanner's tunables are a frozen dataclass named by its ``options_class``,
built from a plain dict by :meth:`Scanner.from_options`, which names the exact
key at fault, as the stores' options do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import IO, Any, ClassVar, TypeVar

from ...exceptions import AttachmentError, AttachmentsImproperlyConfigured

#: What :meth:`Scanner.scan` takes: an iterable of bytes chunks (``RangeReader.chunks()``, a
#: generator, a list), a binary file object (read in the scanner's chunk size), or bytes.
Stream = Iterable[bytes] | IO[bytes] | bytes | bytearray | memoryview

S = TypeVar("S", bound="Scanner")


class ScanError(AttachmentError):
    """The stream could not be scanned: no verdict, which is never "clean".

    The message says why (daemon unreachable, timed out, closed the connection,
    unexpected reply) and names the daemon's address, for the logs; clients
    are told only that the scanner is unavailable.
    """

    code = "scan_unavailable"
    status_code = 503
    public_detail = "The malware scanner is unavailable; try again later."


class ScanTooLarge(ScanError, ValueError):
    """The scanner refused the stream as larger than it takes (clamd's ``StreamMaxLength``).

    Trying again does not help: the file stays unscanned until the scanner's
    limit is raised; where a scan is required, the file is too large to take
    (a 413, and a ``ValueError`` as the package's other size errors are).
    """

    code = "scan_too_large"
    status_code = 413
    public_detail = "The file is too large for the malware scanner."


@dataclass(frozen=True)
class ScanResult:
    """The verdict on a stream a scanner read to its end.

    ``clean`` is True when nothing was found; otherwise ``signature`` names
    what was (e.g. ``"Win.Test.EICAR_HDB-1"``). ``size`` is the number of bytes
    scanned, for the caller to compare with the file's size. ``detail`` is the
    scanner's own answer, for the logs.
    """

    clean: bool
    signature: str | None
    scanner: str
    size: int
    detail: str = ""

    def __post_init__(self) -> None:
        if self.clean and self.signature is not None:
            raise ValueError("A clean ScanResult has no signature.")
        if not self.clean and not self.signature:
            raise ValueError("A ScanResult that is not clean names its signature.")


@dataclass(frozen=True)
class ScannerOptions:
    """A scanner's tunables; a scanner that takes any subclasses this, one field per option."""

    def problems(self) -> dict[str, str]:
        """Each option whose value is wrong -> what it must be (empty when every value is right)."""
        return {}


class Scanner:
    """Base class of malware scanners.

    A subclass sets :attr:`name` and :attr:`options_class`, and provides
    :meth:`scan`. It holds no more than a bounded chunk of the stream at a
    time, whatever the stream's size.
    """

    #: The name results carry (:attr:`ScanResult.scanner`).
    name: ClassVar[str] = ""
    #: The options this scanner takes, with their defaults.
    options_class: ClassVar[type[ScannerOptions]] = ScannerOptions

    def __init__(self, options: ScannerOptions | None = None) -> None:
        self.options = self.options_class() if options is None else options
        for name, expected in self.options.problems().items():
            raise AttachmentsImproperlyConfigured(
                f"{type(self.options).__name__}.{name} must be {expected}, not {getattr(self.options, name)!r}."
            )

    @classmethod
    def from_options(cls: type[S], raw: Mapping[str, Any], *, where: str = "the scanner's options") -> S:
        """A scanner with the options of ``raw`` (a dict), checked.

        An unknown option or a wrong value raises
        :class:`~django_attachments.exceptions.AttachmentsImproperlyConfigured`
        naming the key, as ``{where}['timeout']``.
        """
        known = [field.name for field in fields(cls.options_class)]
        for name in raw:
            if name not in known:
                takes = f"its options are: {', '.join(known)}" if known else "it takes none"
                raise AttachmentsImproperlyConfigured(f"{where}[{name!r}] is not an option of {cls.__name__}; {takes}.")
        options = cls.options_class(**raw)
        for name, expected in options.problems().items():
            raise AttachmentsImproperlyConfigured(
                f"{where}[{name!r}] must be {expected}, not {getattr(options, name)!r}."
            )
        return cls(options)

    def scan(self, stream: Stream) -> ScanResult:
        """Scan every byte of ``stream``; the verdict, or :class:`ScanError` when there is none."""
        raise NotImplementedError(".scan() must be overridden.")

    def ping(self) -> None:
        """Return if the scanner can scan now; raise :class:`ScanError` saying why not.

        Asked by ``manage.py check --deploy``. The default answers yes: a
        scanner with nothing to ask (a library in this process) need not override it.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.options!r}>"


def iter_chunks(stream: Stream, chunk_size: int) -> Iterator[bytes | bytearray | memoryview]:
    """The chunks of ``stream``: a file object read ``chunk_size`` bytes at a time (never by lines,
    which could be the whole file), bytes as one chunk, any other iterable as it yields them."""
    if isinstance(stream, (bytes, bytearray, memoryview)):
        yield stream
        return
    read = getattr(stream, "read", None)
    if read is not None:
        while chunk := read(chunk_size):
            yield chunk
        return
    for chunk in stream:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"A scanner takes a stream of bytes chunks, not of {type(chunk).__name__}.")
        yield chunk
