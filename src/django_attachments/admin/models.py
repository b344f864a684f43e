"""Admin pages for blobs, attachments and direct uploads: read-only, plus two actions.

Rows are created and removed through :mod:`django_attachments.services` only,
so that bytes and rows stay consistent; the admin shows them, and its actions
call the same code as the commands: the purge of selected orphans, and the
processing pipeline's task, forced, for the selected blobs ("Process again").

Blobs and attachments show where each blob stands in the pipeline (scan,
analysis; see :mod:`django_attachments.admin.display`) and filter on it
(:mod:`django_attachments.admin.filters`); a blob the download views would
refuse (infected, or not yet scanned) is offered no download link. Where
variants are declared, each row shows its thumbnail, linked to its preview
(:mod:`django_attachments.admin.thumbnails`).

With ``TENANT_RESOLVER`` set, a user shown one tenant (see
:mod:`django_attachments.admin.tenancy`) sees only that tenant's rows, less
those of owner types with a ``can_view`` hook (a hook answers per owner, so,
as in the API's list, they are left out of lists across owners); another
tenant's row is not found. A user of no tenant does not see these pages.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Subquery
from django.http import Http404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timezone import is_aware, localtime
from django.utils.translation import gettext_lazy as _

from .. import downloads, services
from ..exceptions import NoTenant
from ..models import Attachment, Blob, DirectUpload
from ..policy import view_hooked_owner_types
from . import display
from .filters import AnalysisStateFilter, BlobAnalysisStateFilter, BlobScanStateFilter, ScanStateFilter
from .tenancy import admin_tenant
from .thumbnails import ThumbnailsMixin


def _breakable(text: str) -> str:
    """``text`` for a narrow list column, broken anywhere: a long name without spaces does not widen the table."""
    return format_html('<span style="overflow-wrap: anywhere">{}</span>', text)


def _short_date(moment: Any) -> str:
    """The day of ``moment``, in the admin's time zone, for a narrow list column."""
    return date_format(localtime(moment) if is_aware(moment) else moment, "SHORT_DATE_FORMAT")


def _shortened(text: str, length: int) -> str:
    """``text`` cut to ``length`` characters for a list column, whole in its tooltip."""
    short = Truncator(text).chars(length)
    return text if short == text else format_html('<span title="{}">{}</span>', text, short)


def _is_pk(model: Any, value: str) -> bool:
    try:
        model._meta.pk.to_python(value)
    except ValidationError:
        return False
    return True


