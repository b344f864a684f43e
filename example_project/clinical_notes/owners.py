"""How clinical notes own files: the "clinical_note" owner type and its clean-up on delete.

A note's files are its patient's: tenant = the note's clinic, subject = the
patient, so a scan can be linked from a plan item of the same patient to the
note that discusses it (one blob, two links). Photos, scans and PDFs only.
"""

from typing import Any

from django_attachments import services
from django_attachments.registry import Owner, OwnerSpec

from .models import ClinicalNote

OWNER_TYPE = "clinical_note"


def resolve_clinical_note(owner_id: str) -> Owner | None:
    note = ClinicalNote.objects.filter(pk=owner_id).first()
    if note is None:
        return None
    return Owner(tenant=str(note.clinic_id), subject=str(note.patient_id), instance=note)


owner_spec = OwnerSpec(
    owner_type=OWNER_TYPE,
    resolver=resolve_clinical_note,
    allowed_names={"xray", "scan", "photo", "letter"},
    allowed_content_types={"image/*", "application/pdf"},
)


def unlink_files(sender: type[ClinicalNote], instance: ClinicalNote, **kwargs: Any) -> None:
    services.unlink_all_for_owner(OWNER_TYPE, instance.pk)
