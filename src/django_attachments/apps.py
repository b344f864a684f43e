from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoAttachmentsConfig(AppConfig):
    name = "django_attachments"
    verbose_name = _("Attachments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks

        checks.register()
