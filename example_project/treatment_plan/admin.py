from clinics.admin import ClinicScopedAdmin
from django.contrib import admin

from django_attachments.admin import AttachmentsAdminMixin

from .models import PlanItem, TreatmentPlan


class PlanItemInline(admin.TabularInline):
    model = PlanItem
    extra = 0
    show_change_link = True


@admin.register(TreatmentPlan)
class TreatmentPlanAdmin(ClinicScopedAdmin):
    clinic_lookup = "patient__clinic"
    clinic_foreign_keys = {"patient": "clinic"}
    list_display = ("title", "patient", "created_at")
    list_filter = ("patient__clinic",)
    list_select_related = ("patient",)
    search_fields = ("title", "patient__name")
    raw_id_fields = ("patient",)
    inlines = [PlanItemInline]


@admin.register(PlanItem)
class PlanItemAdmin(AttachmentsAdminMixin, ClinicScopedAdmin):
    clinic_lookup = "plan__patient__clinic"
    clinic_foreign_keys = {"plan": "patient__clinic"}
    attachments_owner_type = "plan_item"  # its change page lists, uploads and unlinks its files
    list_display = ("description", "plan", "position", "id")
    list_filter = ("plan__patient__clinic",)
    list_select_related = ("plan",)
    raw_id_fields = ("plan",)
