from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoAttachmentsConfig(AppConfig):
    name = "django_attachments"
    verbose_name = _("Attachments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks
        from .signals import blob_created

        checks.register()
        # The pipeline starts for each new blob once its row commits (blob_created is sent on commit).
        blob_created.connect(_enqueue_new_blob, dispatch_uid="django_attachments.tasks.enqueue_new_blob")


def _enqueue_new_blob(sender: object, blob: object, **kwargs: object) -> None:
    # Imported on first use: the task module needs the project's task backends, which need the apps ready.
    from .tasks import enqueue_new_blob

    enqueue_new_blob(sender, blob=blob, **kwargs)
