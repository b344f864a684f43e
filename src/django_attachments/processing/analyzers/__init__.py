"""Analyzers: what a file says about itself, read from its stream.

Each analyzer is a pure object -- no database, no store -- that the
processing service runs on a blob's bytes and whose flat, namespaced dict it
records (the contract is in :mod:`.base`)::

    from django_attachments.processing.analyzers import ImageAnalyzer

    analyzer = ImageAnalyzer(max_pixels=50_000_000)
    if analyzer.accepts("image/jpeg"):
        metadata = analyzer.analyze(spooled_file)  # {"image.width": ..., ...}

The built-ins stand on optional parts: Pillow for :class:`ImageAnalyzer` and
pypdf for :class:`PdfAnalyzer` (the ``analyze`` extra), pydicom for
:class:`DicomAnalyzer` (the ``dicom`` extra), and the ``ffprobe`` program of
FFmpeg for :class:`MediaAnalyzer`. Importing this package needs none of them.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .base import AnalysisError, AnalysisUnavailable, Analyzer, Metadata

if TYPE_CHECKING:
    from .dicom import DicomAnalyzer
    from .image import ImageAnalyzer
    from .media import MediaAnalyzer
    from .pdf import PdfAnalyzer

#: The built-ins, imported on first use (a renderer's child process needs only the base's ReadGuard).
_ANALYZERS = {"DicomAnalyzer": ".dicom", "ImageAnalyzer": ".image", "MediaAnalyzer": ".media", "PdfAnalyzer": ".pdf"}


def __getattr__(name: str) -> Any:
    if name in _ANALYZERS:
        return getattr(import_module(_ANALYZERS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnalysisError",
    "AnalysisUnavailable",
    "Analyzer",
    "DicomAnalyzer",
    "ImageAnalyzer",
    "MediaAnalyzer",
    "Metadata",
    "PdfAnalyzer",
]
