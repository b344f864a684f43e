"""The caller's tenant, for django_attachments: the id of the clinic the user works at.

Wired up in settings::

    DJANGO_ATTACHMENTS = {"TENANT_RESOLVER": "clinics.tenancy.clinic_for_request"}

Anonymous callers have no clinic (``None``). An authenticated user without a
staff profile is refused outright rather than given ``None``, which the
attachments app reads as "no tenant restriction".
"""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .models import StaffProfile


def clinic_for_request(request: HttpRequest) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    clinic_id = StaffProfile.objects.filter(user_id=user.pk).values_list("clinic_id", flat=True).first()
    if clinic_id is None:
        raise PermissionDenied("This account does not belong to a clinic.")
    return str(clinic_id)
