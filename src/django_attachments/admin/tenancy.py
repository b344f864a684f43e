"""The tenant the admin acts in: the caller's own, or every tenant for the users trusted with them.

With ``TENANT_RESOLVER`` set, the admin applies the same line as the API: a
user sees and changes only their own tenant's files (another tenant's owner,
blob or ticket is "not found"), and a user of no tenant is refused. The users
``ADMIN_CROSS_TENANT`` accepts act across tenants instead, as the services do
with ``tenant=None``::

    DJANGO_ATTACHMENTS = {
        "TENANT_RESOLVER": "clinics.tenancy.clinic_for_request",
        "ADMIN_CROSS_TENANT": "django_attachments.policy.is_superuser",
    }

The panel and the read-only pages ask it through their
``get_attachments_tenant(request)`` method, which a ModelAdmin may override.
"""

from __future__ import annotations

from typing import Any

from ..conf import app_settings
from ..exceptions import NoTenant
from ..policy import caller_tenant

_CACHE = "_attachments_admin_tenant"


def admin_tenant(request: Any) -> str | None:
    """The tenant whose files the admin shows this request; None for every tenant.

    None in a single-tenant project (no ``TENANT_RESOLVER``) and for the users
    ``ADMIN_CROSS_TENANT`` accepts; else the caller's tenant. Raises NoTenant
    (a ``PermissionDenied``: 403) for a user of no tenant. The answer is kept
    on the request: the admin asks for every model on every page.
    """
    cached = getattr(request, _CACHE, None)
    if cached is None:
        try:
            cached = (_admin_tenant(request), "")
        except NoTenant as exc:
            cached = (None, str(exc))
        setattr(request, _CACHE, cached)
    tenant, refusal = cached
    if refusal:
        raise NoTenant(refusal)
    return tenant


def _admin_tenant(request: Any) -> str | None:
    if app_settings.TENANT_RESOLVER is None:
        return None
    cross_tenant = app_settings.ADMIN_CROSS_TENANT
    if cross_tenant is not None and cross_tenant(request):
        return None
    return caller_tenant(request)
