"""Who is asking, and what they may see: tenants and the owner types' hooks.

The caller's tenant comes from ``DJANGO_ATTACHMENTS["TENANT_RESOLVER"]``.
Without one, the project is single-tenant and every owner is visible. With
one, a caller it maps to ``None`` has no tenant and is refused, rather than
silently given every tenant's files. The rules themselves live in
:mod:`django_attachments.policy`, which the admin applies too; this module
turns them into the API's answers (403 ``no_tenant``, 404, 403 ``attach_denied``).
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, PermissionDenied

from ..conf import app_settings
from ..exceptions import AttachmentError, OwnerNotFound, UnknownOwnerType
from ..policy import caller_tenant, may_attach, may_view, resolve_owner, view_hooked_owner_types
from ..registry import Owner, OwnerSpec, attachment_registry
from .errors import to_api_error


class FromSettings:
    """A view attribute whose default is a setting, read when used (so ``override_settings`` works).

    A subclass that sets the attribute itself is honoured, as DRF's own
    ``permission_classes`` would be::

        class AttachmentViewSet(...):
            permission_classes = FromSettings("PERMISSION_CLASSES")

        class PublicAttachments(AttachmentViewSet):
            permission_classes = [AllowAny]     # wins over the setting
    """

    def __init__(self, setting: str) -> None:
        self.setting = setting

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return getattr(app_settings, self.setting)


def check_view(request: Any, spec: OwnerSpec, owner: Owner, not_found: Exception | None = None) -> None:
    """Raise ``not_found`` (404 by default) unless the caller may view the owner's files."""
    if not may_view(request, spec, owner):
        raise not_found or NotFound()


def check_attach(request: Any, spec: OwnerSpec, owner: Owner, not_found: Exception | None = None) -> None:
    """Raise unless the caller may change the owner's files: 404 if they may not even view it, else 403."""
    check_view(request, spec, owner, not_found)
    if not may_attach(request, spec, owner):
        raise PermissionDenied("You may not change the files of this owner.", code="attach_denied")


def check_owner(request: Any, owner_type: str, owner_id: str, *, change: bool, missing_ok: bool = False) -> None:
    """Ask the owner type's hooks about an existing link or ticket, if it has any.

    A vanished owner is not found (or, with ``missing_ok``, left for the
    caller to handle). Owner types no longer registered have no hooks to ask.
    """
    try:
        spec = attachment_registry.get(owner_type)
    except UnknownOwnerType:
        return
    if spec.can_view is None and (spec.can_attach is None or not change):
        return
    try:
        _, owner = resolve_owner(owner_type, owner_id, tenant=caller_tenant(request))
    except OwnerNotFound:
        if missing_ok:
            return
        raise NotFound() from None
    (check_attach if change else check_view)(request, spec, owner)


def authorize_attach(request: Any, owner_type: str, owner_id: str) -> str | None:
    """Check the caller may attach files to the owner; return the caller's tenant.

    An owner the caller may not even view is "not found", with the same body
    as one that does not exist.
    """
    tenant = caller_tenant(request)
    spec, owner = resolve_owner(owner_type, owner_id, tenant=tenant)
    hidden = to_api_error(OwnerNotFound(f"No {spec.owner_type} with id {owner_id!r}."))
    check_attach(request, spec, owner, not_found=hidden)
    return tenant


#: How many links of a blob to an owner type with a ``can_view`` hook are asked about, at most.
_BLOB_VIEW_PROBES = 20


def may_view_blob(request: Any, blob: Any) -> bool:
    """Whether the caller may already see an attachment of ``blob`` (a blob of the caller's tenant).

    Knowing a file's SHA-256 (or a blob's id) is not a right to its bytes: the
    direct-upload shortcut and links by ``blob_id`` take known bytes only
    when this holds. Links to owner types without a ``can_view`` hook are
    visible to the whole tenant; the others are asked, one owner at a time.
    """
    links = blob.attachments.all()
    if links.exclude(owner_type__in=view_hooked_owner_types()).exists():
        return True
    tenant = caller_tenant(request)
    for owner_type, owner_id in links.values_list("owner_type", "owner_id").order_by("created_at")[:_BLOB_VIEW_PROBES]:
        try:
            spec, owner = resolve_owner(owner_type, owner_id, tenant=tenant)
        except AttachmentError:
            continue
        if may_view(request, spec, owner):
            return True
    return False
