"""Patients: each belongs to one clinic, and is the *subject* of the files about them.

Every file attached to a patient, or to anything of theirs (a plan item), is
stored under ``(clinic, patient)``, so it can only ever be linked to owners of
the same patient.
"""

from django.db import models


class Patient(models.Model):
    clinic = models.ForeignKey("clinics.Clinic", on_delete=models.PROTECT, related_name="patients")
    record_number = models.CharField(max_length=20, help_text="The clinic's own patient number.")
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["clinic", "record_number"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "record_number"], name="patients_unique_record_number"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.record_number})"
