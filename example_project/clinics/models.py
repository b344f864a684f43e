"""Clinics are the tenants: staff of one clinic never see another clinic's files.

A user belongs to at most one clinic, through their :class:`StaffProfile`;
``clinics.tenancy.clinic_for_request`` reads it to scope every request.
"""

from django.conf import settings
from django.db import models


class Clinic(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StaffProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="staff")

    def __str__(self) -> str:
        return f"{self.user} @ {self.clinic}"
