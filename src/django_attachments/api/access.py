"""Who is asking, and what they may see: tenants and the owner types' hooks.

The caller's tenant comes from ``DJANGO_ATTACHMENTS["TENANT_RESOLVER"]``.
Without one, the project is single-tenant and every owner is visible. With
one, a caller it maps to ``None`` has no tenant and is refused, rather than
silently given every tenant's files.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, PermissionDenied

from ..conf import app_settings
from ..registry import Owner, OwnerSpec


def tenant_for(request: Any) -> str | None:
    """The caller's tenant: None when the project is single-tenant."""
    resolver = app_settings.TENANT_RESOLVER
    if resolver is None:
        return None
    cached = getattr(request, "_attachments_tenant", None)
    if cached is not None:
        return cached
    tenant = resolver(request)
    if tenant is None:
        raise PermissionDenied("Your account is not part of any tenant.", code="no_tenant")
    request._attachments_tenant = str(tenant)
    return request._attachments_tenant


def may_view(request: Any, spec: OwnerSpec, owner: Owner) -> bool:
    return spec.can_view is None or bool(spec.can_view(request, owner))


def check_view(request: Any, spec: OwnerSpec, owner: Owner, not_found: Exception | None = None) -> None:
    """Raise ``not_found`` (404 by default) unless the caller may view the owner's files."""
    if not may_view(request, spec, owner):
        raise not_found or NotFound()


def check_attach(request: Any, spec: OwnerSpec, owner: Owner, not_found: Exception | None = None) -> None:
    """Raise unless the caller may change the owner's files: 404 if they may not even view it, else 403."""
    check_view(request, spec, owner, not_found)
    if spec.can_attach is not None and not spec.can_attach(request, owner):
        raise PermissionDenied("You may not change the files of this owner.", code="attach_denied")
