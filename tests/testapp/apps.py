from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django_attachments.registry import OwnerSpec, attachment_registry

        from .owners import resolve_chart, resolve_note, resolve_patient

        attachment_registry.register(OwnerSpec(owner_type="patient", resolver=resolve_patient))
        attachment_registry.register(
            OwnerSpec(
                owner_type="note",
                resolver=resolve_note,
                allowed_names={"", "before", "after", "xray"},
            )
        )
        # Subjects repeat across tenants (every clinic has a chart "1").
        attachment_registry.register(OwnerSpec(owner_type="chart", resolver=resolve_chart))
