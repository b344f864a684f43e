from clinics.admin import ClinicScopedAdmin
from django.contrib import admin

from django_attachments.admin import AttachmentsAdminMixin

from .models import Patient


@admin.register(Patient)
class PatientAdmin(AttachmentsAdminMixin, ClinicScopedAdmin):
    attachments_owner_type = "patient"  # its change page lists, uploads and unlinks its files
    clinic_foreign_keys = {"clinic": "pk"}
    list_display = ("name", "record_number", "clinic", "id")
    list_filter = ("clinic",)
    search_fields = ("name", "=record_number")
