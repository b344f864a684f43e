"""What the API reads and writes. Validation of shape here; policy in the services."""

from __future__ import annotations

from typing import Any, cast

from django.utils import timezone
from rest_framework import serializers

from ..models import (
    DESCRIPTION_MAX_LENGTH,
    FILENAME_MAX_LENGTH,
    NAME_MAX_LENGTH,
    OWNER_ID_MAX_LENGTH,
    AnalysisState,
    Attachment,
    Blob,
    DirectUpload,
    ScanState,
)
from ..registry import OWNER_TYPE_MAX_LENGTH
from . import representation


def _writable_context(serializer: serializers.BaseSerializer) -> dict[str, Any]:
    """The serializer's context, where a page's serializers share what they computed once.

    DRF keeps it as a plain dict (shared with the list's child serializer); its stubs type it read-only.
    """
    return cast(dict[str, Any], serializer.context)


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An integer field that refuses strings, floats and booleans instead of converting them."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class AnalyzedMetadataField(serializers.ReadOnlyField):
    """What the analyzers read from the file (``image.width``, ``pdf.pages``): the blob's namespaced keys.

    Only the keys of configured analyzers (``<name>.<key>``) are shown: the
    upload's own bookkeeping, and any key a project keeps in the metadata
    itself, stay private. An analysis that did not run to its end (pending, or
    never: an infected file is not parsed) shows nothing, whatever an earlier
    run left behind.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="blob", **kwargs)

    def to_representation(self, blob: Blob) -> dict[str, Any]:
        return representation.analyzed_metadata(blob.analysis_state, blob.metadata, representation.analyzer_names())


class AnalysisErrorsField(serializers.ReadOnlyField):
    """Per analyzer that refused the file, its code and message (written to be shown); empty unless failed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="blob", **kwargs)

    def to_representation(self, blob: Blob) -> dict[str, dict[str, str]]:
        return representation.analysis_errors(blob.analysis_state, blob.analysis_errors)


class ScanSignatureField(serializers.ReadOnlyField):
    """What the scanner found in an infected file, for callers with ``is_staff``; null otherwise."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="blob", **kwargs)

    def to_representation(self, blob: Blob) -> str | None:
        return representation.scan_signature(
            blob.scan_state, blob.scan_signature, representation.is_staff(self.context)
        )


class ScanErrorCodeField(serializers.ReadOnlyField):
    """Why a failed scan failed, as an error code; null unless the scan is ``failed``.

    The code only: the scanner's message names its daemon's address, for the logs.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="blob", **kwargs)

    def to_representation(self, blob: Blob) -> str | None:
        return representation.scan_error_code(blob.scan_state, blob.scan_error_code)


#: The blob's columns the attachment representation shows (re-read after an upload; see the view).
PROCESSING_FIELDS = (
    "scan_state",
    "scan_signature",
    "scanned_at",
    "scan_error_code",
    "analysis_state",
    "analysis_errors",
    "analyzed_at",
    "metadata",
)


