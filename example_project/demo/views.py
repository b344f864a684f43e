"""The demo's pages, for the staff of a clinic, logged in with their session; the work is the API's.

- The direct upload page: the browser hashes a file, sends its bytes straight
  to the storage (in one request, or in parts above ``MULTIPART_THRESHOLD``),
  the API verifies them. ``demo/direct_upload.js`` drives the app's packaged
  uploader (``django_attachments/uploader.js``); the view lists the owners
  the user may attach to (the patients, plan items and clinical notes of
  their clinic) and the slots each owner type takes.
- A patient's gallery: their files' thumbnails, each opening its preview.
  ``demo/gallery.js`` lists the files through the API and asks for each
  variant at the URL the API gives, waiting out a 202 (a worker making it) as
  its ``Retry-After`` says. The view only checks that the patient is of the
  user's clinic (another clinic's is not found, as in the API).
"""

from clinical_notes.models import ClinicalNote
from clinical_notes.owners import OWNER_TYPE as CLINICAL_NOTE
from clinics.tenancy import clinic_for_request
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from patients.models import Patient
from patients.owners import OWNER_TYPE as PATIENT
from treatment_plan.models import PlanItem
from treatment_plan.owners import OWNER_TYPE as PLAN_ITEM

from django_attachments.conf import app_settings
from django_attachments.registry import attachment_registry


@login_required(login_url="rest_framework:login")
def direct_upload(request: HttpRequest) -> HttpResponse:
    clinic_id = clinic_for_request(request)
    patients = Patient.objects.filter(clinic_id=clinic_id) if clinic_id else Patient.objects.none()
    plan_items = (
        PlanItem.objects.filter(plan__patient__clinic_id=clinic_id).select_related("plan__patient")
        if clinic_id
        else PlanItem.objects.none()
    )
    notes = (
        ClinicalNote.objects.filter(clinic_id=clinic_id).select_related("patient")
        if clinic_id
        else ClinicalNote.objects.none()
    )
    slots = {
        owner_type: sorted(attachment_registry.get(owner_type).allowed_names or ())
        for owner_type in (PATIENT, PLAN_ITEM, CLINICAL_NOTE)
    }
    return render(
        request,
        "demo/direct_upload.html",
        {
            "clinic_id": clinic_id,
            "patients": [(f"{PATIENT}:{patient.pk}", str(patient)) for patient in patients],
            "galleries": [(reverse("patient-gallery", args=[patient.pk]), str(patient)) for patient in patients],
            "plan_items": [(f"{PLAN_ITEM}:{item.pk}", f"{item.plan.patient}: {item}") for item in plan_items],
            "clinical_notes": [(f"{CLINICAL_NOTE}:{note.pk}", f"{note.patient}: {note}") for note in notes],
            "slots": slots,
            "uploads_url": reverse("django_attachments:upload-list"),
            # The uploader hashes files up to the server's threshold before it starts (single-PUT tickets
            # need their SHA-256); larger ones go in parts, each hashed on its way.
            "multipart_threshold": app_settings.MULTIPART_THRESHOLD,
        },
    )


@login_required(login_url="rest_framework:login")
def patient_gallery(request: HttpRequest, patient_id: int) -> HttpResponse:
    clinic_id = clinic_for_request(request)
    patient = Patient.objects.filter(pk=patient_id, clinic_id=clinic_id).first() if clinic_id else None
    if patient is None:  # another clinic's patient, or none: the same answer
        raise Http404("No such patient.")
    query = urlencode({"owner_type": PATIENT, "owner_id": patient.pk, "page_size": 100})
    return render(
        request,
        "demo/patient_gallery.html",
        {
            "patient": patient,
            "attachments_url": f"{reverse('django_attachments:attachment-list')}?{query}",
            "others": [
                (reverse("patient-gallery", args=[other.pk]), str(other))
                for other in Patient.objects.filter(clinic_id=clinic_id).exclude(pk=patient.pk)
            ],
        },
    )
