"""Thumbnails in the admin: a column on the blob and attachment lists, and one in the panel on owners' pages.

Each row shows the smallest variant declared for its owner type (``thumb``, say)
as an image, linked to the largest (``preview``; the thumbnail itself when
there is no larger one), opened in a new tab. A ModelAdmin names others::

    class XrayAttachmentAdmin(AttachmentAdmin):
        thumbnail_variant = "thumb"      # None: the smallest declared for the row's owner type
        preview_variant = "preview"      # None: the largest

    class PlanItemAdmin(AttachmentsAdminMixin, admin.ModelAdmin):
        attachments_thumbnail_variant = "thumb"

The images come through an admin view of the page that shows them (the blob
list's, the attachment list's, the panel's), which checks exactly what that
page's download view checks -- the model permission, the user's tenant, the
owner's hooks -- so that another tenant's variant is "not found", exactly like
a missing one. The view then asks for the variant as the API does
(:func:`serve`): made, it is served (or redirected to a signed URL); not made,
it is claimed and handed to a worker, and the view answers 202 with
``Retry-After`` and a small placeholder image. With the immediate task
backend the worker is the request itself, and the image comes at once; no
request renders otherwise.

A row whose file cannot be previewed shows words, never a broken image: a
dash where no variant applies (none declared for the owner type, or no
renderer reads the file's type), "quarantined", "awaiting scan" or "scan
failed" where the scan does not let a renderer read the file, "no preview"
where the renderer refused it before. The lists and the panel prefetch each
blob's variants and renders: two queries a page, whatever its size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from .. import downloads
from ..exceptions import BlobUnavailable, NoPreview, PreviewUnavailable, StorageError, VariantNotFound
from ..models import Blob, RenderState
from ..policy import check_renderable
from ..services import variants
from . import display

logger = logging.getLogger(__name__)

#: Seconds the browser is told to wait (``Retry-After``) before asking again for a variant being made.
RETRY_AFTER = 1
#: The box, in CSS pixels, a thumbnail is shown in: on the lists (narrow columns), and in the panel.
LIST_BOX = 48
PANEL_BOX = 96

_QUIET = "color: var(--body-quiet-color, #666);"


@dataclass(frozen=True)
class Choice:
    """The variants a row shows: ``thumbnail`` in the cell, ``preview`` behind its link."""

    thumbnail: str
    preview: str


def choose(owner_type: str | None, *, thumbnail: str | None = None, preview: str | None = None) -> Choice | None:
    """The thumbnail and preview of an owner type's files; None when no variant (or not the one named) is declared.

    By default the smallest declared variant (by its box's area, then its
    name) is the thumbnail and the largest the preview. A named preview that
    is not declared falls back to the thumbnail.
    """
    specs = variants.declared_specs(owner_type)
    if not specs:
        return None
    by_area = sorted(specs, key=lambda name: (specs[name].width * specs[name].height, name))
    small = by_area[0] if thumbnail is None else thumbnail
    if small not in specs:
        return None
    large = by_area[-1] if preview is None else preview
    return Choice(small, large if large in specs else small)


def _quiet(text: Any, *, title: str = "", css: str = "attachments-no-preview") -> SafeString:
    return format_html('<span class="{}" title="{}" style="{}">{}</span>', css, title, _QUIET, text)


def cell(
    blob: Blob,
    owner_type: str | None,
    url: Callable[[str], str],
    *,
    thumbnail: str | None = None,
    preview: str | None = None,
    box: int = LIST_BOX,
    alt: str = "",
) -> SafeString:
    """The thumbnail of ``blob`` linked to its preview, or the words saying why there is none.

    ``url(name)`` is the admin URL of the variant ``name``. Reads the blob's
    variants and renders through ``blob.variants.all()`` and
    ``blob.renders.all()``: prefetch them for a list.
    """
    choice = choose(owner_type, thumbnail=thumbnail, preview=preview)
    if choice is None:
        return _quiet("\u2014", css="attachments-no-thumbnail")
    renderer = variants.renderer_for(blob.content_type)
    if renderer is None:
        kind = blob.content_type.split(";", 1)[0]
        return _quiet("\u2014", title=str(_("No preview is made of %(type)s files.") % {"type": kind}))
    try:
        check_renderable(blob)
    except BlobUnavailable as refusal:
        return _quiet(display.refusal_label(refusal), title=str(refusal))
    digest = variants.declared_specs(owner_type)[choice.thumbnail].digest(renderer)
    made = next((variant for variant in blob.variants.all() if variant.digest == digest), None)
    if made is None:
        refused = next(
            (r for r in blob.renders.all() if r.digest == digest and r.state == RenderState.FAILED),
            None,
        )
        if refused is not None:
            return _quiet(_("no preview"), title=refused.error)
    size = ""
    if made is not None and made.width and made.height:
        # The image's own proportions inside the box, so that the row does not move when it loads.
        scale = min(1.0, box / made.width, box / made.height)
        size = format_html(
            ' width="{}" height="{}"', max(1, round(made.width * scale)), max(1, round(made.height * scale))
        )
    return format_html(
        '<a class="attachments-preview" href="{}" target="_blank" rel="noopener" title="{}">'
        '<img class="attachments-thumbnail" src="{}" alt="{}" loading="lazy"{}'
        ' style="display: block; max-width: {}px; max-height: {}px; height: auto;'
        ' outline: 1px solid var(--hairline-color, #e8e8e8);"></a>',
        url(choice.preview),
        _("Open the preview in a new tab"),
        url(choice.thumbnail),
        alt,
        size,
        box,
        box,
    )


def placeholder(text: Any, *, status: int, detail: str = "") -> HttpResponse:
    """A small grey image saying ``text``, for an ``<img>`` whose variant cannot be shown (yet): never a broken one.

    Browsers draw an image whatever the status it comes with; ``detail`` is its title.
    """
    svg = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
        "<title>{}</title>"
        '<rect width="96" height="96" rx="8" fill="#eeeeee"/>'
        '<text x="48" y="52" font-family="sans-serif" font-size="12" text-anchor="middle" fill="#666666">{}</text>'
        "</svg>",
        detail or text,
        text,
    )
    response = HttpResponse(svg, status=status, content_type="image/svg+xml")
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def serve(request: Any, blob: Blob, name: str, *, owner_type: str | None) -> HttpResponseBase:
    """The variant ``name`` of ``blob`` as linked to ``owner_type``, asked for as the API asks for it.

    Made: served inline (or a redirect to the store's signed URL in the
    ``redirect`` download mode). Not made: claimed and handed to a worker
    (:func:`django_attachments.tasks.enqueue_variant`), then 202 with
    ``Retry-After`` and a placeholder image. A file that cannot be previewed
    (404) or served (409), and a storage failure (503), get a placeholder
    image too. An undeclared name is a 404 page.
    """
    try:
        found = downloads.variant_or_pending(blob, name, owner_type=owner_type)
        if found is None:
            response = placeholder(_("being made"), status=202, detail=str(_("The preview is being made.")))
            response["Retry-After"] = str(RETRY_AFTER)
            return response
        return downloads.send_variant(request, found)
    except VariantNotFound:
        raise Http404(_("No such variant.")) from None
    except NoPreview as exc:
        return placeholder(_("no preview"), status=404, detail=str(exc))
    except BlobUnavailable as exc:
        return placeholder(display.refusal_label(exc), status=exc.status_code, detail=str(exc))
    except PreviewUnavailable as exc:  # a failure waiting for its retry, or no worker took it
        response = placeholder(_("unavailable"), status=503, detail=str(exc))
        response["Retry-After"] = str(exc.retry_after)
        return response
    except StorageError:
        logger.exception("Could not read a variant of blob %s from storage", blob.pk)
        return placeholder(_("unavailable"), status=503)


class ThumbnailChangeList(ChangeList):
    """The change list, with each row's blob variants and renders prefetched (when any variant is declared)."""

    def get_queryset(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        queryset = super().get_queryset(request, *args, **kwargs)
        lookups = getattr(self.model_admin, "thumbnail_prefetch", ())
        return queryset.prefetch_related(*lookups) if lookups and variants.any_declared() else queryset


class ThumbnailsMixin:
    """The thumbnail column of a read-only list of blobs or attachments, and the view its images come from.

    For a :class:`~django_attachments.admin.models.ReadOnlyAdmin`: the view
    checks what its ``download_view`` checks (the model permission, then the
    row as this user's queryset finds it: another tenant's is None).
    """

    #: The variant shown in the column; None: the smallest declared for the row's owner type.
    thumbnail_variant: str | None = None
    #: The variant its link opens; None: the largest declared (the thumbnail if there is no other).
    preview_variant: str | None = None
    #: The lookups that reach a row's blob variants and renders, prefetched on the list.
    thumbnail_prefetch: tuple[str, ...] = ()

    admin_site: Any
    opts: Any

    def thumbnail_source(self, obj: Any) -> tuple[Blob, str | None]:
        """The row's blob, and the owner type whose variants it shows."""
        raise NotImplementedError(".thumbnail_source() must be overridden.")

    def get_changelist(self, request: Any, **kwargs: Any) -> type[ChangeList]:
        return ThumbnailChangeList

    def thumbnail_urls(self) -> list[Any]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_variant"
        return [
            path("<path:object_id>/variants/<str:variant>/", self.admin_site.admin_view(self.variant_view), name=name)
        ]

    def variant_url(self, obj: Any, variant: str) -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_variant"
        return reverse(name, args=[quote(obj.pk), variant], current_app=self.admin_site.name)

    def variant_view(self, request: Any, object_id: str, variant: str) -> HttpResponseBase:
        # The download view's checks, in its order: the same answers for another tenant's row as for none.
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]  # another tenant's: None
        if obj is None:
            raise Http404(_("No such object."))
        if not self.has_view_permission(request, obj):  # type: ignore[attr-defined]
            raise PermissionDenied
        blob, owner_type = self.thumbnail_source(obj)
        return serve(request, blob, variant, owner_type=owner_type)

    @admin.display(description=_("preview"))
    def thumbnail(self, obj: Any) -> str:
        blob, owner_type = self.thumbnail_source(obj)
        return cell(
            blob,
            owner_type,
            lambda name: self.variant_url(obj, name),
            thumbnail=self.thumbnail_variant,
            preview=self.preview_variant,
            alt=str(_("Thumbnail of %(file)s") % {"file": getattr(obj, "filename", "") or blob.filename}),
        )