class AttachmentSerializer(serializers.ModelSerializer):
    blob_id = serializers.UUIDField(read_only=True)
    filename = serializers.CharField(read_only=True)  # the name it was uploaded under for this owner
    content_type = serializers.CharField(source="blob.content_type", read_only=True)
    size = serializers.IntegerField(source="blob.size", read_only=True)
    checksum = serializers.CharField(source="blob.checksum", read_only=True, help_text="SHA-256, lowercase hex.")
    download_url = serializers.SerializerMethodField()
    scan = serializers.ChoiceField(
        ScanState.choices,
        source="blob.scan_state",
        read_only=True,
        help_text="The malware scan: pending (not yet), clean, infected (quarantined: never served or linked), "
        "failed (could not run; retried, see scan_error_code), not_scanned (no scanner was configured).",
    )
    scan_signature = ScanSignatureField(
        help_text="What the scanner found in an infected file, for staff callers (is_staff); null otherwise."
    )
    scan_error_code = ScanErrorCodeField(
        help_text='Why the scan failed, while scan is "failed": scan_unavailable or storage_unavailable '
        "(retried), scan_too_large (final). Null otherwise."
    )
    scanned_at = serializers.DateTimeField(
        source="blob.scanned_at", read_only=True, allow_null=True, help_text="When the scanner gave its verdict."
    )
    analysis = serializers.ChoiceField(
        AnalysisState.choices,
        source="blob.analysis_state",
        read_only=True,
        help_text="The metadata analyzers: pending (not yet), analyzed, failed (an analyzer refused the file: "
        "see analysis_errors), not_analyzed (no analyzer reads this type, or the file is infected).",
    )
    analysis_errors = AnalysisErrorsField(
        help_text="Per analyzer that refused the file, its code (analysis_failed) and a message that may be shown; "
        'empty unless analysis is "failed".'
    )
    analyzed_at = serializers.DateTimeField(
        source="blob.analyzed_at", read_only=True, allow_null=True, help_text="When the analyzers last ran."
    )
    metadata = AnalyzedMetadataField(
        help_text='What the analyzers read, under keys namespaced by analyzer ("image.width", "pdf.pages"): '
        "strings, numbers, booleans, or null where not known. Empty unless analysis is analyzed or failed."
    )
    variants = serializers.SerializerMethodField(
        help_text="The file's variants (thumbnails, previews) by name: {url, width, height, ready}. Ready ones "
        "have their size; the others are made on first request (202 until then). Files of which no preview "
        "can be made (their type, a refused file, a scan not passed) list none."
    )

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
            "scan",
            "scan_signature",
            "scan_error_code",
            "scanned_at",
            "analysis",
            "analysis_errors",
            "analyzed_at",
            "metadata",
            "variants",
        ]
        read_only_fields = fields

    def to_representation(self, instance: Attachment) -> dict[str, Any]:
        """The attachment's JSON, built in one go as the list builds each row (see :mod:`.representation`).

        A subclass, or a serializer whose fields were changed, takes DRF's path, field by field.
        """
        if not representation.applies(self):
            return super().to_representation(instance)
        write = representation.writer_for(self)
        return write(representation.row_of(instance), lambda blob_id: representation.instance_variants(instance))

    def get_variants(self, attachment: Attachment) -> dict[str, dict[str, Any]]:
        blob = attachment.blob
        return representation.writer_for(self).variants(
            str(attachment.pk),
            attachment.owner_type,
            blob.content_type,
            blob.scan_state,
            lambda: representation.instance_variants(attachment),
        )

    def get_download_url(self, attachment: Attachment) -> str:
        # Resolved once per request and filled in per row: reverse() and
        # build_absolute_uri() for every row of a 500-row page add up.
        return representation.writer_for(self).download_url.replace(representation.PLACEHOLDER, str(attachment.pk))


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


# -- direct uploads --------------------------------------------------------------

#: Longest filename a client may declare; it is shortened to MAX_FILENAME_LENGTH when stored.
DECLARED_FILENAME_MAX_LENGTH = 4 * FILENAME_MAX_LENGTH


class StartUploadSerializer(_OwnerFields):
    """application/json: what the client is about to upload, before any byte is sent."""

    filename = StrictCharField(max_length=DECLARED_FILENAME_MAX_LENGTH, trim_whitespace=False)
    size = StrictIntegerField(min_value=0, max_value=2**63 - 1, help_text="Exact size in bytes.")
    checksum = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        required=False,
        allow_null=True,
        help_text="SHA-256 of the bytes, hexadecimal. Required up to MULTIPART_THRESHOLD bytes (sent in one "
        "request); optional above it (sent in parts, each with its own SHA-256; the server reads the whole "
        "back), where it enables the known-bytes shortcut.",
        error_messages={"invalid": "Enter a SHA-256 digest in hexadecimal (64 characters)."},
    )
    content_type = StrictCharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="The client's idea of the type (checked early; the stored type is sniffed).",
    )


