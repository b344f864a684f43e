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

from .base import AnalysisError, AnalysisUnavailable, Analyzer, Metadata
from .dicom import DicomAnalyzer
from .image import ImageAnalyzer
from .media import MediaAnalyzer
from .pdf import PdfAnalyzer

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
