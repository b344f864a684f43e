"""Treatment plans: the steps of a patient's care, each of which can carry photos and scans."""

from django.db import models


class TreatmentPlan(models.Model):
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="treatment_plans")
    title = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.title


class PlanItem(models.Model):
    plan = models.ForeignKey(TreatmentPlan, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveSmallIntegerField(default=0)
    description = models.CharField(max_length=200)

    class Meta:
        ordering = ["plan", "position", "pk"]

    def __str__(self) -> str:
        return self.description