class ReadOnlyAdmin(admin.ModelAdmin):
    def get_attachments_tenant(self, request: Any) -> str | None:
        """The tenant whose rows this user sees; None for every tenant (see ``admin_tenant``)."""
        return admin_tenant(request)

    def scope_to_tenant(self, queryset: Any, tenant: str, hooked: list[str]) -> Any:
        """The rows of ``tenant``, less those of the ``hooked`` owner types."""
        raise NotImplementedError(".scope_to_tenant() must be overridden.")

    def get_queryset(self, request: Any) -> Any:
        queryset = super().get_queryset(request)
        try:
            tenant = self.get_attachments_tenant(request)
        except NoTenant:
            return queryset.none()
        return queryset if tenant is None else self.scope_to_tenant(queryset, tenant, view_hooked_owner_types())

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        if not super().has_view_permission(request, obj):
            return False
        try:
            self.get_attachments_tenant(request)
        except NoTenant:
            return False
        return True

    def response_action(self, request: Any, queryset: Any, *args: Any, **kwargs: Any) -> Any:
        # A selected id that is no primary key at all ("x" for a UUID) is an id that does not exist:
        # left out of the selection, as Django would otherwise fail the filter with a server error.
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        valid = [value for value in selected if _is_pk(self.model, value)]
        if len(valid) != len(selected):
            post = request.POST.copy()
            post.setlist(helpers.ACTION_CHECKBOX_NAME, valid)
            request.POST = post
        return super().response_action(request, queryset, *args, **kwargs)

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class AttachmentInline(admin.TabularInline):
    model = Attachment
    extra = 0
    fields = ("owner_type", "owner_id", "name", "description", "created_by", "created_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class OrphanFilter(admin.SimpleListFilter):
    title = _("links")
    parameter_name = "orphan"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Orphans (no attachment)")), ("no", _("Linked"))]

    def queryset(self, request: Any, queryset: Any) -> Any:
        if self.value() == "yes":
            return queryset.orphans()
        if self.value() == "no":
            return queryset.exclude(pk__in=Blob.objects.orphans().values("pk"))
        return queryset


def _ids_in_batches(blobs: Any, size: int = 500) -> Any:
    """The blobs' ids, read ``size`` at a time in key order: the memory stays flat, and a blob that leaves
    the selection as it is processed (a list filtered on its state) neither shifts nor repeats the rest."""
    blobs = blobs.order_by("pk").values_list("pk", flat=True)
    last = None
    while True:
        page = list((blobs if last is None else blobs.filter(pk__gt=last))[:size])
        yield from page
        if len(page) < size:
            return
        last = page[-1]


class ProcessingAdmin(ThumbnailsMixin, ReadOnlyAdmin):
    """What the blob and attachment pages share about the pipeline: the "Process again" action, download cells,
    thumbnails."""

    def selected_blobs(self, queryset: Any) -> Any:
        """The blobs that the selected rows are, or link to (a Blob queryset)."""
        raise NotImplementedError(".selected_blobs() must be overridden.")

    def has_process_permission(self, request: Any) -> bool:
        return request.user.has_perm("django_attachments.change_blob")

    @admin.action(description=_("Process again (scan and analyze the selected files)"), permissions=["process"])
    def process_again(self, request: Any, queryset: Any) -> None:
        # The queryset is the page's own, narrowed to the selection: only rows the user sees (their
        # tenant's) are in it, so another tenant's ids select nothing, exactly like ids that do not exist.
        done = queued = failed = 0
        for blob_id in _ids_in_batches(self.selected_blobs(queryset)):
            result = _tasks().enqueue(blob_id, force=True)
            if result is None or (result.is_finished and result.errors):
                failed += 1  # the backend refused the task, or (run at once) the task failed: both logged
            elif result.is_finished:
                done += 1  # the immediate backend: processed already
            else:
                queued += 1
        if not (done or queued or failed):
            self.message_user(request, _("No blob was processed."), messages.WARNING)
        if done:
            text = _("Processed %(count)d blob(s) again.") % {"count": done}
            self.message_user(request, text, messages.SUCCESS)
        if queued:
            text = _("Queued %(count)d blob(s) to be processed again.") % {"count": queued}
            self.message_user(request, text, messages.SUCCESS)
        if failed:
            text = _("%(count)d blob(s) could not be processed; the log says why.") % {"count": failed}
            self.message_user(request, text, messages.ERROR)

    def download_link(self, blob: Blob, text: str) -> str:
        """A link to the blob's download named ``text`` ("download" without); where the download view would
        refuse the blob (quarantined, awaiting its scan), ``text`` or a dash, unlinked, the reason in its tooltip.
        """
        refusal = display.download_refusal(blob)
        if refusal is not None:
            return display.no_download(refusal, text=text or "\u2014")
        url = reverse("admin:django_attachments_blob_download", args=[quote(blob.pk)], current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, text or _("download"))


@admin.register(Blob)
class BlobAdmin(ProcessingAdmin):
    # Few and short columns, so that the list fits a 1280 px wide window beside the admin's sidebar
    # and the filters, in Django 4.2's admin too: storage, tenant, subject, checksum and the time of
    # day are on the blob's page (and in the filters or the search). The scan and the analysis share
    # one column (two overflowed by some 45 px), a download refused is a dash, not a word, and the
    # download link sits under the thumbnail (a column of its own overflowed by some 45 px).
    list_display = ("thumbnail", "short_filename", "short_content_type", "human_size", "links", "states", "created")
    # The thumbnail links to the preview: the page's link is on the name, not the first column.
    list_display_links = ("short_filename",)
    list_filter = (ScanStateFilter, AnalysisStateFilter, OrphanFilter, "storage", "content_type", "created_at")
    actions = ["process_again", "purge_selected"]
    search_fields = ("=checksum", "filename", "=tenant", "=subject")
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ("filename", "content_type", "size", "checksum", "download_or_why_not", "id")}),
        (
            _("Storage and owner keys"),
            {"fields": ("storage", "storage_identifiers", "tenant", "subject", "created_at", "updated_at")},
        ),
        (
            _("Malware scan"),
            {
                "fields": (
                    "scan_state_badge",
                    "scan_signature",
                    "scanned_by",
                    "scanned_at",
                    "scan_attempts",
                    "scan_error_code",
                    "scan_error",
                ),
                "description": _(
                    "The scan error is the scanner's own message, for staff: a refused download says only "
                    "that the file is quarantined or not yet scanned."
                ),
            },
        ),
        (_("Analysis"), {"fields": ("analysis", "analyzed_at", "analysis_errors_table", "metadata_table")}),
    ]
    readonly_fields = [
        *(f.name for f in Blob._meta.fields),
        "download_or_why_not",
        "scan_state_badge",
        "analysis",
        "analysis_errors_table",
        "metadata_table",
    ]
    inlines = [AttachmentInline]
    thumbnail_prefetch = ("variants", "renders")

    def scope_to_tenant(self, queryset: Any, tenant: str, hooked: list[str]) -> Any:
        queryset = queryset.filter(tenant=tenant)
        return queryset.exclude(attachments__owner_type__in=hooked) if hooked else queryset

    def get_queryset(self, request: Any) -> Any:
        # A blob shows the variants of the owner type it was first linked to (a blob's links are all one
        # patient's; an owner type may declare variants of its own): read with the row, not once per row.
        first_link = Attachment.objects.filter(blob=OuterRef("pk")).order_by("created_at", "id")
        return (
            super()
            .get_queryset(request)
            .annotate(_links=Count("attachments"), _owner_type=Subquery(first_link.values("owner_type")[:1]))
        )

    def thumbnail_source(self, obj: Blob) -> tuple[Blob, str | None]:
        return obj, getattr(obj, "_owner_type", None)

    def selected_blobs(self, queryset: Any) -> Any:
        return Blob.objects.filter(pk__in=queryset.values("pk"))

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<path:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="django_attachments_blob_download",
            ),
            *self.thumbnail_urls(),
            *super().get_urls(),
        ]

    def download_view(self, request: Any, object_id: str) -> Any:
        if not self.has_view_permission(request):
            raise PermissionDenied
        blob = self.get_object(request, unquote(object_id))  # another tenant's: None
        if blob is None:
            raise Http404(_("No such blob."))
        if not self.has_view_permission(request, blob):
            raise PermissionDenied
        return downloads.serve_blob_or_503(request, blob)

    @admin.display(description=_("download"))
    def download(self, obj: Blob) -> str:
        return self.download_link(obj, "")

    @admin.display(description=_("file"))
    def thumbnail(self, obj: Blob) -> str:
        """The thumbnail (linked to the preview) over the download link, in one narrow column."""
        return format_html(
            '{}<div class="attachments-download" style="margin-top: 4px;">{}</div>',
            super().thumbnail(obj),
            self.download_link(obj, ""),
        )

    @admin.display(description=_("download"))
    def download_or_why_not(self, obj: Blob) -> str:
        refusal = display.download_refusal(obj)
        if refusal is None:
            return self.download_link(obj, "")
        return format_html('<span class="attachments-no-download">{}</span>', refusal.public_detail or str(refusal))

    def has_purge_permission(self, request: Any) -> bool:
        return request.user.has_perm("django_attachments.delete_blob")

    @admin.action(description=_("Purge selected orphan blobs (rows, then bytes)"), permissions=["purge"])
    def purge_selected(self, request: Any, queryset: Any) -> None:
        # Explicitly chosen: no grace period, but still only blobs that are orphans
        # under the purge's lock; linked blobs among the selection are kept.
        selected = list(queryset.values_list("pk", flat=True))
        result = services.purge_orphans(older_than=timedelta(0), blob_ids=selected)
        kept = len(selected) - result.found
        level = messages.ERROR if result.failures else messages.SUCCESS
        text = _("Purged %(count)d orphan blob(s), %(size)s.") % {
            "count": result.found,
            "size": filesizeformat(result.bytes),
        }
        if kept:
            text += " " + _("%(kept)d selected blob(s) still have attachments and were kept.") % {"kept": kept}
        if result.failures:
            text += " " + _("Some bytes could not be deleted (now stray): %s") % "; ".join(result.failures[:3])
        self.message_user(request, text, level)

    @admin.display(description=_("size"), ordering="size")
    def human_size(self, obj: Blob) -> str:
        return filesizeformat(obj.size)

    @admin.display(description=_("filename"), ordering="filename")
    def short_filename(self, obj: Blob) -> str:
        return _breakable(obj.filename)

    @admin.display(description=_("content type"), ordering="content_type")
    def short_content_type(self, obj: Blob) -> str:
        return _shortened(obj.content_type, 24)  # application/vnd.openxmlformats-officedocument...

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: Blob) -> str:
        return _short_date(obj.created_at)  # the time of day is on the blob's page

    @admin.display(description=_("links"), ordering="_links")
    def links(self, obj: Blob) -> int:
        return obj._links  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.display(description=_("state"), ordering="scan_state")
    def states(self, obj: Blob) -> str:
        return display.states(obj)

    @admin.display(description=_("scan"))
    def scan_state_badge(self, obj: Blob) -> str:
        return display.scan_badge(obj)

    @admin.display(description=_("analysis"), ordering="analysis_state")
    def analysis(self, obj: Blob) -> str:
        return display.analysis_badge(obj)

    @admin.display(description=_("analysis errors"))
    def analysis_errors_table(self, obj: Blob) -> str:
        return display.analysis_errors_table(obj)

    @admin.display(description=_("metadata"))
    def metadata_table(self, obj: Blob) -> str:
        return display.metadata_table(obj)


