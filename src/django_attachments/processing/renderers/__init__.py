"""Renderers: variants of a file -- thumbnails, previews -- made from its stream.

Each renderer is a pure object -- no database, no store -- that the variant
service runs on a blob's bytes to make the picture a :class:`VariantSpec`
describes, and whose :class:`Rendered` bytes it stores (the contract is in
:mod:`.base`)::

    from django_attachments.processing.renderers import ImageRenderer, VariantSpec

    spec = VariantSpec.from_value("thumb", {"operation": "fit", "width": 256, "height": 256, "format": "webp"})
    renderer = ImageRenderer()
    if renderer.accepts("image/jpeg"):
        rendered = renderer.render(spooled_file, spec)  # Rendered(data=b"RIFF...", width=256, height=171, ...)

The built-ins stand on optional parts: Pillow for every one of them (they
all end with :func:`finish`), pypdfium2 for :class:`PdfRenderer`, pydicom
and NumPy for :class:`DicomRenderer`, and the ``ffmpeg`` program of FFmpeg
for :class:`VideoRenderer`. Importing this package needs none of them.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .base import (
    PreviewUnsupported,
    Rendered,
    Renderer,
    RenderError,
    RenderTimeout,
    RenderUnavailable,
    VariantSpec,
    finish,
)

if TYPE_CHECKING:
    from .dicom import DicomRenderer
    from .image import ImageRenderer
    from .pdf import PdfRenderer
    from .video import VideoRenderer

#: The built-ins, imported on first use: the process a PDF is drawn in (.pdf_child) needs only its own.
_RENDERERS = {"DicomRenderer": ".dicom", "ImageRenderer": ".image", "PdfRenderer": ".pdf", "VideoRenderer": ".video"}


def __getattr__(name: str) -> Any:
    if name in _RENDERERS:
        return getattr(import_module(_RENDERERS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The renderers a project gets unless it names its own, each used where its library is installed.
BUILTIN_RENDERERS = (
    "django_attachments.processing.renderers.ImageRenderer",
    "django_attachments.processing.renderers.PdfRenderer",
    "django_attachments.processing.renderers.DicomRenderer",  # with the dicom extra
    "django_attachments.processing.renderers.VideoRenderer",  # where ffmpeg is installed
)

__all__ = [
    "BUILTIN_RENDERERS",
    "DicomRenderer",
    "ImageRenderer",
    "PdfRenderer",
    "PreviewUnsupported",
    "RenderError",
    "RenderTimeout",
    "RenderUnavailable",
    "Rendered",
    "Renderer",
    "VariantSpec",
    "VideoRenderer",
    "finish",
]
