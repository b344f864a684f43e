"""Direct uploads over HTTP: start, send the bytes (to the storage, or here), complete.

::

    POST attachments/uploads/                 {"owner_type", "owner_id", "filename", "size", "checksum", ...}
        -> 201 {"attachment": {...}, "upload": null}        the bytes were known: attached, done
        -> 201 {"attachment": null, "upload": {"method", "url", "headers", "complete_url", ...}}
    PUT  <upload.url>  with <upload.headers>  the bytes   a presigned S3 URL, or this API's own
    POST attachments/uploads/{id}/complete/   -> 201 {"attachment": {...}, "upload": {... "completed"}}
    GET  attachments/uploads/{id}/            the ticket
    DELETE attachments/uploads/{id}/          cancel a pending upload

Above ``MULTIPART_THRESHOLD`` the ticket is multipart (``upload.multipart``
gives ``part_size``, ``part_count`` and ``parts_url``; ``checksum`` may be
left out at the start)::

    POST <parts_url> {"parts": [{"number": 1, "checksum": "<part's SHA-256>"}, ...]}
        -> 200 {"parts": [{"number", "size", "checksum", "method", "url", "headers"}, ...], "expires_at"}
    PUT  <part.url>  with <part.headers>  the part's bytes (any order, in parallel, again if refused)
    GET  <parts_url>                          -> 200 {"parts": [...]}: what the storage holds (to resume)
    POST attachments/uploads/{id}/complete/   -> 202 {"upload": {... "verifying"}} (Retry-After), then as above

Where the storage cannot sign an upload URL (local disk), ``url`` points at
:class:`UploadContentView` (and each part's at :class:`UploadPartView`),
which need no credentials but a token signed for that ticket (and part),
like a presigned URL, so clients use one flow everywhere.
"""

from __future__ import annotations

from typing import IO, Any, cast

from django.core import signing
from django.urls import reverse
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ParseError, PermissionDenied
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..conf import app_settings
from ..exceptions import UploadNotFound, UploadVerifying
from ..models import DirectUpload
from ..policy import caller_tenant
from . import access, errors, schema, uploads
from .serializers import (
    PROCESSING_FIELDS,
    AttachmentSerializer,
    CompleteUploadSerializer,
    DirectUploadSerializer,
    HeldPartsSerializer,
    SignedPartsSerializer,
    SignPartsSerializer,
    StartUploadSerializer,
)

_TOKEN_SALT = "django_attachments.direct-upload"
_PART_TOKEN_SALT = "django_attachments.direct-upload-part"
#: Seconds a client waits before asking again about an upload being verified.
VERIFY_RETRY_AFTER = 1


