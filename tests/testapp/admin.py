from django.contrib import admin

from django_attachments.admin import AttachmentsAdminMixin

from .models import Note, Patient


@admin.register(Note)
class NoteAdmin(AttachmentsAdminMixin, admin.ModelAdmin):
    attachments_owner_type = "note"


@admin.register(Patient)
class PatientAdmin(AttachmentsAdminMixin, admin.ModelAdmin):
    attachments_owner_type = "patient"
