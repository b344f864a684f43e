"""Resolvers for the test app's owner types, registered from its AppConfig.ready()."""

from django_attachments.registry import Owner

from .models import Chart, Note, Patient


def resolve_patient(owner_id: str) -> Owner | None:
    patient = Patient.objects.filter(pk=owner_id).first()
    if patient is None:
        return None
    return Owner(tenant=str(patient.clinic_id), subject=str(patient.pk), instance=patient)


def resolve_note(owner_id: str) -> Owner | None:
    note = Note.objects.filter(pk=owner_id).select_related("patient").first()
    if note is None:
        return None
    return Owner(tenant=str(note.patient.clinic_id), subject=str(note.patient_id), instance=note)


def resolve_chart(owner_id: str) -> Owner | None:
    chart = Chart.objects.filter(pk=owner_id).first()
    if chart is None:
        return None
    return Owner(tenant=str(chart.clinic_id), subject=chart.number, instance=chart)