class DirectUploadSerializer(serializers.ModelSerializer):
    """A direct-upload ticket. While it is pending and unexpired, ``method``, ``url`` and ``headers`` say how to send
    the bytes (null otherwise)."""

    method = serializers.SerializerMethodField(help_text="The HTTP method to send the bytes with (PUT).")
    url = serializers.SerializerMethodField(
        help_text="Where to send the bytes: the storage itself (signed), or this API where the storage cannot sign."
    )
    headers = serializers.SerializerMethodField(
        help_text="Headers to send with the bytes, exactly as given (they are signed). "
        "Browsers set Content-Length themselves."
    )
    complete_url = serializers.SerializerMethodField()
    checksum = serializers.SerializerMethodField(help_text="The declared SHA-256 (null when none was declared).")
    multipart = serializers.SerializerMethodField(
        help_text="For an upload sent in parts: the part size, the number of parts and where to ask for each "
        "part's signed request (and what the storage holds); null for an upload sent in one request."
    )
    attachment = serializers.SerializerMethodField(help_text="The attachment's id once completed, else null.")

    class Meta:
        model = DirectUpload
        fields = [
            "id",
            "status",
            "owner_type",
            "owner_id",
            "name",
            "description",
            "filename",
            "size",
            "checksum",
            "created_at",
            "expires_at",
            "error_code",
            "error",
            "method",
            "url",
            "headers",
            "multipart",
            "attachment",
            "complete_url",
        ]
        read_only_fields = fields

    def _target(self, upload: DirectUpload) -> dict[str, Any] | None:
        if upload.status != DirectUpload.PENDING or upload.expires_at <= timezone.now():
            return None
        cache = _writable_context(self).setdefault("_targets", {})
        if upload.pk not in cache:
            cache[upload.pk] = self.context["target_for"](upload)
        return cache[upload.pk]

    def get_method(self, upload: DirectUpload) -> str | None:
        target = self._target(upload)
        return target["method"] if target else None

    def get_url(self, upload: DirectUpload) -> str | None:
        target = self._target(upload)
        return target["url"] if target else None

    def get_headers(self, upload: DirectUpload) -> dict[str, str] | None:
        target = self._target(upload)
        return target["headers"] if target else None

    def get_complete_url(self, upload: DirectUpload) -> str:
        return self.context["complete_url_for"](upload)

    def get_checksum(self, upload: DirectUpload) -> str | None:
        return upload.checksum or None

    def get_multipart(self, upload: DirectUpload) -> dict[str, Any] | None:
        if not upload.is_multipart:
            return None
        return {
            "part_size": upload.part_size,
            "part_count": upload.part_count,
            "parts_url": self.context["parts_url_for"](upload),
        }

    def get_attachment(self, upload: DirectUpload) -> str | None:
        return str(upload.attachment_id) if upload.attachment_id else None


class PartChecksumSerializer(serializers.Serializer):
    number = StrictIntegerField(min_value=1, max_value=10_000)
    checksum = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        help_text="SHA-256 of the part's bytes, hexadecimal.",
        error_messages={"invalid": "Enter a SHA-256 digest in hexadecimal (64 characters)."},
    )


class SignPartsSerializer(serializers.Serializer):
    """application/json: the parts to sign, each with its SHA-256 (at most 100 at once)."""

    parts = PartChecksumSerializer(many=True, allow_empty=False)


class PartSerializer(serializers.Serializer):
    """A part the storage holds."""

    number = serializers.IntegerField()
    size = serializers.IntegerField()
    checksum = serializers.CharField(help_text="SHA-256 of the part, hexadecimal.")


class SignedPartSerializer(PartSerializer):
    """A part's signed request: send exactly ``size`` bytes with ``method``, ``url`` and every one of ``headers``."""

    method = serializers.CharField()
    url = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())


class SignedPartsSerializer(serializers.Serializer):
    parts = SignedPartSerializer(many=True)
    expires_at = serializers.DateTimeField()


class HeldPartsSerializer(serializers.Serializer):
    part_size = serializers.IntegerField()
    part_count = serializers.IntegerField()
    parts = PartSerializer(many=True)


class CompleteUploadSerializer(serializers.Serializer):
    """application/json, optional: the whole file's SHA-256, where it was not declared at the start."""

    checksum = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        required=False,
        allow_null=True,
        error_messages={"invalid": "Enter a SHA-256 digest in hexadecimal (64 characters)."},
    )


class StartedUploadSerializer(serializers.Serializer):
    """Either the attachment (the bytes were already known: nothing to send) or the ticket."""

    attachment = AttachmentSerializer(allow_null=True)
    upload = DirectUploadSerializer(allow_null=True)
