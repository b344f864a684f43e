"""How plan items own files: the "plan_item" owner type and its clean-up on delete.

A plan item's files are its patient's: tenant = the patient's clinic, subject =
the patient. Only photos, scans and PDFs are accepted, in four slots.
"""

from typing import Any

from django_attachments import services
from django_attachments.registry import Owner, OwnerSpec

from .models import PlanItem

OWNER_TYPE = "plan_item"


def resolve_plan_item(owner_id: str) -> Owner | None:
    item = PlanItem.objects.filter(pk=owner_id).select_related("plan__patient").first()
    if item is None:
        return None
    patient = item.plan.patient
    return Owner(tenant=str(patient.clinic_id), subject=str(patient.pk), instance=item)


owner_spec = OwnerSpec(
    owner_type=OWNER_TYPE,
    resolver=resolve_plan_item,
    allowed_names={"before", "after", "xray", "reference"},
    allowed_content_types={"image/*", "application/pdf"},
)


def unlink_files(sender: type[PlanItem], instance: PlanItem, **kwargs: Any) -> None:
    services.unlink_all_for_owner(OWNER_TYPE, instance.pk)
