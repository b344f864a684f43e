from django.apps import AppConfig
from django.db.models.signals import post_delete


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = "Patients"

    def ready(self) -> None:
        from django_attachments.registry import attachment_registry

        from . import owners
        from .models import Patient

        attachment_registry.register(owners.owner_spec)
        post_delete.connect(owners.unlink_files, sender=Patient, dispatch_uid="patients.unlink_files")
