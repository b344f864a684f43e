"""The OpenAPI description of the API, for drf-spectacular (optional: ``[openapi]`` extra).

Without drf-spectacular installed, :func:`describe` leaves the views as they
are; with it, every endpoint documents its bodies (the multipart upload with a
binary ``file``, the JSON link, the binary download) and its error answers.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..models import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH

T = TypeVar("T")

try:
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import (
        OpenApiParameter,
        OpenApiResponse,
        extend_schema,
        extend_schema_field,
        extend_schema_view,
    )
except ImportError:  # pragma: no cover - exercised only without the extra
    extend_schema_view = None  # type: ignore[assignment]


ERROR_SCHEMA = {
    "type": "object",
    "description": (
        'DRF\'s error body plus a machine-readable "code": {"detail": "...", "code": "not_found"} or '
        '{"<field>": ["..."], "code": "owner_mismatch"}.'
    ),
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


UPDATE_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": NAME_MAX_LENGTH},
        "description": {"type": "string", "maxLength": DESCRIPTION_MAX_LENGTH},
    },
    "additionalProperties": False,
}


def _errors(*statuses: int, meanings: dict[int, str] | None = None) -> dict[int, Any]:
    """Error answers for ``statuses``; ``meanings`` say what a status means at one endpoint instead."""
    meaning = {
        400: "Invalid input; the body names the field.",
        401: "Not authenticated.",
        403: "Not allowed (permission, no tenant, or the owner type's can_attach hook).",
        404: "No such attachment, blob or upload in the caller's tenant.",
        409: "The upload is closed or already has its bytes; or the file is not available now (blob_unavailable).",
        410: "The upload expired.",
        413: "The file is larger than the upload limit.",
        415: "The sniffed content type is not allowed.",
        503: "The storage is unavailable.",
    }
    meaning.update(meanings or {})
    return {status: OpenApiResponse(ERROR_SCHEMA, description=meaning[status]) for status in statuses}


#: An analyzer's value: a JSON scalar.
_SCALAR = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "nullable": True}

#: The schemas of the attachment's processing fields that DRF cannot describe itself (their help_text describes them).
PROCESSING_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "AnalyzedMetadataField": {"type": "object", "additionalProperties": _SCALAR},
    "AnalysisErrorsField": {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "detail": {"type": "string"}},
            "required": ["code", "detail"],
        },
    },
    "ScanSignatureField": {"type": "string", "nullable": True},
    "ScanErrorCodeField": {"type": "string", "nullable": True},
}


def _list_parameters() -> list[Any]:
    """The list filters that take several values: comma-separated (or the parameter repeated), each of an enum."""
    from ..models import AnalysisState, ScanState
    from .filters import CONTENT_TYPE_PATTERN

    def states(name: str, choices: list[str], what: str) -> Any:
        return OpenApiParameter(
            name,
            {"type": "array", "items": {"type": "string", "enum": choices}, "minItems": 1},
            OpenApiParameter.QUERY,
            style="form",
            explode=False,
            description=f"Only attachments whose {what} is one of these states, comma-separated "
            f"(e.g. {choices[0]},{choices[-1]}). An unknown state is a 400 (invalid_choice).",
        )

    return [
        states("scan", list(ScanState.values), "malware scan"),
        states("analysis", list(AnalysisState.values), "metadata analysis"),
        OpenApiParameter(
            "content_type",
            {
                "type": "array",
                "items": {"type": "string", "pattern": f"^{CONTENT_TYPE_PATTERN.pattern}$"},
                "minItems": 1,
            },
            OpenApiParameter.QUERY,
            style="form",
            explode=False,
            description="Only attachments of one of these sniffed content types (application/pdf) or families "
            "(image/*), comma-separated; case-insensitive. A malformed one is a 400 (invalid).",
        ),
    ]


def describe(viewset: type[T]) -> type[T]:
    """Attach the OpenAPI description to the attachments viewset."""
    if extend_schema_view is None:
        return viewset
    from . import serializers
    from .filters import ListFilterSerializer
    from .serializers import AttachmentSerializer, LinkSerializer, UploadedFileField, UploadSerializer

    # Binary whatever the project's COMPONENT_SPLIT_REQUEST says.
    extend_schema_field(OpenApiTypes.BINARY)(UploadedFileField)
    for name, field_schema in PROCESSING_FIELD_SCHEMAS.items():
        extend_schema_field(field_schema)(getattr(serializers, name))

    binary = OpenApiResponse(OpenApiTypes.BINARY, description="The file's bytes.")
    return extend_schema_view(
        list=extend_schema(
            summary="List the caller's tenant's attachments, newest first",
            parameters=[ListFilterSerializer, *_list_parameters()],
            responses={200: AttachmentSerializer(many=True), **_errors(400, 401, 403, 404)},
        ),
        create=extend_schema(
            summary="Upload a file to an owner, or link an existing blob to another owner",
            description=(
                "multipart/form-data with `file` uploads new bytes (deduplicated per tenant and subject); "
                "application/json with `blob_id` links an existing blob. 201 when the link is new, 200 when it "
                "already existed."
            ),
            request={"multipart/form-data": UploadSerializer, "application/json": LinkSerializer},
            responses={
                201: AttachmentSerializer,
                200: AttachmentSerializer,
                **_errors(400, 401, 403, 404, 413, 415, 503),
            },
        ),
        retrieve=extend_schema(
            summary="One attachment", responses={200: AttachmentSerializer, **_errors(401, 403, 404)}
        ),
        partial_update=extend_schema(
            summary="Change an attachment's slot (name) or description",
            # A raw schema rather than the serializer: other fields are refused, not ignored.
            request={"application/json": UPDATE_SCHEMA},
            responses={200: AttachmentSerializer, **_errors(400, 401, 403, 404)},
        ),
        destroy=extend_schema(
            summary="Unlink: remove the attachment (its blob stays until the purge removes orphans)",
            responses={204: None, **_errors(401, 403, 404)},
        ),
        download=extend_schema(
            summary="The file's bytes (streamed, single byte ranges, ETag)",
            parameters=[
                OpenApiParameter("Range", OpenApiTypes.STR, OpenApiParameter.HEADER, description="bytes=START-END"),
                OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER),
                OpenApiParameter("If-Range", OpenApiTypes.STR, OpenApiParameter.HEADER),
            ],
            responses={
                (200, "*/*"): binary,
                (206, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The requested byte range."),
                302: OpenApiResponse(description="Redirect to a signed storage URL (redirect mode)."),
                304: OpenApiResponse(description="Not modified (If-None-Match)."),
                416: OpenApiResponse(description="Range not satisfiable."),
                **_errors(
                    401,
                    403,
                    404,
                    409,
                    503,
                    meanings={
                        409: "The file may not be served now: quarantined (the malware scanner found a threat in "
                        "it; never served), scan_pending (not scanned yet, or its scan failed and is retried; "
                        "try again later) or scan_failed (its scan failed for good; staff must act)."
                    },
                ),
            },
        ),
        variant=extend_schema(
            summary="A variant of the file (a thumbnail, a preview), made once; 202 while it is being made",
            description=(
                "The variant `name` declared for the attachment's owner type (VARIANTS, OwnerSpec(variants=...)). "
                "A variant not made yet is handed to a worker: 202 (`variant_pending`) with `Retry-After` until "
                "it exists. Served inline, with the download's headers (ETag, ranges, no-store, nosniff)."
            ),
            parameters=[
                OpenApiParameter("variant", OpenApiTypes.STR, OpenApiParameter.PATH, description="The variant's name."),
                OpenApiParameter("Range", OpenApiTypes.STR, OpenApiParameter.HEADER, description="bytes=START-END"),
                OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER),
            ],
            responses={
                (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The picture (WebP, JPEG, PNG)."),
                (206, "image/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The requested byte range."),
                202: OpenApiResponse(
                    ERROR_SCHEMA, description="variant_pending: being made; ask again after Retry-After seconds."
                ),
                302: OpenApiResponse(description="Redirect to a signed storage URL (redirect mode)."),
                304: OpenApiResponse(description="Not modified (If-None-Match)."),
                416: OpenApiResponse(description="Range not satisfiable."),
                **_errors(
                    401,
                    403,
                    404,
                    409,
                    503,
                    meanings={
                        404: "No such attachment (or another tenant's, or hidden), variant_not_found (no variant "
                        "of that name for this owner type) or no_preview (no picture can be made of this file; "
                        "the detail says why).",
                        409: "quarantined, scan_pending or scan_failed: the scanner has not passed the file, and "
                        "no picture is made of it before.",
                        503: "storage_unavailable, or preview_unavailable: it could not be made just now "
                        "(Retry-After says when to ask again).",
                    },
                ),
            },
        ),
    )(viewset)


def describe_uploads(viewset: type[T]) -> type[T]:
    """Attach the OpenAPI description to the direct-uploads viewset."""
    if extend_schema_view is None:
        return viewset
    from .serializers import (
        CompleteUploadSerializer,
        DirectUploadSerializer,
        HeldPartsSerializer,
        SignedPartsSerializer,
        SignPartsSerializer,
        StartedUploadSerializer,
        StartUploadSerializer,
    )

    return extend_schema_view(
        create=extend_schema(
            summary="Start a direct upload: the bytes go to the storage, not through this server",
            description=(
                "Declare the file (size, SHA-256, filename) for an owner. The owner, size and declared type are "
                "checked as for an upload. If the caller's tenant already holds these bytes for the owner's "
                "subject, the attachment is made at once (`upload` is null). Otherwise `upload` says where and "
                "how to send the bytes (`method`, `url`, `headers`: send every header as given) and where to "
                "complete. 201 when something new was made, 200 when the attachment already existed. Above "
                "MULTIPART_THRESHOLD the ticket is multipart (`multipart`: part size, part count, parts URL), and "
                "`checksum` may be left out."
            ),
            request={"application/json": StartUploadSerializer},
            responses={
                201: StartedUploadSerializer,
                200: StartedUploadSerializer,
                **_errors(400, 401, 403, 404, 413, 415),
            },
        ),
        retrieve=extend_schema(
            summary="One direct upload (ticket)", responses={200: DirectUploadSerializer, **_errors(401, 403, 404)}
        ),
        complete=extend_schema(
            summary="Complete a direct upload: the server checks the bytes, then attaches them",
            description=(
                "The object must exist and have the declared size and SHA-256, and its sniffed type must be "
                "allowed. On a mismatch the object is deleted and the upload fails (`code`: size_mismatch, "
                "checksum_mismatch, unsupported_file_type, ...); completing again answers the same. 400 "
                "`upload_missing` while no bytes have arrived (the upload stays open). 201 with the new "
                "attachment; 200 when completed before."
            ),
            request={"application/json": CompleteUploadSerializer},
            responses={
                201: StartedUploadSerializer,
                200: StartedUploadSerializer,
                202: OpenApiResponse(
                    StartedUploadSerializer,
                    description="A multipart upload whose parts are all there is being verified (the object read "
                    "back); complete again after Retry-After.",
                ),
                **_errors(400, 401, 403, 404, 409, 410, 413, 415, 503),
            },
        ),
        destroy=extend_schema(
            summary="Cancel a pending direct upload: its bytes (or parts) are dropped",
            responses={204: None, **_errors(401, 403, 404, 409)},
        ),
        parts=[
            extend_schema(
                methods=["GET"],
                summary="The parts of a multipart upload the storage holds (to resume)",
                responses={200: HeldPartsSerializer, **_errors(401, 403, 404, 410)},
            ),
            extend_schema(
                methods=["POST"],
                summary="Signed requests for parts of a multipart upload, each bound to its length and SHA-256",
                description=(
                    "At most 100 parts at once, by number (from 1) with each part's SHA-256. Send each part with "
                    "exactly its method, URL and headers; a part may be sent again, in any order. A part's "
                    "checksum is fixed once signed (409 `part_conflict`)."
                ),
                request={"application/json": SignPartsSerializer},
                responses={200: SignedPartsSerializer, **_errors(400, 401, 403, 404, 409, 410)},
            ),
        ],
    )(viewset)
