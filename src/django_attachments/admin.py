"""Read-only admin pages for blobs and attachments.

Rows are created and removed through :mod:`django_attachments.services` only,
so that bytes and rows stay consistent; the admin shows them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from .models import Attachment, Blob


class ReadOnlyAdmin(admin.ModelAdmin):
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


@admin.register(Blob)
class BlobAdmin(ReadOnlyAdmin):
    list_display = ("filename", "content_type", "human_size", "storage", "tenant", "subject", "links", "created_at")
    list_filter = ("storage", "content_type", "created_at")
    search_fields = ("=checksum", "filename", "=tenant", "=subject")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Blob._meta.fields]
    inlines = [AttachmentInline]

    def get_queryset(self, request: Any) -> Any:
        return super().get_queryset(request).annotate(_links=Count("attachments"))

    @admin.display(description=_("size"), ordering="size")
    def human_size(self, obj: Blob) -> str:
        return filesizeformat(obj.size)

    @admin.display(description=_("links"), ordering="_links")
    def links(self, obj: Blob) -> int:
        return obj._links


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    list_display = ("owner_type", "owner_id", "name", "filename", "created_by", "created_at")
    list_filter = ("owner_type", "blob__storage", "created_at")
    search_fields = ("=owner_id", "=blob__checksum", "blob__filename", "name")
    list_select_related = ("blob", "created_by")
    readonly_fields = [f.name for f in Attachment._meta.fields]
    date_hierarchy = "created_at"

    @admin.display(description=_("filename"), ordering="blob__filename")
    def filename(self, obj: Attachment) -> str:
        return obj.blob.filename
