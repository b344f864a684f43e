from attachments_framework.models import HasAttachmentsMixin
from django.db import models


class Thing(HasAttachmentsMixin):
    """The owner an upload is linked to when it completes (``relations``)."""

    label = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.label
