from django.apps import AppConfig
from django.db.models.signals import post_delete


class ClinicalNotesConfig(AppConfig):
    name = "clinical_notes"
    verbose_name = "Clinical notes"

    def ready(self) -> None:
        from django_attachments.registry import attachment_registry

        from . import owners
        from .models import ClinicalNote

        attachment_registry.register(owners.owner_spec)
        post_delete.connect(owners.unlink_files, sender=ClinicalNote, dispatch_uid="clinical_notes.unlink_files")
