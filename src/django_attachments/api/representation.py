"""The attachment's JSON, built from a row of plain values: the list's read path, and the detail's.

DRF's way to a page of 500 attachments is 1,000 model instances (each link
and its blob, every column converted, the storage's identifiers parsed) and
then, row by row, 21 fields asked for their attribute and their value. Most
of a page's time went there. Here the list reads the columns its JSON shows
as tuples (``values_list``) and each row's JSON is built in one go, every
value converted as its serializer field converts it; what is the same for
every row (the URL patterns, the caller's staff flag, the analyzers' names,
the variants declared per owner type and file type, the time zone) is
worked out once per request::

    rows = representation.page_values(queryset)          # to paginate
    results = representation.write_page(page, serializer)  # each row's JSON

A single attachment (the detail, an upload's answer) goes the same way from
its instance (:func:`row_of`), so the two cannot differ. A subclass of the
serializer, or one whose fields were changed, takes DRF's own path
(:func:`applies`); the tests compare both.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, cast

from django.db import connection
from django.db.models import ExpressionWrapper, F, JSONField, TextField
from django.urls import reverse
from rest_framework import ISO_8601
from rest_framework.settings import api_settings

from ..conf import app_settings
from ..models import AnalysisState, Attachment, Blob, RenderState, ScanState, Variant, VariantRender
from ..policy import parseable_scans

#: Stands in for an attachment id while a URL is resolved once.
PLACEHOLDER = str(uuid.UUID(int=0))
#: Stands in for a variant's name in the same way (a name never holds a colon).
VARIANT_PLACEHOLDER = "variant:name"

#: The columns a row holds, in this order: the link's, then its blob's.
COLUMNS = (
    "id",
    "owner_type",
    "owner_id",
    "name",
    "description",
    "blob_id",
    "filename",
    "created_at",
    "blob__content_type",
    "blob__size",
    "blob__checksum",
    "blob__scan_state",
    "blob__scan_signature",
    "blob__scanned_at",
    "blob__scan_error_code",
    "blob__analysis_state",
    "blob__analysis_errors",
    "blob__analyzed_at",
    "blob__metadata",
)

#: What a row's variants are read from: the blob's made variants ({digest: (width, height)}) and refused digests.
Variants = tuple[dict[str, tuple[int, int]], set[str]]
NO_VARIANTS: Variants = ({}, set())


def row_of(attachment: Attachment) -> tuple[Any, ...]:
    """An attachment's values in the order of :data:`COLUMNS`."""
    blob = attachment.blob
    return (
        attachment.pk,
        attachment.owner_type,
        attachment.owner_id,
        attachment.name,
        attachment.description,
        attachment.blob_id,
        attachment.filename,
        attachment.created_at,
        blob.content_type,
        blob.size,
        blob.checksum,
        blob.scan_state,
        blob.scan_signature,
        blob.scanned_at,
        blob.scan_error_code,
        blob.analysis_state,
        blob.analysis_errors,
        blob.analyzed_at,
        blob.metadata,
    )


# -- what the processing fields show, from plain values (the serializer's fields ask these too) --


def analyzer_names() -> set[str]:
    return {analyzer.name for analyzer in app_settings.ANALYZERS}


