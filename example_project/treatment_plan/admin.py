from django.contrib import admin

from django_attachments.admin import AttachmentsAdminMixin

from .models import PlanItem, TreatmentPlan


class PlanItemInline(admin.TabularInline):
    model = PlanItem
    extra = 0
    show_change_link = True


@admin.register(TreatmentPlan)
class TreatmentPlanAdmin(admin.ModelAdmin):
    list_display = ("title", "patient", "created_at")
    list_filter = ("patient__clinic",)
    list_select_related = ("patient",)
    search_fields = ("title", "patient__name")
    raw_id_fields = ("patient",)
    inlines = [PlanItemInline]


@admin.register(PlanItem)
class PlanItemAdmin(AttachmentsAdminMixin, admin.ModelAdmin):
    attachments_owner_type = "plan_item"  # its change page lists, uploads and unlinks its files
    list_display = ("description", "plan", "position", "id")
    list_filter = ("plan__patient__clinic",)
    list_select_related = ("plan",)
    raw_id_fields = ("plan",)
