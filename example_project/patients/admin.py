from django.contrib import admin

from .models import Patient


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("name", "record_number", "clinic", "id")
    list_filter = ("clinic",)
    search_fields = ("name", "=record_number")
