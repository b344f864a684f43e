from typing import Any

from clinics.admin import ClinicScopedAdmin
from django.contrib import admin
from django.http import HttpRequest

from django_attachments.admin import AttachmentsAdminMixin

from .models import ClinicalNote


@admin.register(ClinicalNote)
class ClinicalNoteAdmin(AttachmentsAdminMixin, ClinicScopedAdmin):
    attachments_owner_type = "clinical_note"  # its change page lists, uploads and unlinks its files
    clinic_foreign_keys = {"clinic": "pk", "patient": "clinic"}
    list_display = ("title", "patient", "clinic", "written_at", "id")
    list_filter = ("clinic",)
    list_select_related = ("patient", "clinic")
    search_fields = ("title", "patient__name")
    raw_id_fields = ("patient",)
    readonly_fields = ("author", "written_at")

    def save_model(self, request: HttpRequest, obj: ClinicalNote, form: Any, change: bool) -> None:
        if not change and obj.author_id is None:
            obj.author = request.user
        super().save_model(request, obj, form, change)