class LengthRequired(APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = "Send the bytes with a Content-Length header."
    default_code = "length_required"


def upload_token(upload: DirectUpload) -> str:
    """The signed token of the API's own upload URL for ``upload``."""
    return signing.dumps(str(upload.pk), salt=_TOKEN_SALT, compress=False)


def part_token(upload: DirectUpload, number: int, checksum: str) -> str:
    """The signed token of the API's own URL for part ``number``: it binds the part's SHA-256 (and so its bytes)."""
    return signing.dumps([str(upload.pk), number, checksum], salt=_PART_TOKEN_SALT, compress=False)


def _content_length(request: Request) -> int:
    raw_length = request.META.get("CONTENT_LENGTH")
    if not raw_length:
        raise LengthRequired()
    try:
        length = int(raw_length)
    except ValueError:
        length = -1
    if length < 0:
        raise ParseError("Content-Length must be a whole number of bytes.")
    return length


def _namespace(request: Request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.namespace if match and match.namespace else "django_attachments"


@schema.describe_uploads
class DirectUploadViewSet(uploads.BodyGuardMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Direct uploads: a ticket, the bytes sent to the storage (or to this API's upload URL), then completion."""

    serializer_class = DirectUploadSerializer
    parser_classes = [JSONParser]
    permission_classes = access.FromSettings("PERMISSION_CLASSES")
    lookup_value_regex = "[^/]+"

    def get_exception_handler(self) -> Any:
        return errors.handle_exception

    def get_queryset(self) -> Any:
        return DirectUpload.objects.for_tenant(caller_tenant(self.request))

    def get_object(self, *, change: bool = False) -> DirectUpload:
        try:
            upload = services.get_upload(self.kwargs["pk"], tenant=caller_tenant(self.request))
        except UploadNotFound:
            raise NotFound() from None
        # An owner gone since is left to complete_upload(), which fails the ticket and deletes its object.
        access.check_owner(self.request, upload.owner_type, upload.owner_id, change=change, missing_ok=change)
        return upload

    def get_serializer_context(self) -> dict[str, Any]:
        return {
            **super().get_serializer_context(),
            "target_for": self._target_for,
            "complete_url_for": self._complete_url_for,
            "parts_url_for": self._parts_url_for,
        }

    def _parts_url_for(self, upload: DirectUpload) -> str:
        return self._absolute("upload-parts", upload)

    def _absolute(self, name: str, upload: DirectUpload) -> str:
        path = reverse(f"{_namespace(self.request)}:{name}", args=[upload.pk])
        return self.request.build_absolute_uri(path)

    def _complete_url_for(self, upload: DirectUpload) -> str:
        return self._absolute("upload-complete", upload)

    def _target_for(self, upload: DirectUpload) -> dict[str, Any] | None:
        if upload.is_multipart:
            return None  # each part has its own request (the parts action)
        target = services.upload_target(upload)
        if target is not None:
            return {"method": target.method, "url": target.url, "headers": target.headers}
        url = f"{self._absolute('upload-content', upload)}?token={upload_token(upload)}"
        headers = {"Content-Length": str(upload.size), "Content-Type": "application/octet-stream"}
        return {"method": "PUT", "url": url, "headers": headers}

    def _envelope(self, attachment: Any, upload: DirectUpload | None) -> dict[str, Any]:
        context = self.get_serializer_context()
        if attachment is not None:  # the pipeline may have run since the blob was read (see the attachments' create)
            attachment.blob.refresh_from_db(fields=PROCESSING_FIELDS)
        return {
            "attachment": AttachmentSerializer(attachment, context=context).data if attachment is not None else None,
            "upload": DirectUploadSerializer(upload, context=context).data if upload is not None else None,
        }

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not hasattr(request.data, "keys"):
            raise ParseError("Expected a JSON object.")
        serializer = StartUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        tenant = access.authorize_attach(request, values["owner_type"], values["owner_id"])
        started = services.start_upload(
            **values,
            tenant=tenant,
            user=request.user,
            may_use_known=lambda blob: access.may_view_blob(request, blob),
        )
        created = started.upload is not None or bool(started.attachment and started.attachment.was_created)
        return Response(
            self._envelope(started.attachment, started.upload),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @action(detail=True, methods=["post"], url_path="complete", url_name="complete")
    def complete(self, request: Request, pk: str | None = None) -> Response:
        upload = self.get_object(change=True)
        serializer = CompleteUploadSerializer(data=request.data if hasattr(request.data, "keys") else {})
        serializer.is_valid(raise_exception=True)
        try:
            attachment = services.complete_upload(
                upload.pk,
                tenant=caller_tenant(request),
                user=request.user,
                checksum=serializer.validated_data.get("checksum"),
            )
        except UploadVerifying:
            upload.refresh_from_db()
            return Response(
                self._envelope(None, upload),
                status=status.HTTP_202_ACCEPTED,
                headers={"Retry-After": str(VERIFY_RETRY_AFTER)},
            )
        upload.refresh_from_db()
        return Response(
            self._envelope(attachment, upload),
            status=status.HTTP_201_CREATED if attachment.was_created else status.HTTP_200_OK,
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        upload = self.get_object(change=True)
        services.cancel_upload(upload.pk, tenant=caller_tenant(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get", "post"], url_path="parts", url_name="parts")
    def parts(self, request: Request, pk: str | None = None) -> Response:
        """GET: the parts the storage holds; POST: signed requests for parts, each bound to its SHA-256."""
        upload = self.get_object(change=request.method == "POST")
        if not upload.is_multipart:
            raise NotFound("This upload is sent in one request; it has no parts.")
        if request.method == "GET":
            held = services.held_parts(upload)
            data = {"part_size": upload.part_size, "part_count": upload.part_count, "parts": held}
            return Response(HeldPartsSerializer(data).data)
        serializer = SignPartsSerializer(data=request.data if hasattr(request.data, "keys") else None)
        if not hasattr(request.data, "keys"):
            raise ParseError("Expected a JSON object.")
        serializer.is_valid(raise_exception=True)
        wanted = [(item["number"], item["checksum"]) for item in serializer.validated_data["parts"]]
        signed = services.sign_parts(upload, wanted)
        parts = []
        for part in signed:
            if part.target is not None:
                method, url, headers = part.target.method, part.target.url, part.target.headers
            else:
                path = reverse(f"{_namespace(request)}:upload-part", args=[upload.pk, part.number])
                url = f"{request.build_absolute_uri(path)}?token={part_token(upload, part.number, part.checksum)}"
                method = "PUT"
                headers = {"Content-Length": str(part.size), "Content-Type": "application/octet-stream"}
            parts.append(
                {"number": part.number, "size": part.size, "checksum": part.checksum}
                | {"method": method, "url": url, "headers": headers}
            )
        return Response(SignedPartsSerializer({"parts": parts, "expires_at": upload.expires_at}).data)


class UploadContentView(APIView):
    """``PUT`` the bytes of a direct upload, for storages that cannot sign an upload URL.

    Authorised by the signed token in the URL (as a presigned URL would be),
    not by the caller's credentials; the body is streamed into the storage in
    chunks and hashed on the way. Answers 204; completing checks the bytes.
    """

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes: list[Any] = []
    schema = None  # reached through a ticket's url, not described on its own

    def get_exception_handler(self) -> Any:
        return errors.handle_exception

    def put(self, request: Request, pk: str) -> Response:
        try:
            signed = signing.loads(
                request.query_params.get("token", ""),
                salt=_TOKEN_SALT,
                max_age=app_settings.UPLOAD_EXPIRY.total_seconds() + 60,
            )
        except signing.BadSignature:
            signed = None
        if signed != pk:
            raise PermissionDenied(
                "This upload URL is not valid (wrong or expired signature).", code="invalid_signature"
            )
        upload = services.get_upload(pk)
        length = _content_length(request)
        services.receive_upload(upload, cast(IO[bytes], request._request), length=length)  # HttpRequest.read()
        return Response(status=status.HTTP_204_NO_CONTENT)


class UploadPartView(APIView):
    """``PUT`` one part of a multipart direct upload, for storages that cannot sign an upload URL.

    Authorised by the signed token in the URL, which binds the ticket, the
    part's number and its SHA-256 (as a presigned ``UploadPart`` binds them);
    the body is streamed to a temporary file, hashed on the way, and kept only
    when its length and SHA-256 are the part's. Answers 204.
    """

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes: list[Any] = []
    schema = None  # reached through a part's url, not described on its own

    def get_exception_handler(self) -> Any:
        return errors.handle_exception

    def put(self, request: Request, pk: str, number: int) -> Response:
        try:
            signed = signing.loads(
                request.query_params.get("token", ""),
                salt=_PART_TOKEN_SALT,
                max_age=app_settings.UPLOAD_EXPIRY.total_seconds() + 60,
            )
        except signing.BadSignature:
            signed = None
        if not isinstance(signed, list) or len(signed) != 3 or signed[:2] != [pk, number]:
            raise PermissionDenied(
                "This upload URL is not valid (wrong or expired signature).", code="invalid_signature"
            )
        upload = services.get_upload(pk)
        length = _content_length(request)
        stream = cast(IO[bytes], request._request)  # HttpRequest.read()
        services.receive_part(upload, number, stream, length=length, checksum=signed[2])
        return Response(status=status.HTTP_204_NO_CONTENT)
