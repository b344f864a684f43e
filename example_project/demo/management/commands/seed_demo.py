"""``manage.py seed_demo``: demo clinics, staff, patients, a treatment plan, a clinical note and their files.

Idempotent, so ``make demo`` runs it every time: rows are looked up before
they are created, and attaching the same bytes to the same owner and slot
again returns the existing attachment. Files go through
``django_attachments.services.attach`` like any upload would, and show its
deduplication: the same X-ray attached three times within one clinic is stored
once, while the other clinic's copy of those bytes is a blob of its own. Two
apps own files of one patient (her treatment plan's items and her clinical
note), and ``services.link`` links the plan item's X-ray to the note: one
blob, a link from each app.

Ada's own files are the patient gallery's (``/patients/<id>/gallery/``): an
intraoral photo (JPEG), a referral letter (PDF) and a dental X-ray (DICOM),
all drawn in code, each shown by its thumbnail. The X-ray needs pydicom and
NumPy to be written, the photo Pillow: without them that file is skipped,
with a note; the PDF's thumbnail needs pypdfium2 (noted when it is missing).

It also writes a small PNG beside ``manage.py`` (``demo-photo.png``) and
prints the ``curl`` command that uploads it.
"""

import hashlib
import os
import shlex
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from clinical_notes.models import ClinicalNote
from clinics.models import Clinic, StaffProfile
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from patients.models import Patient
from treatment_plan.models import PlanItem, TreatmentPlan

from demo.sample_files import SampleUnavailable, sample_dicom, sample_jpeg, sample_letter, sample_pdf, sample_png
from django_attachments import services
from django_attachments.models import Attachment, Blob
from django_attachments.services import variants

