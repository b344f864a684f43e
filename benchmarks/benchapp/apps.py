from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_attachments.registry import Owner, OwnerSpec, attachment_registry

        from .models import Thing

        def resolve_thing(owner_id: str) -> Owner | None:
            thing = Thing.objects.filter(pk=int(owner_id)).first()
            return None if thing is None else Owner(instance=thing)

        attachment_registry.register(OwnerSpec(owner_type="thing", resolver=resolve_thing))