@admin.register(Attachment)
class AttachmentAdmin(ProcessingAdmin):
    # As on the blob list: short columns, so that the list fits 1280 px with short owner ids (the time of
    # day is on the attachment's page; the creator shares the day's column).
    list_display = ("thumbnail", "owner_type", "owner_id", "name", "file", "states", "created")
    list_display_links = ("owner_type",)
    list_filter = (BlobScanStateFilter, BlobAnalysisStateFilter, "owner_type", "blob__storage", "created_at")
    actions = ["process_again"]
    search_fields = ("=owner_id", "=blob__checksum", "filename", "name")
    list_select_related = ("blob", "created_by")
    readonly_fields = [*(f.name for f in Attachment._meta.fields), "file", "scan", "analysis"]
    date_hierarchy = "created_at"
    thumbnail_prefetch = ("blob__variants", "blob__renders")

    def scope_to_tenant(self, queryset: Any, tenant: str, hooked: list[str]) -> Any:
        queryset = queryset.filter(blob__tenant=tenant)
        return queryset.exclude(owner_type__in=hooked) if hooked else queryset

    def selected_blobs(self, queryset: Any) -> Any:
        return Blob.objects.filter(pk__in=queryset.values("blob_id"))

    def get_urls(self) -> list[Any]:
        return [*self.thumbnail_urls(), *super().get_urls()]

    def thumbnail_source(self, obj: Attachment) -> tuple[Blob, str | None]:
        return obj.blob, obj.owner_type

    @admin.display(description=_("filename"), ordering="filename")
    def file(self, obj: Attachment) -> str:
        return self.download_link(obj.blob, _breakable(obj.filename or obj.blob.filename))

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: Attachment) -> str:
        if obj.created_by is None:
            return _short_date(obj.created_at)
        return format_html(
            '{}<div style="color: var(--body-quiet-color, #666);">{}</div>',
            _short_date(obj.created_at),
            _breakable(obj.created_by.get_username()),
        )

    @admin.display(description=_("state"), ordering="blob__scan_state")
    def states(self, obj: Attachment) -> str:
        return display.states(obj.blob)

    @admin.display(description=_("scan"))
    def scan(self, obj: Attachment) -> str:
        return display.scan_badge(obj.blob, signature=True)

    @admin.display(description=_("analysis"), ordering="blob__analysis_state")
    def analysis(self, obj: Attachment) -> str:
        return display.analysis_badge(obj.blob)


@admin.register(DirectUpload)
class DirectUploadAdmin(ReadOnlyAdmin):
    """Direct-upload tickets: what clients declared, and how completion went."""

    list_display = (
        "filename",
        "owner_type",
        "owner_id",
        "status",
        "error_code",
        "human_size",
        "created_at",
        "expires_at",
    )
    list_filter = ("status", "error_code", "storage", "created_at")
    search_fields = ("=id", "=owner_id", "=checksum", "filename")
    list_select_related = ("created_by",)
    readonly_fields = [f.name for f in DirectUpload._meta.fields]
    date_hierarchy = "created_at"

    def scope_to_tenant(self, queryset: Any, tenant: str, hooked: list[str]) -> Any:
        queryset = queryset.filter(tenant=tenant)
        return queryset.exclude(owner_type__in=hooked) if hooked else queryset

    @admin.display(description=_("declared size"), ordering="size")
    def human_size(self, obj: DirectUpload) -> str:
        return filesizeformat(obj.size)


def _tasks() -> Any:
    """The task module, imported on first use: it declares its task on the project's task backend,
    which must not be needed to import the admin (autodiscovery, at start-up)."""
    from .. import tasks

    return tasks