#: The referral letter of the gallery's patient.
REFERRAL_LINES = [
    "Dear colleague,",
    "",
    "Please see Ada Lovelace (N-0001) about her upper left central incisor,",
    "which is to be crowned. Her X-ray and an intraoral photo are attached.",
    "",
    "Kind regards,",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
ADMIN_USERNAME = ADMIN_PASSWORD = "admin"

#: clinic name -> (staff username, password)
CLINICS = {
    "Northside Dental": ("north", "north-demo"),
    "Harbour Dental": ("harbour", "harbour-demo"),
}

XRAY = sample_png((90, 90, 90))
#: The file the printed curl command uploads: bytes no seeded file has, so its first upload creates a blob.
UPLOAD_SAMPLE_NAME = "demo-photo.png"
UPLOAD_SAMPLE = sample_png((60, 120, 200))

#: The admin group of clinic staff: they see and change their own clinic's patients, plans and files.
STAFF_GROUP = "Clinic staff"
STAFF_PERMISSIONS = {
    "patients": ["view_patient", "change_patient"],
    "treatment_plan": ["view_treatmentplan", "change_treatmentplan", "view_planitem", "change_planitem"],
    "clinical_notes": ["view_clinicalnote", "change_clinicalnote"],
}


class Command(BaseCommand):
    help = "Create (or complete) the demo data: users, clinics, patients, a plan, a note and attached files."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--base-url", default=DEFAULT_BASE_URL, help="Where the server will listen, for the printed links."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        base = options["base_url"].rstrip("/")
        self.ensure_superuser()
        group = self.ensure_staff_group()
        north_staff, harbour_staff = (self.ensure_clinic(name, *staff, group=group) for name, staff in CLINICS.items())

        ada = self.ensure_patient(north_staff.clinic, "N-0001", "Ada Lovelace")
        self.ensure_patient(north_staff.clinic, "N-0002", "Alan Turing")
        grace = self.ensure_patient(harbour_staff.clinic, "H-0001", "Grace Hopper")

        plan, _ = TreatmentPlan.objects.get_or_create(patient=ada, title="Crown, upper left incisor")
        consultation, _ = PlanItem.objects.get_or_create(plan=plan, position=1, description="Consultation and X-ray")
        fitting, _ = PlanItem.objects.get_or_create(plan=plan, position=2, description="Crown fitting")

        xray = self.attach(north_staff, "plan_item", consultation, "xray", "xray.png", XRAY)
        self.attach(north_staff, "plan_item", consultation, "before", "before.png", sample_png((200, 170, 120)))
        self.attach(north_staff, "plan_item", consultation, "reference", "referral.pdf", sample_pdf("Referral letter"))
        self.attach(north_staff, "plan_item", fitting, "after", "after.png", sample_png((245, 245, 240)))
        # The same X-ray uploaded again, for another owner of the same patient: one blob, more links.
        self.attach(north_staff, "plan_item", fitting, "xray", "xray-copy.png", XRAY)
        self.attach(north_staff, "patient", ada, "xray", "xray.png", XRAY)
        # A second app owning files of the same patient: her clinical note has a photo of its own,
        # and the plan item's X-ray linked to it, not uploaded again: one blob, a link from each app.
        note = self.ensure_note(north_staff, ada, "Consultation: pain in the upper left incisor")
        self.attach(north_staff, "clinical_note", note, "photo", "intraoral.png", sample_png((180, 60, 70)))
        self.link(north_staff, xray.blob, "clinical_note", note, "xray")
        # Identical bytes in another clinic are never shared across tenants: a blob of its own.
        self.attach(harbour_staff, "patient", grace, "xray", "xray.png", XRAY)
        self.attach(harbour_staff, "patient", grace, "consent", "consent.pdf", sample_pdf("Consent form"))
        # Ada's gallery: a photo, a letter and an X-ray of her own, each shown by its thumbnail.
        self.attach_sample(north_staff, ada, "photo", "intraoral-photo.jpg", sample_jpeg)
        letter = partial(sample_letter, "Referral", "Northside Dental", REFERRAL_LINES)
        self.attach_sample(north_staff, ada, "referral", "referral-letter.pdf", letter)
        if variants.renderer_for("application/pdf") is None:
            self.stdout.write("Note: referral-letter.pdf has no thumbnail here: PDF previews need pypdfium2.")
        xray = partial(sample_dicom, patient="Lovelace^Ada")
        self.attach_sample(north_staff, ada, "xray", "xray-upper-left.dcm", xray)
        # A scan uploaded to the wrong patient and unlinked: an orphan blob, which
        # `manage.py purge_orphan_attachments` removes once the grace period is over.
        self.ensure_orphan(north_staff, ada, "wrong-patient.pdf", sample_pdf("Scan of someone else"))

        sample = self.write_upload_sample()

        self.stdout.write(
            f"\n{Attachment.objects.count()} attachments stored as {Blob.objects.count()} blobs "
            f"({Blob.objects.orphans().count()} of them orphaned).\n"
            f"\n  API:      {base}/api/   (its endpoints; files at {base}/api/attachments/)"
            f"\n  Swagger:  {base}/api/docs/"
            f"\n  Admin:    {base}/admin/"
            f"\n  Upload:   {base}/direct-upload/   (direct upload from the browser)"
            f"\n  Gallery:  {base}/patients/{ada.pk}/gallery/   (Ada's X-ray, photo and letter, as thumbnails)\n"
            f"\nLog in as:\n"
            f"  {ADMIN_USERNAME + ' / ' + ADMIN_PASSWORD:<24}superuser (every clinic's files in the admin; "
            "none in the API)"
        )
        for name, (username, password) in CLINICS.items():
            self.stdout.write(f"  {username + ' / ' + password:<24}staff of {name} (its files in the API and admin)")
        file_field = shlex.quote(f"file=@{sample}")
        self.stdout.write(
            f"\nTry: curl -u north:north-demo {base}/api/attachments/\n"
            f"     curl -u north:north-demo -F owner_type=patient -F owner_id={ada.pk} -F {file_field} "
            f"{base}/api/attachments/\n"
        )

    def write_upload_sample(self) -> Path:
        """Write the PNG the printed curl command uploads, beside manage.py; return its absolute path.

        Absolute, because the command is pasted into a shell whose directory
        is not this process's (``make demo`` runs it inside example_project/).
        """
        path = (Path(settings.BASE_DIR) / UPLOAD_SAMPLE_NAME).resolve()
        if not path.exists() or path.read_bytes() != UPLOAD_SAMPLE:
            # Through a temporary file: two seed_demo runs at once never leave a half-written PNG.
            partial = path.with_name(f".{UPLOAD_SAMPLE_NAME}.{os.getpid()}")
            partial.write_bytes(UPLOAD_SAMPLE)
            partial.replace(path)
        return path

    def ensure_superuser(self) -> None:
        User = get_user_model()  # noqa: N806
        if User.objects.filter(username=ADMIN_USERNAME).exists():
            return
        User.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
        self.stdout.write(f"Created superuser {ADMIN_USERNAME!r}.")

    def ensure_staff_group(self) -> Group:
        group, _ = Group.objects.get_or_create(name=STAFF_GROUP)
        for app_label, codenames in STAFF_PERMISSIONS.items():
            group.permissions.add(*Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
        return group

    def ensure_clinic(self, name: str, username: str, password: str, *, group: Group) -> StaffProfile:
        clinic, created = Clinic.objects.get_or_create(name=name)
        if created:
            self.stdout.write(f"Created clinic {name!r}.")
        User = get_user_model()  # noqa: N806
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username, f"{username}@example.com", password, is_staff=True)
            self.stdout.write(f"Created staff user {username!r}.")
        elif not user.is_staff:  # seeded before clinic staff used the admin
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        user.groups.add(group)
        profile, _ = StaffProfile.objects.get_or_create(user=user, defaults={"clinic": clinic})
        return profile

    def ensure_patient(self, clinic: Clinic, record_number: str, name: str) -> Patient:
        patient, created = Patient.objects.get_or_create(
            clinic=clinic, record_number=record_number, defaults={"name": name}
        )
        if created:
            self.stdout.write(f"Created patient {patient}.")
        return patient

    def ensure_note(self, staff: StaffProfile, patient: Patient, title: str) -> ClinicalNote:
        note, created = ClinicalNote.objects.get_or_create(
            clinic=staff.clinic, patient=patient, title=title, defaults={"author": staff.user}
        )
        if created:
            self.stdout.write(f"Created clinical note {note.title!r} for {patient}.")
        return note

    def ensure_orphan(self, staff: StaffProfile, owner: Any, filename: str, data: bytes) -> None:
        if Blob.objects.filter(checksum=hashlib.sha256(data).hexdigest()).exists():
            return
        attachment = services.attach(
            ContentFile(data, name=filename), owner_type="patient", owner_id=owner.pk, tenant=staff.clinic_id
        )
        services.unlink(attachment)
        self.stdout.write(f"Left {filename} as an orphan blob (attached, then unlinked).")

    def attach(
        self, staff: StaffProfile, owner_type: str, owner: Any, slot: str, filename: str, data: bytes
    ) -> Attachment:
        attachment = services.attach(
            ContentFile(data, name=filename),
            owner_type=owner_type,
            owner_id=owner.pk,
            name=slot,
            tenant=staff.clinic_id,
            user=staff.user,
        )
        if attachment.was_created:
            self.stdout.write(f"Attached {filename} to {owner_type} {owner} [{slot}] (blob {attachment.blob_id}).")
        return attachment

    def attach_sample(
        self, staff: StaffProfile, patient: Patient, slot: str, filename: str, make: Callable[[], bytes]
    ) -> Attachment | None:
        """Attach a sample file drawn by ``make`` to the patient; skipped, with a note, where it cannot be drawn."""
        try:
            data = make()
        except SampleUnavailable as exc:
            self.stdout.write(f"Skipped {filename}: {exc}.")
            return None
        return self.attach(staff, "patient", patient, slot, filename, data)

    def link(self, staff: StaffProfile, blob: Blob, owner_type: str, owner: Any, slot: str) -> Attachment:
        attachment = services.link(
            blob, owner_type=owner_type, owner_id=owner.pk, name=slot, tenant=staff.clinic_id, user=staff.user
        )
        if attachment.was_created:
            self.stdout.write(f"Linked {blob.filename} to {owner_type} {owner} [{slot}] (same blob {blob.pk}).")
        return attachment
