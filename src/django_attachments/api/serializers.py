"""What the API reads and writes. Validation of shape here; policy in the services."""

from __future__ import annotations

import uuid
from typing import Any

from django.urls import reverse
from rest_framework import serializers

from ..models import NAME_MAX_LENGTH, OWNER_ID_MAX_LENGTH, Attachment
from ..registry import OWNER_TYPE_MAX_LENGTH

DESCRIPTION_MAX_LENGTH = 10_000
#: Stands in for an attachment id while the download URL is resolved once.
_PLACEHOLDER = uuid.UUID(int=0)


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class AttachmentSerializer(serializers.ModelSerializer):
    blob_id = serializers.UUIDField(read_only=True)
    filename = serializers.CharField(source="blob.filename", read_only=True)
    content_type = serializers.CharField(source="blob.content_type", read_only=True)
    size = serializers.IntegerField(source="blob.size", read_only=True)
    checksum = serializers.CharField(source="blob.checksum", read_only=True, help_text="SHA-256, lowercase hex.")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = [
            "id",
            "owner_type",
            "owner_id",
            "name",
            "description",
            "blob_id",
            "filename",
            "content_type",
            "size",
            "checksum",
            "created_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, attachment: Attachment) -> str:
        # Resolved once per request and filled in per row: reverse() and
        # build_absolute_uri() for every row of a 500-row page add up.
        template = self.context.get("_download_url_template")
        if template is None:
            request = self.context.get("request")
            match = getattr(request, "resolver_match", None)
            namespace = match.namespace if match and match.namespace else "django_attachments"
            path = reverse(f"{namespace}:attachment-download", args=[_PLACEHOLDER])
            template = request.build_absolute_uri(path) if request is not None else path
            self.context["_download_url_template"] = template
        return template.replace(str(_PLACEHOLDER), str(attachment.pk))


class _OwnerFields(serializers.Serializer):
    owner_type = StrictCharField(max_length=OWNER_TYPE_MAX_LENGTH)
    owner_id = StrictCharField(max_length=OWNER_ID_MAX_LENGTH)
    name = StrictCharField(max_length=NAME_MAX_LENGTH, required=False, allow_blank=True, default="")
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH, required=False, allow_blank=True, default="", trim_whitespace=False
    )


class UploadedFileField(serializers.FileField):
    """The uploaded file; described as binary in the OpenAPI schema (see schema.py)."""


class UploadSerializer(_OwnerFields):
    """multipart/form-data: a new file for an owner."""

    file = UploadedFileField(allow_empty_file=True, use_url=False)


class LinkSerializer(_OwnerFields):
    """application/json: an existing blob, linked to another owner."""

    blob_id = serializers.UUIDField()


class UpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=NAME_MAX_LENGTH, required=False, allow_blank=True)
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH, required=False, allow_blank=True, trim_whitespace=False
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(getattr(self, "initial_data", {}) or {}) - {"name", "description"}
        if unknown:
            raise serializers.ValidationError(
                {field: ["This field cannot be changed."] for field in sorted(unknown)}, code="read_only"
            )
        return attrs


class ListFilterSerializer(serializers.Serializer):
    """The list endpoint's query parameters; a malformed value is a 400, not an empty page."""

    owner_type = StrictCharField(max_length=OWNER_TYPE_MAX_LENGTH, required=False)
    owner_id = StrictCharField(max_length=OWNER_ID_MAX_LENGTH, required=False)
    name = StrictCharField(max_length=NAME_MAX_LENGTH, required=False, allow_blank=True)
    checksum = serializers.RegexField(r"^[0-9a-fA-F]{64}$", required=False)


class ListQuerySerializer(ListFilterSerializer):
    """The filters plus the pagination parameters, which the paginator documents itself."""

    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, required=False)
