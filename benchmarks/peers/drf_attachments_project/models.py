from django.db import models
from drf_attachments.models.fields import AttachmentRelation


class Thing(models.Model):
    """The owner of the attachments (their content object)."""

    label = models.CharField(max_length=100)
    attachments = AttachmentRelation()

    class AttachmentMeta:
        # Any type, any extension, any size (drf-attachments' limit is ATTACHMENT_MAX_UPLOAD_SIZE).
        valid_mime_types: list[str] = []
        valid_extensions: list[str] = []

    def __str__(self) -> str:
        return self.label
