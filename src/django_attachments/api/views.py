"""The attachments endpoint: list, upload or link, read, edit, unlink, download.

Every request sees only its tenant's attachments; an attachment of another
tenant is "not found", exactly like one that does not exist. The views
translate HTTP to :mod:`django_attachments.services` calls and back.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import reduce
from typing import Any

from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.http.response import HttpResponseBase
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from .. import downloads, services
from ..conf import app_settings
from ..exceptions import AttachmentError, BlobNotFound
from ..models import Attachment, Blob
from ..policy import caller_tenant, view_hooked_owner_types
from ..registry import attachment_registry
from . import access, errors, representation, schema, uploads
from .filters import ListQuerySerializer
from .serializers import (
    PROCESSING_FIELDS,
    AttachmentSerializer,
    LinkSerializer,
    UpdateSerializer,
    UploadSerializer,
)

#: Seconds a client is told to wait (``Retry-After``) before asking again for a variant being made.
VARIANT_RETRY_AFTER = 1


class AttachmentPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    page_size = access.FromSettings("PAGE_SIZE")
    max_page_size = access.FromSettings("MAX_PAGE_SIZE")


@schema.describe
class AttachmentViewSet(
    uploads.BodyGuardMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Files attached to owners, as the caller's tenant sees them (another tenant's attachment is "not found")."""

    serializer_class = AttachmentSerializer
    pagination_class = AttachmentPagination
    permission_classes = access.FromSettings("PERMISSION_CLASSES")
    # JSON first: the browsable API offers it by default (only the upload takes multipart).
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    file_actions = frozenset({"create"})  # see uploads.BodyGuardMixin
    # Any segment: a malformed id gets this API's JSON 404, not the project's HTML one.
    lookup_value_regex = "[^/]+"

    def get_exception_handler(self) -> Any:
        return errors.handle_exception

    # -- reading ---------------------------------------------------------------

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # A page of the tenant's attachments read as plain rows (see representation.py): the JSON the
        # serializer makes of each, in the same queries. A serializer_class of a project's own takes
        # DRF's path. (No docstring: the OpenAPI schema would take it for the operation's description.)
        serializer = self.get_serializer()
        if not representation.applies(serializer):
            return super().list(request, *args, **kwargs)
        rows = representation.page_values(self.filter_queryset(self.get_queryset()))
        page = self.paginate_queryset(rows)
        results = representation.write_page(list(rows) if page is None else page, serializer)
        return Response(results) if page is None else self.get_paginated_response(results)

    def get_queryset(self) -> QuerySet[Attachment]:
        queryset = services.attachments_for(caller_tenant(self.request)).order_by("-created_at", "-id")
        if self.action in ("list", "retrieve") and services.variants.any_declared():
            # The representation lists each file's variants: two queries a page, not two a row.
            queryset = queryset.prefetch_related("blob__variants", "blob__renders")
        if self.action != "list":
            return queryset
        filters = ListQuerySerializer(data=self._query())
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        for field in ("owner_type", "owner_id", "name"):
            if field in values:
                queryset = queryset.filter(**{field: values[field]})
        if "checksum" in values:
            queryset = queryset.filter(blob__checksum=values["checksum"].lower())
        # On the blob already joined for the tenant (and selected for the representation).
        if "scan" in values:
            queryset = queryset.filter(blob__scan_state__in=values["scan"])
        if "analysis" in values:
            queryset = queryset.filter(blob__analysis_state__in=values["analysis"])
        if "content_type" in values:
            queryset = queryset.filter(self._content_types(values["content_type"]))
        return self._visible(queryset, values)

    def _query(self) -> dict[str, str]:
        """The query parameters as a plain dict, a repeated list filter joined by commas.

        Not the QueryDict: DRF reads an empty form value as "not given", and
        "?owner_type=" should be refused, not ignored (while "?name=" means "no slot").
        """
        params = self.request.query_params
        query = params.dict()
        for field in ListQuerySerializer.LIST_FILTERS:
            if field in params:
                query[field] = ",".join(params.getlist(field))
        return query

    @staticmethod
    def _content_types(patterns: Sequence[str]) -> Q:
        """Blobs of one of the types, or of one of the families (``image/*``)."""
        conditions = [
            Q(blob__content_type__startswith=pattern[:-1]) if pattern.endswith("/*") else Q(blob__content_type=pattern)
            for pattern in patterns
        ]
        return reduce(operator.or_, conditions)

    def _visible(self, queryset: QuerySet[Attachment], values: dict[str, Any]) -> QuerySet[Attachment]:
        """Apply the owner types' ``can_view`` hooks to a list.

        A hook is asked about one owner at a time, so owner types that have one
        are listed only for a single owner (``?owner_type=…&owner_id=…``), where
        the hook is asked once; elsewhere their rows are left out. The number
        of queries stays independent of the page size either way.
        """
        owner_type, owner_id = values.get("owner_type"), values.get("owner_id")
        if owner_type and owner_id and owner_type in attachment_registry:
            spec = attachment_registry.get(owner_type)
            if spec.can_view is not None:
                tenant = caller_tenant(self.request)  # NoTenant: 403, not an empty page
                try:
                    _, owner = services.resolve_owner(owner_type, owner_id, tenant=tenant)
                except AttachmentError:
                    return queryset.none()
                return queryset if access.may_view(self.request, spec, owner) else queryset.none()
        hooked = view_hooked_owner_types()
        return queryset.exclude(owner_type__in=hooked) if hooked else queryset

    def get_object(self) -> Attachment:
        attachment = super().get_object()
        access.check_owner(
            self.request,
            attachment.owner_type,
            attachment.owner_id,
            change=self.action in {"partial_update", "destroy"},
        )
        return attachment

    @action(detail=True, methods=["get"], url_path="download")
    def download(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        attachment = self.get_object()
        if app_settings.DOWNLOAD_MODE == "redirect":
            redirect = downloads.redirect_to_blob(attachment.blob, filename=attachment.filename)
            if redirect is not None:
                return redirect
        return downloads.serve_blob(request, attachment.blob, filename=attachment.filename)

    @action(detail=True, methods=["get"], url_path=r"variants/(?P<variant>[^/]+)", url_name="variant")
    def variant(self, request: Request, pk: str | None = None, variant: str = "") -> HttpResponseBase:
        """A variant of the file (a thumbnail, a preview): 200, or 202 with ``Retry-After`` while it is made.

        The first request for a variant not made yet hands it to a worker; it
        and every request until the variant exists get 202 with
        ``Retry-After`` (with the immediate task backend, the first request
        makes it and gets it). Unknown name: 404 ``variant_not_found``; a file
        of which no preview can be made: 404 ``no_preview``.
        """
        attachment = self.get_object()
        found = downloads.variant_or_pending(attachment.blob, variant, owner_type=attachment.owner_type)
        if found is None:
            response = Response(
                {"code": "variant_pending", "detail": "The variant is being made; try again shortly."},
                status=status.HTTP_202_ACCEPTED,
            )
            response["Retry-After"] = str(VARIANT_RETRY_AFTER)
            response["Cache-Control"] = "no-store"
            return response
        return downloads.send_variant(request, found)

    # -- writing ---------------------------------------------------------------

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data  # a size-guarded body: see uploads.BodyGuardMixin
        is_form = isinstance(data, QueryDict)  # multipart or urlencoded; JSON parses to a dict
        if not hasattr(data, "keys"):
            raise ValidationError({"non_field_errors": ["Expected an object."]}, code="invalid")
        if "file" in data and "blob_id" in data:
            raise ValidationError({"blob_id": ["Send either a file or a blob_id, not both."]}, code="invalid")
        serializer: UploadSerializer | LinkSerializer
        if is_form and "blob_id" not in data:
            serializer = UploadSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            attachment = self._perform(services.attach, serializer.validated_data.pop("file"), serializer)
        else:
            serializer = LinkSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            attachment = self._perform(self._link, serializer.validated_data.pop("blob_id"), serializer)
        # The pipeline may have run since the blob was read (at once, when the upload committed
        # and the task backend is immediate): answer with the states it left.
        attachment.blob.refresh_from_db(fields=PROCESSING_FIELDS)
        output = AttachmentSerializer(attachment, context=self.get_serializer_context()).data
        return Response(output, status=status.HTTP_201_CREATED if attachment.was_created else status.HTTP_200_OK)

    def _perform(self, verb: Any, subject: Any, serializer: Any) -> Attachment:
        """Check the caller may attach to the owner, then attach or link ``subject``."""
        values = serializer.validated_data
        tenant = access.authorize_attach(self.request, values["owner_type"], values["owner_id"])
        return verb(subject, **values, tenant=tenant, user=self.request.user)

    def _link(self, blob_id: Any, *, tenant: str | None, **values: Any) -> Attachment:
        """services.link(), for a blob the caller may already see an attachment of.

        A blob id is no right to its bytes (nor is a checksum: see
        services.start_upload): another blob is "not found", as a missing one.
        """
        blob = Blob.objects.for_tenant(tenant).filter(pk=blob_id).first()
        if blob is None or not access.may_view_blob(self.request, blob):
            raise BlobNotFound(f"No blob with id '{blob_id}'.")
        return services.link(blob, tenant=tenant, **values)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        attachment = self.get_object()
        serializer = UpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.update_attachment(attachment, **serializer.validated_data)
        return Response(AttachmentSerializer(attachment, context=self.get_serializer_context()).data)

    def perform_destroy(self, instance: Attachment) -> None:
        services.unlink(instance)
