"""The policy every verb applies before touching bytes or rows.

An owner must resolve through its registered spec; seen from a tenant, an
owner of another tenant is indistinguishable from one that does not exist.
Identifiers and text fields are checked for shape, slots against the owner
type's ``allowed_names``, and sizes against the smaller of the global and the
owner type's limit::

    spec, owner = resolve_owner("plan_item", "42", tenant="7")   # OwnerNotFound, UnknownOwnerType, ...

Requests (the API's and the admin's) name their caller's tenant through
``TENANT_RESOLVER``, and the owner types' hooks say what the caller may do
with an owner of that tenant::

    tenant = caller_tenant(request)                # None: single-tenant; NoTenant: refused
    spec, owner = resolve_owner("plan_item", "42", tenant=tenant)
    may_view(request, spec, owner), may_attach(request, spec, owner)

Every verb checks a file by the same rules, each in one function here::

    check_file(spec, size=n, content_type=sniffed)   # limit, empty files, allow-lists
    blob_tenant, blob_subject = blob_keys(owner_type, owner)
    check_owner_holds(owner_type, owner, tenant=blob.tenant, subject=blob.subject, why="...")
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError

from . import ingest
from .conf import app_settings
from .exceptions import (
    AttachmentsImproperlyConfigured,
    BlobUnavailable,
    EmptyFile,
    InvalidSlot,
    InvalidValue,
    NoTenant,
    OwnerMismatch,
    OwnerNotFound,
    Quarantined,
    ScanFailed,
    ScanPending,
)
from .models import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    OWNER_ID_MAX_LENGTH,
    SUBJECT_MAX_LENGTH,
    TENANT_MAX_LENGTH,
    Blob,
    ScanState,
)
from .registry import Owner, OwnerSpec, attachment_registry, validate_owner_type


def resolve_owner(owner_type: str, owner_id: Any, *, tenant: Any = None) -> tuple[OwnerSpec, Owner]:
    """Resolve an owner through its registered spec, as seen from ``tenant``.

    Raises UnknownOwnerType, or OwnerNotFound both when the owner does not
    exist and when it lies in another tenant: the caller cannot tell them apart.
    """
    validate_owner_type(owner_type)
    owner_id = clean_owner_id(owner_id)
    spec = attachment_registry.get(owner_type)
    not_found = OwnerNotFound(f"No {owner_type} with id {owner_id!r}.")
    try:
        owner = spec.resolver(owner_id)
    except (ValueError, TypeError, LookupError, ValidationError) as exc:
        # A malformed id (a resolver filtering an integer or UUID key by "abc")
        # is an owner that does not exist, not a server error.
        raise not_found from exc
    if owner is None:
        raise not_found
    if not isinstance(owner, Owner):
        raise AttachmentsImproperlyConfigured(
            f"The resolver of owner type {owner_type!r} returned {owner!r}; it must return an Owner or None."
        )
    if tenant is not None and owner_key(owner.tenant, "tenant", owner_type) != str(tenant):
        raise not_found
    return spec, replace(owner, id=_canonical_id(spec, owner, owner_id))


def caller_tenant(request: Any) -> str | None:
    """The tenant ``TENANT_RESOLVER`` names for the request's caller; None when the project is single-tenant.

    Raises NoTenant when the resolver names none: a caller of no tenant is
    refused, never given every tenant's files. The answer is kept on the
    request, so the resolver runs once per request.
    """
    resolver = app_settings.TENANT_RESOLVER
    if resolver is None:
        return None
    cached = getattr(request, "_attachments_tenant", None)
    if cached is not None:
        return cached
    tenant = resolver(request)
    if tenant is None:
        raise NoTenant("Your account is not part of any tenant.")
    request._attachments_tenant = str(tenant)
    return request._attachments_tenant


def may_view(request: Any, spec: OwnerSpec, owner: Owner) -> bool:
    """The owner type's ``can_view`` hook: may the caller see the owner's files (True without a hook)?"""
    return spec.can_view is None or bool(spec.can_view(request, owner))


def view_hooked_owner_types() -> list[str]:
    """Owner types with a ``can_view`` hook, which must be asked one owner at a time.

    Lists across owners (the API's, the admin's) leave their rows out.
    """
    return [spec.owner_type for spec in attachment_registry if spec.can_view is not None]


def may_attach(request: Any, spec: OwnerSpec, owner: Owner) -> bool:
    """The owner type's ``can_attach`` hook: may the caller change the owner's files (True without a hook)?

    Ask :func:`may_view` first: a caller who may not even view the owner's
    files is told the owner does not exist, whatever this says.
    """
    return spec.can_attach is None or bool(spec.can_attach(request, owner))


def is_superuser(request: Any) -> bool:
    """For ``ADMIN_CROSS_TENANT``: active superusers act across tenants in the admin."""
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_superuser)


def _canonical_id(spec: OwnerSpec, owner: Owner, given: str) -> str:
    """The id the owner's attachments are stored under, and found again by.

    ``Owner.id`` if the resolver set it; else the primary key of a model
    ``instance`` — but only if the resolver finds the owner again by it (a
    resolver that looks owners up by slug must not have links stored under
    primary keys, where neither it nor the purge would find them); else the id
    as given.
    """
    if owner.id is not None:
        return clean_owner_id(owner.id)
    candidate = owner.canonical_id(given)
    if candidate == given:
        return given
    try:
        again = spec.resolver(clean_owner_id(candidate))
    except (ValueError, TypeError, LookupError, ValidationError, InvalidValue):
        again = None
    if isinstance(again, Owner) and again.tenant == owner.tenant and again.subject == owner.subject:
        return candidate
    return given


def owner_key(value: Any, what: str, owner_type: str) -> str:
    text = "" if value is None else str(value)
    limit = TENANT_MAX_LENGTH if what == "tenant" else SUBJECT_MAX_LENGTH
    if len(text) > limit:
        raise AttachmentsImproperlyConfigured(
            f"The resolver of owner type {owner_type!r} returned a {what} of {len(text)} characters; "
            f"the limit is {limit}."
        )
    return text


def clean_owner_id(owner_id: Any) -> str:
    if isinstance(owner_id, (int, UUID)) and not isinstance(owner_id, bool):
        owner_id = str(owner_id)
    if not isinstance(owner_id, str) or not owner_id or owner_id != owner_id.strip():
        raise InvalidValue(
            f"owner_id must be a non-empty string without surrounding spaces, not {owner_id!r}.", field="owner_id"
        )
    if len(owner_id) > OWNER_ID_MAX_LENGTH or not owner_id.isprintable():
        raise InvalidValue(f"owner_id must be at most {OWNER_ID_MAX_LENGTH} printable characters.", field="owner_id")
    return owner_id


def clean_text(spec: OwnerSpec, name: Any, description: Any) -> tuple[str, str]:
    if not isinstance(name, str) or len(name) > NAME_MAX_LENGTH or not name.isprintable():
        raise InvalidValue(f"name must be a string of at most {NAME_MAX_LENGTH} printable characters.", field="name")
    if spec.allowed_names is not None and name not in spec.allowed_names:
        allowed = ", ".join(repr(n) for n in sorted(spec.allowed_names))
        raise InvalidSlot(f"Owner type {spec.owner_type!r} has no slot {name!r}; its slots are: {allowed}.")
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_LENGTH:
        raise InvalidValue(
            f"description must be a string of at most {DESCRIPTION_MAX_LENGTH} characters.", field="description"
        )
    return name, description


def size_limit(spec: OwnerSpec) -> int | None:
    """The largest file the owner type takes: the smaller of the global and its own limit (None: no limit)."""
    limits = [limit for limit in (app_settings.MAX_UPLOAD_SIZE, spec.max_size) if limit is not None]
    return min(limits) if limits else None


# -- the file rules -------------------------------------------------------------


def check_size(spec: OwnerSpec, size: int) -> None:
    """FileTooLarge past :func:`size_limit` (a declared size, before a byte is read, or the real one)."""
    ingest.check_size(size, size_limit(spec))


def check_not_empty(size: int, *, field: str = "file") -> None:
    """EmptyFile for zero bytes unless ``ALLOW_EMPTY_FILES``; ``field`` names what the caller sent."""
    if size == 0 and not app_settings.ALLOW_EMPTY_FILES:
        raise EmptyFile("The file is empty.", field=field)


def check_content_type(spec: OwnerSpec, content_type: str, *, size: int) -> None:
    """ContentTypeNotAllowed unless both the global and the owner type's allow-list take the type.

    An empty file has no type to allow or refuse.
    """
    if size:
        ingest.check_content_type(content_type, app_settings.ALLOWED_CONTENT_TYPES, spec.allowed_content_types)


def check_file(spec: OwnerSpec, *, size: int, content_type: str | None, field: str = "file") -> None:
    """Every rule of a file for an owner type: size limit, empty files, and the type (when known)."""
    check_size(spec, size)
    check_not_empty(size, field=field)
    if content_type is not None:
        check_content_type(spec, content_type, size=size)


def check_available(blob: Blob) -> None:
    """BlobUnavailable (409) unless the blob may be served, linked or deduplicated against.

    See :attr:`Blob.is_available <django_attachments.models.Blob.is_available>`;
    an infected blob is :class:`Quarantined` (409 ``quarantined``).
    """
    if not blob.is_available:
        if blob.scan_state == ScanState.INFECTED:
            # No filename in these messages: a direct upload's ticket records the message, and the
            # blob it met may belong to an owner the caller may not see.
            raise Quarantined("The file is quarantined: the malware scanner found a threat in it.")
        raise BlobUnavailable("The file is not available now.")


def check_servable(blob: Blob) -> None:
    """:func:`check_available`, and, for bytes about to be sent: the scanner has passed them.

    A blob whose scan is pending, or failed and being retried, is
    :class:`ScanPending` (409 ``scan_pending``), one whose scan failed for good
    (too large, out of retries) :class:`ScanFailed` (409 ``scan_failed``),
    unless ``SERVE_PENDING_SCANS``.
    Downloads and signed redirects ask this; links and deduplication ask only
    :func:`check_available` (a pending blob may be linked; it is scanned once).
    """
    check_available(blob)
    if not blob.is_scanned and not app_settings.SERVE_PENDING_SCANS:
        if blob.scan_given_up:
            raise ScanFailed("The file could not be scanned for malware, so it is not served.")
        raise ScanPending("The file has not been scanned for malware yet; try again shortly.")


def parseable_scans() -> tuple[str, ...]:
    """The scan states in which an analyzer or a renderer may parse a blob's bytes.

    ``clean``; and ``not_scanned`` only while no scanner is configured: once
    one is, a file stored before it came waits for its (backlog) scan.
    """
    if app_settings.SCANNER is None:
        return (str(ScanState.CLEAN), str(ScanState.NOT_SCANNED))
    return (str(ScanState.CLEAN),)


def check_renderable(blob: Blob) -> None:
    """:func:`check_available`, and: the scanner has passed the bytes, so that a renderer may parse them.

    Stricter than :func:`check_servable`: ``SERVE_PENDING_SCANS`` lets a
    pending file be downloaded as it is, never parsed by a renderer (a
    variant is made, and served, only of a file scanned clean, or stored
    while no scanner is configured: see :func:`parseable_scans`).
    """
    check_available(blob)
    if blob.scan_state not in parseable_scans():
        if blob.scan_given_up:
            raise ScanFailed("The file could not be scanned for malware, so no preview is made of it.")
        raise ScanPending("The file has not been scanned for malware yet; its preview is made once it is.")


# -- the owner's keys -------------------------------------------------------------


def blob_keys(owner_type: str, owner: Owner) -> tuple[str, str]:
    """The (tenant, subject) that blobs linked to ``owner`` are stored under."""
    return owner_key(owner.tenant, "tenant", owner_type), owner_key(owner.subject, "subject", owner_type)


def check_owner_holds(owner_type: str, owner: Owner, *, tenant: str, subject: str, why: str) -> None:
    """OwnerMismatch (saying ``why``) unless the owner is in ``tenant`` and shares ``subject``."""
    if blob_keys(owner_type, owner) != (tenant, subject):
        raise OwnerMismatch(why)