def analyzed_metadata(state: str, metadata: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """The keys of the analyzers ``names`` (``<name>.<key>``), once the analysis ran to its end; else nothing."""
    if state not in (AnalysisState.ANALYZED, AnalysisState.FAILED):
        return {}
    return {key: value for key, value in metadata.items() if key.split(".", 1)[0] in names and "." in key}


def analysis_errors(state: str, errors: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per analyzer that refused the file, its code and message; empty unless the analysis failed."""
    if state != AnalysisState.FAILED:
        return {}
    return {
        name: {"code": str(error.get("code", "")), "detail": str(error.get("detail", ""))}
        for name, error in errors.items()
        if isinstance(error, dict)
    }


def scan_signature(state: str, signature: str, is_staff: bool) -> str | None:
    """What the scanner found in an infected file, for staff; None otherwise."""
    if state != ScanState.INFECTED or not signature:
        return None
    return signature if is_staff else None


def scan_error_code(state: str, code: str) -> str | None:
    """Why a failed scan failed (the code only); None unless the scan failed."""
    if state != ScanState.FAILED:
        return None
    return code or None


def is_staff(context: Mapping[str, Any]) -> bool:
    user = getattr(context.get("request"), "user", None)
    return bool(getattr(user, "is_staff", False))


def url_template(context: dict[str, Any], url_name: str, *args: Any) -> str:
    """An absolute URL with placeholders for ``args``, resolved once per request and filled in per row."""
    cached = context.setdefault("_url_templates", {})
    if url_name not in cached:
        request = context.get("request")
        match = getattr(request, "resolver_match", None)
        namespace = match.namespace if match and match.namespace else "django_attachments"
        path = reverse(f"{namespace}:{url_name}", args=args)
        cached[url_name] = request.build_absolute_uri(path) if request is not None else path
    return cached[url_name]


# -- converters: a field's to_representation, with what it looks up per value looked up once -------------


class _Memo(dict[Any, Any]):
    """A field's conversion of a column of few values (a state), each value converted once: ``memo[value]``."""

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, value: Any) -> Any:
        self[value] = converted = self.convert(value)
        return converted


def _nullable(field: Any) -> Callable[[Any], Any]:
    """``field.to_representation``, and None for None (as DRF's serializer leaves a null attribute)."""
    return lambda value: None if value is None else field.to_representation(value)


def datetime_writer(field: Any) -> Callable[[datetime | None], str | None]:
    """A DateTimeField's ``to_representation`` of ISO 8601 output, its format and time zone read once.

    DRF looks both up per value (the current time zone through a context
    variable); anything but an aware datetime and ISO 8601 output goes to the
    field itself.
    """
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    zone = field.timezone if hasattr(field, "timezone") else field.default_timezone()
    if not isinstance(output_format, str) or output_format.lower() != ISO_8601 or zone is None:
        return _nullable(field)
    # In UTC, a value read in UTC (as databases hand them) is written as it is: converting changes nothing.
    utc = zone is dt_timezone.utc or getattr(zone, "key", None) in ("UTC", "Etc/UTC")

    def write(value: datetime | None) -> str | None:
        if value is None:
            return None
        offset = value.utcoffset() if isinstance(value, datetime) else None
        if offset is None:
            return field.to_representation(value)  # naive: DRF makes it aware (or says why not)
        if utc and not offset:
            text = value.isoformat()
        else:
            try:
                text = value.astimezone(zone).isoformat()
            except OverflowError:
                return field.to_representation(value)  # DRF's own error
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return write


def applies(serializer: Any) -> bool:
    """Whether ``serializer`` is the app's attachment serializer as declared (not a subclass, fields unchanged).

    Fields nobody asked for yet are the declared ones: they are not built to be compared.
    """
    from .serializers import AttachmentSerializer

    if type(serializer) is not AttachmentSerializer:
        return False
    return "fields" not in vars(serializer) or list(serializer.fields) == AttachmentSerializer.Meta.fields


@functools.cache
def _declared_fields() -> Any:
    """The attachment serializer's fields as declared, built once: the converters of its values, which keep no state."""
    from .serializers import AttachmentSerializer

    return AttachmentSerializer().fields


#: The states in which the representation shows more (plain strings: compared once per row).
_INFECTED, _SCAN_FAILED = str(ScanState.INFECTED), str(ScanState.FAILED)
_ANALYSIS_FAILED = str(AnalysisState.FAILED)
_ANALYSIS_DONE = frozenset({str(AnalysisState.ANALYZED), _ANALYSIS_FAILED})


class RowWriter:
    """Each row's JSON, for one serializer (one request): ``writer(row, variants_of)``.

    What it looks up once is looked up on first use: DRF's path (a subclass)
    asks only for the URLs and the variants.
    """

    def __init__(self, serializer: Any) -> None:
        from ..services import variants

        self.serializer = serializer
        self.context: dict[str, Any] = serializer.context
        self.is_staff = is_staff(self.context)
        self.analyzers = analyzer_names()
        self.parseable = parseable_scans()
        self.any_variants = variants.any_declared()
        #: The declared variants' names and digests, per (owner type, content type).
        self.digests: dict[tuple[str, str], dict[str, str]] = {}

    @functools.cached_property
    def download_url(self) -> str:
        return url_template(self.context, "attachment-download", PLACEHOLDER)

    @functools.cached_property
    def fields(self) -> Any:
        """The serializer's fields where it built them, else the declared ones (the same converters)."""
        return self.serializer.fields if "fields" in vars(self.serializer) else _declared_fields()

    @functools.cached_property
    def created_at(self) -> Callable[[datetime | None], str | None]:
        return datetime_writer(self.fields["created_at"])

    @functools.cached_property
    def scanned_at(self) -> Callable[[datetime | None], str | None]:
        return datetime_writer(self.fields["scanned_at"])

    @functools.cached_property
    def analyzed_at(self) -> Callable[[datetime | None], str | None]:
        return datetime_writer(self.fields["analyzed_at"])

    @functools.cached_property
    def scans(self) -> _Memo:
        return _Memo(_nullable(self.fields["scan"]))

    @functools.cached_property
    def analyses(self) -> _Memo:
        return _Memo(_nullable(self.fields["analysis"]))

    def declared(self, owner_type: str, content_type: str) -> dict[str, str]:
        """The names of the variants of an owner type's files of a type, and their digests, in name order."""
        key = (owner_type, content_type)
        if key not in self.digests:
            from ..services import variants

            renderer = variants.renderer_for(content_type)
            if renderer is None:
                self.digests[key] = {}
            else:
                specs = variants.declared_specs(owner_type)
                self.digests[key] = {name: spec.digest(renderer) for name, spec in sorted(specs.items())}
        return self.digests[key]

    def variants(
        self,
        attachment_id: str,
        owner_type: str,
        content_type: str,
        scan_state: str,
        blob_variants: Callable[[], Variants],
    ) -> dict[str, dict[str, Any]]:
        """The declared variants by name: {url, width, height, ready}; none for a file no preview is made of."""
        if scan_state not in self.parseable:
            return {}
        digests = self.declared(owner_type, content_type)
        if not digests:
            return {}
        made, refused = blob_variants()
        template = url_template(self.context, "attachment-variant", PLACEHOLDER, VARIANT_PLACEHOLDER)
        listed = {}
        for name, digest in digests.items():
            if digest in refused:
                continue
            size = made.get(digest)
            listed[name] = {
                "url": template.replace(PLACEHOLDER, attachment_id).replace(VARIANT_PLACEHOLDER, name),
                "width": size[0] if size is not None else None,
                "height": size[1] if size is not None else None,
                "ready": size is not None,
            }
        return listed

    def __call__(self, row: Sequence[Any], variants_of: Callable[[Any], Variants]) -> dict[str, Any]:
        """The JSON of a row of :data:`COLUMNS`; ``variants_of(blob_id)`` is asked only where variants are listed.

        Each value as its field converts it (``str``, ``int``, the functions
        above); the functions are asked only in the states where they show
        something, the rest is what they answer otherwise.
        """
        (
            pk,
            owner_type,
            owner_id,
            name,
            description,
            blob_id,
            filename,
            created_at,
            content_type,
            size,
            checksum,
            scan_state,
            signature,
            scanned_at,
            error_code,
            analysis_state,
            errors,
            analyzed_at,
            metadata,
        ) = row
        attachment_id = str(pk)
        if self.any_variants and scan_state in self.parseable and self.declared(owner_type, content_type):
            listed = self.variants(attachment_id, owner_type, content_type, scan_state, lambda: variants_of(blob_id))
        else:
            listed = {}
        return {
            "id": attachment_id,
            "owner_type": str(owner_type),
            "owner_id": str(owner_id),
            "name": str(name),
            "description": str(description),
            "blob_id": str(blob_id),
            "filename": str(filename),
            "content_type": str(content_type),
            "size": int(size),
            "checksum": str(checksum),
            "created_at": None if created_at is None else self.created_at(created_at),
            "download_url": self.download_url.replace(PLACEHOLDER, attachment_id),
            "scan": self.scans[scan_state],
            "scan_signature": scan_signature(scan_state, signature, self.is_staff) if scan_state == _INFECTED else None,
            "scan_error_code": scan_error_code(scan_state, error_code) if scan_state == _SCAN_FAILED else None,
            "scanned_at": None if scanned_at is None else self.scanned_at(scanned_at),
            "analysis": self.analyses[analysis_state],
            "analysis_errors": analysis_errors(analysis_state, errors) if analysis_state == _ANALYSIS_FAILED else {},
            "analyzed_at": None if analyzed_at is None else self.analyzed_at(analyzed_at),
            "metadata": (
                analyzed_metadata(analysis_state, metadata, self.analyzers) if analysis_state in _ANALYSIS_DONE else {}
            ),
            "variants": listed,
        }


def writer_for(serializer: Any) -> RowWriter:
    """The serializer's writer, made on first use (a list's child serializer writes every row)."""
    writer = serializer.__dict__.get("_row_writer")
    if writer is None:
        writer = serializer.__dict__["_row_writer"] = RowWriter(serializer)
    return writer


def instance_variants(attachment: Attachment) -> Variants:
    """The blob's variants, from its (prefetched, else fetched) relations."""
    blob = attachment.blob
    made = {variant.digest: (variant.width, variant.height) for variant in blob.variants.all()}
    refused = {render.digest for render in blob.renders.all() if render.state == RenderState.FAILED}
    return made, refused


# -- a page ----------------------------------------------------------------------------------------


#: The JSON columns, and where they are in a row.
_JSON_COLUMNS = ("blob__analysis_errors", "blob__metadata")
_ANALYSIS_STATE, _ERRORS, _METADATA = (COLUMNS.index(c) for c in ("blob__analysis_state", *_JSON_COLUMNS))
_BLOB_ID = COLUMNS.index("blob_id")
#: A JSONField parses a column's text alike whatever the expression, unless it is a key's (not here).
_NO_EXPRESSION: Any = None


def page_values(queryset: Any) -> Any:
    """The queryset's rows as tuples of :data:`COLUMNS` (its prefetches left to :func:`write_page`).

    The JSON columns come as their text (most rows show neither): :func:`write_page` parses them where shown.
    """
    columns = (
        ExpressionWrapper(F(column), output_field=TextField()) if column in _JSON_COLUMNS else column
        for column in COLUMNS
    )
    return queryset.prefetch_related(None).values_list(*columns)


def _parsed(rows: Iterable[Sequence[Any]]) -> Iterable[Sequence[Any]]:
    """Rows of :func:`page_values` with the JSON the writer shows parsed, as the model's fields parse it.

    The writer reads ``analysis_errors`` only of a failed analysis and
    ``metadata`` only of a finished one; other rows keep the text, unread.
    """
    errors_field, metadata_field = (
        cast(JSONField, Blob._meta.get_field(column.split("__", 1)[1])) for column in _JSON_COLUMNS
    )
    for row in rows:
        state = row[_ANALYSIS_STATE]
        if state not in _ANALYSIS_DONE:
            yield row
            continue
        parsed = list(row)
        parsed[_METADATA] = metadata_field.from_db_value(row[_METADATA], _NO_EXPRESSION, connection)
        if state == _ANALYSIS_FAILED:
            parsed[_ERRORS] = errors_field.from_db_value(row[_ERRORS], _NO_EXPRESSION, connection)
        yield parsed


def _page_variants(blob_ids: Iterable[Any]) -> dict[Any, Variants]:
    """The made and refused variants of the blobs, in two queries (as prefetching both relations takes)."""
    found: dict[Any, Variants] = {blob_id: ({}, set()) for blob_id in blob_ids}
    for blob_id, digest, width, height in Variant.objects.filter(blob_id__in=list(found)).values_list(
        "blob_id", "digest", "width", "height"
    ):
        found[blob_id][0][digest] = (width, height)
    renders = VariantRender.objects.filter(blob_id__in=list(found), state=RenderState.FAILED)
    for blob_id, digest in renders.values_list("blob_id", "digest"):
        found[blob_id][1].add(digest)
    return found


def write_page(rows: Sequence[Sequence[Any]], serializer: Any) -> list[dict[str, Any]]:
    """The JSON of a page of rows of :data:`COLUMNS`, as ``serializer`` (see :func:`applies`) shows them.

    Where variants are declared, a non-empty page reads its blobs' variants
    in two queries, whatever its size, as the model path's prefetch did.
    """
    write = writer_for(serializer)
    if rows and write.any_variants:
        found = _page_variants(dict.fromkeys(row[_BLOB_ID] for row in rows))
        return [write(row, found.__getitem__) for row in _parsed(rows)]
    return [write(row, lambda blob_id: NO_VARIANTS) for row in _parsed(rows)]
