from django.contrib import admin

from .models import Clinic, StaffProfile


class StaffProfileInline(admin.TabularInline):
    model = StaffProfile
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ("name", "id")
    search_fields = ("name",)
    inlines = [StaffProfileInline]


@admin.register(StaffProfile)
class StaffProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "clinic")
    list_filter = ("clinic",)
    raw_id_fields = ("user",)
