"""Admin pages for blobs, attachments and direct uploads: read-only, plus purging selected orphans.

Rows are created and removed through :mod:`django_attachments.services` only,
so that bytes and rows stay consistent; the admin shows them, and its one
action calls the same purge as ``manage.py purge_orphan_attachments``.

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
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
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
from .tenancy import admin_tenant


def _breakable(text: str) -> str:
    """``text`` for a narrow list column, broken anywhere: a long name without spaces does not widen the table."""
    return format_html('<span style="overflow-wrap: anywhere">{}</span>', text)


def _shortened(text: str, length: int) -> str:
    """``text`` cut to ``length`` characters for a list column, whole in its tooltip."""
    short = Truncator(text).chars(length)
    return text if short == text else format_html('<span title="{}">{}</span>', text, short)


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


@admin.register(Blob)
class BlobAdmin(ReadOnlyAdmin):
    # Few and short columns, so that the list fits a 1280 px wide window beside the admin's sidebar
    # and the filters, in Django 4.2's admin too: storage, tenant, subject, checksum and the time of
    # day are on the blob's page (and in the filters or the search).
    list_display = ("short_filename", "short_content_type", "human_size", "links", "created", "download")
    list_filter = (OrphanFilter, "storage", "content_type", "created_at")
    actions = ["purge_selected"]
    search_fields = ("=checksum", "filename", "=tenant", "=subject")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Blob._meta.fields]
    inlines = [AttachmentInline]

    def scope_to_tenant(self, queryset: Any, tenant: str, hooked: list[str]) -> Any:
        queryset = queryset.filter(tenant=tenant)
        return queryset.exclude(attachments__owner_type__in=hooked) if hooked else queryset

    def get_queryset(self, request: Any) -> Any:
        return super().get_queryset(request).annotate(_links=Count("attachments"))

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<path:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="django_attachments_blob_download",
            ),
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
        url = reverse("admin:django_attachments_blob_download", args=[quote(obj.pk)], current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, _("download"))

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
        created = localtime(obj.created_at) if is_aware(obj.created_at) else obj.created_at
        return date_format(created, "SHORT_DATE_FORMAT")  # the time of day is on the blob's page

    @admin.display(description=_("links"), ordering="_links")
    def links(self, obj: Blob) -> int:
        return obj._links  # type: ignore[attr-defined]  # annotated by get_queryset


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    list_display = ("owner_type", "owner_id", "name", "file", "created_by", "created_at")
    list_filter = ("owner_type", "blob__storage", "created_at")
    search_fields = ("=owner_id", "=blob__checksum", "filename", "name")
    list_select_related = ("blob", "created_by")
    readonly_fields = [f.name for f in Attachment._meta.fields]
    date_hierarchy = "created_at"

    def scope_to_tenant(self, queryset: Any, tenant: str, hooked: list[str]) -> Any:
        queryset = queryset.filter(blob__tenant=tenant)
        return queryset.exclude(owner_type__in=hooked) if hooked else queryset

    @admin.display(description=_("filename"), ordering="filename")
    def file(self, obj: Attachment) -> str:
        url = reverse(
            "admin:django_attachments_blob_download", args=[quote(obj.blob_id)], current_app=self.admin_site.name
        )
        return format_html('<a href="{}">{}</a>', url, obj.filename or obj.blob.filename)


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
