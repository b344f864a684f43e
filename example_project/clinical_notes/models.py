"""Clinical notes: what a clinician wrote about a patient's visit, with the scans and letters it refers to."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class ClinicalNote(models.Model):
    clinic = models.ForeignKey("clinics.Clinic", on_delete=models.PROTECT, related_name="clinical_notes")
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="clinical_notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="clinical_notes"
    )
    title = models.CharField(max_length=200)
    text = models.TextField(blank=True)
    written_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-written_at", "-pk"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        # The note's files are stored under (clinic, patient): a note in another clinic than its
        # patient's could never share a file with the patient's other records.
        if self.clinic_id is not None and self.patient_id is not None and self.patient.clinic_id != self.clinic_id:
            raise ValidationError({"patient": "The patient is not a patient of this clinic."})
