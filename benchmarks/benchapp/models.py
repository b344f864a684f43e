from django.db import models


class Thing(models.Model):
    """An owner of attachments, for the benchmarks."""

    label = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.label
