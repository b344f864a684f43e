"""Owners for the tests: clinics (tenants), patients (subjects) and their notes."""

from django.db import models


class Clinic(models.Model):
    name = models.CharField(max_length=100)


class Patient(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE)
    name = models.CharField(max_length=100)


class Note(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE)
    text = models.TextField(blank=True)


class Staff(models.Model):
    """Which clinic (tenant) a user works for."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="staff")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE)
