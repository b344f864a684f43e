"""Owners for the tests: clinics (tenants), patients (subjects) and their notes; clinics' own charts."""

from django.db import models


class Clinic(models.Model):
    name = models.CharField(max_length=100)


class Patient(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE)
    name = models.CharField(max_length=100)


class Note(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE)
    text = models.TextField(blank=True)


class Chart(models.Model):
    """A clinic's own record of a patient, numbered from 1 in every clinic.

    Its owner type's subject is the number, so clinic A and clinic B both have
    subject "1": what keeps their files apart is the tenant alone.
    """

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE)
    number = models.CharField(max_length=20)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["clinic", "number"], name="testapp_chart_number_per_clinic")]


class Staff(models.Model):
    """Which clinic (tenant) a user works for."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="staff")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE)
