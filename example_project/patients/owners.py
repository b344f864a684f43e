"""How patients own files: the "patient" owner type and its clean-up on delete.

The resolver tells django_attachments whose a patient is (tenant = clinic,
subject = the patient); the delete hook removes the patient's links, leaving
the blobs to the orphan purge.
"""

from typing import Any

from django_attachments import services
from django_attachments.registry import Owner, OwnerSpec

from .models import Patient

OWNER_TYPE = "patient"


def resolve_patient(owner_id: str) -> Owner | None:
    patient = Patient.objects.filter(pk=owner_id).first()
    if patient is None:
        return None
    return Owner(tenant=str(patient.clinic_id), subject=str(patient.pk), instance=patient)


owner_spec = OwnerSpec(owner_type=OWNER_TYPE, resolver=resolve_patient)


def unlink_files(sender: type[Patient], instance: Patient, **kwargs: Any) -> None:
    services.unlink_all_for_owner(OWNER_TYPE, instance.pk)
