from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoAttachmentsConfig(AppConfig):
    name = "django_attachments"
    verbose_name = _("Attachments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks
        from .signals import attachment_created, blob_created, upload_parts_received

        checks.register()
        # The pipeline starts for each new blob once its row commits (blob_created is sent on commit).
        blob_created.connect(_enqueue_new_blob, dispatch_uid="django_attachments.tasks.enqueue_new_blob")
        # A blob linked to another owner type gets that owner type's eager variants.
        attachment_created.connect(
            _enqueue_eager_variants, dispatch_uid="django_attachments.tasks.enqueue_eager_variants"
        )
        # A multipart direct upload whose parts are all held is joined and read back by a task.
        upload_parts_received.connect(
            _enqueue_upload_verification, dispatch_uid="django_attachments.tasks.enqueue_upload_verification"
        )


def _enqueue_new_blob(sender: object, blob: object, **kwargs: object) -> None:
    # Imported on first use: the task module needs the project's task backends, which need the apps ready.
    from .tasks import enqueue_new_blob

    enqueue_new_blob(sender, blob=blob, **kwargs)


def _enqueue_eager_variants(sender: object, attachment: object, **kwargs: object) -> None:
    from .tasks import enqueue_eager_variants

    enqueue_eager_variants(sender, attachment=attachment, **kwargs)


def _enqueue_upload_verification(sender: object, upload: object, **kwargs: object) -> None:
    from .tasks import enqueue_upload_verification

    enqueue_upload_verification(sender, upload=upload, **kwargs)
