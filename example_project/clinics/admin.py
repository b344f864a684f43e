from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from django_attachments.admin.tenancy import admin_tenant
from django_attachments.exceptions import NoTenant

from .models import Clinic, StaffProfile


class ClinicScopedAdmin(admin.ModelAdmin):
    """A clinic's own rows for its staff, every clinic's for superusers: the line the attachments follow.

    ``admin_tenant()`` answers as it does for the attachments panel: the
    user's clinic, None (every clinic) for the users ADMIN_CROSS_TENANT
    accepts, and NoTenant for users of no clinic, who see no rows.
    """

    #: The lookup from the model to its clinic's id.
    clinic_lookup = "clinic"
    #: Foreign keys whose choices are the user's clinic's: field name -> lookup from the related model to its
    #: clinic's id. Staff cannot move a row (and its files) to another clinic.
    clinic_foreign_keys: dict[str, str] = {}

    def get_queryset(self, request: HttpRequest) -> Any:
        return self._scoped(super().get_queryset(request), request, self.clinic_lookup)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        lookup = self.clinic_foreign_keys.get(db_field.name)
        if lookup is not None:
            kwargs["queryset"] = self._scoped(db_field.related_model._default_manager.all(), request, lookup)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @staticmethod
    def _scoped(queryset: Any, request: HttpRequest, lookup: str) -> Any:
        try:
            clinic = admin_tenant(request)
        except NoTenant:
            return queryset.none()
        return queryset if clinic is None else queryset.filter(**{lookup: clinic})


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
