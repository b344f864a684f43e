"""The caller's tenant, for django_attachments: the id of the clinic the user works at.

Wired up in settings::

    DJANGO_ATTACHMENTS = {"TENANT_RESOLVER": "clinics.tenancy.clinic_for_request"}

A caller with no clinic (anonymous, or an account without a staff profile,
such as the demo's superuser) gets ``None``, which the attachments API refuses
with 403: no tenant, no files. The admin refuses them too, except the users
``ADMIN_CROSS_TENANT`` names (here, superusers), who see every clinic's files.
"""

from django.http import HttpRequest

from .models import StaffProfile


def clinic_for_request(request: HttpRequest) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    clinic_id = StaffProfile.objects.filter(user_id=user.pk).values_list("clinic_id", flat=True).first()
    return None if clinic_id is None else str(clinic_id)
