"""Each attachment keeps the filename it was uploaded under; existing ones take their blob's."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_blob_filenames(apps, schema_editor):
    Attachment = apps.get_model("django_attachments", "Attachment")
    Blob = apps.get_model("django_attachments", "Blob")
    # One UPDATE with a subquery, whatever the table's size.
    Attachment.objects.filter(filename="").update(
        filename=Subquery(Blob.objects.filter(pk=OuterRef("blob_id")).values("filename")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("django_attachments", "0003_direct_upload"),
    ]

    operations = [
        migrations.AddField(
            model_name="attachment",
            name="filename",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The name the file was uploaded under for this owner (sanitised); the blob keeps its first.",
                max_length=255,
                verbose_name="filename",
            ),
        ),
        migrations.RunPython(copy_blob_filenames, migrations.RunPython.noop, elidable=True),
    ]
