from django.apps import AppConfig
from django.db.models.signals import post_delete


class TreatmentPlanConfig(AppConfig):
    name = "treatment_plan"
    verbose_name = "Treatment plans"

    def ready(self) -> None:
        from django_attachments.registry import attachment_registry

        from . import owners
        from .models import PlanItem

        attachment_registry.register(owners.owner_spec)
        post_delete.connect(owners.unlink_files, sender=PlanItem, dispatch_uid="treatment_plan.unlink_files")
