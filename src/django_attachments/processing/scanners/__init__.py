"""Malware scanners: a stream of bytes in, a verdict (:class:`ScanResult`) or :class:`ScanError` out.

::

    from django_attachments.processing.scanners import ClamdScanner, ScanError

    scanner = ClamdScanner.from_options({"host": "127.0.0.1", "port": 3310, "timeout": 5})
    try:
        result = scanner.scan(reader.chunks())
    except ScanError:
        ...  # not scanned: neither clean nor infected; try again later
    else:
        if not result.clean:
            ...  # result.signature

:mod:`.base` holds the contract (:class:`Scanner`) and its types; :mod:`.clamd`
the built-in scanner, which talks to ClamAV's daemon with no extra package.
"""

from .base import ScanError, Scanner, ScannerOptions, ScanResult, ScanTooLarge, Stream
from .clamd import ClamdOptions, ClamdScanner

__all__ = [
    "ClamdOptions",
    "ClamdScanner",
    "ScanError",
    "ScanResult",
    "ScanTooLarge",
    "Scanner",
    "ScannerOptions",
    "Stream",
]
