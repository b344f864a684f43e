"""Analyzers: what a file says about itself, read from its stream.

Each analyzer is a pure object -- no database, no store -- that the
processing service runs on a blob's bytes and whose flat, namespaced dict it
records (the contract is in :mod:`.base`)::

    from django_attachments.processing.analyzers import ImageAnalyzer

    analyzer = ImageAnalyzer(max_pixels=50_000_000)
    if analyzer.accepts("image/jpeg"):
        metadata = analyzer.analyze(spooled_file)  # {"image.width": ..., ...}

The built-ins stand on optional libraries (the ``analyze`` extra): Pillow for
:class:`ImageAnalyzer`, pypdf for :class:`PdfAnalyzer`. Importing this
package needs neither.
"""

from .base import AnalysisError, AnalysisUnavailable, Analyzer, Metadata
from .image import ImageAnalyzer
from .pdf import PdfAnalyzer

__all__ = ["AnalysisError", "AnalysisUnavailable", "Analyzer", "ImageAnalyzer", "Metadata", "PdfAnalyzer"]
