"""The attachments panel's drop zone: files dropped or picked go straight to the storage, with progress.

Where the project serves the API's direct uploads, the panel offers staff who
may change the owner a drop zone above its upload form. The panel's script,
``static/django_attachments/admin-panel.js``, uploads each file dropped on the
panel (or picked with the zone's *choose files*) with the packaged uploader
(``uploader.js``), to the slot and with the description the panel's form
shows: hashed, sent in one ``PUT`` or in parts, verified,
each file in a row of its own with a progress bar, a *Cancel* button and the
server's message if it fails. A large upload cut off by a reload resumes when
the same file is dropped again. The list of files is fetched again as each
upload completes.

It is progressive enhancement: the zone is rendered hidden and the script
reveals it; the panel's form still posts a file to the admin as before, and is
all there is without the script. The zone is offered only where the API would take the upload from
this user -- :func:`dropzone` says when -- so that nobody is shown a zone that
can only fail::

    panel = {..., "dropzone": dropzone(request, owner_type="patient", owner_id="7", tenant=access.tenant)}

The API checks everything again on each call (tenant, hooks, limits, types).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext

from ..conf import app_settings
from ..exceptions import InvalidValue, NoTenant, OwnerNotFound, UnknownOwnerType
from ..policy import caller_tenant, may_attach, may_view, resolve_owner
from ..registry import attachment_registry

#: The URL name of the API's direct-upload collection (``POST``: start an upload).
UPLOADS_URL_NAME = "django_attachments:upload-list"
#: The panel's script, among the app's static files; it imports ``uploader.js`` beside it.
SCRIPT = "django_attachments/admin-panel.js"


def uploads_url() -> str | None:
    """Where the API starts direct uploads; None when the project does not include the API's URLs."""
    try:
        return reverse(UPLOADS_URL_NAME)
    except NoReverseMatch:
        return None


def api_takes_sessions() -> bool:
    """Whether the API authenticates with the session cookie the admin's user holds."""
    from rest_framework.authentication import SessionAuthentication
    from rest_framework.settings import api_settings

    classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES  # imported from their dotted paths
    return any(isinstance(cls, type) and issubclass(cls, SessionAuthentication) for cls in classes)


def api_may_attach(request: Any, owner_type: str, owner_id: str, tenant: str | None) -> bool:
    """Whether the API would let this user attach to the owner, as far as the page can tell.

    The panel has resolved the owner in the admin's tenant (``tenant``); the
    API resolves it in the caller's own. They differ only for users
    ``ADMIN_CROSS_TENANT`` accepts (the admin's tenant is then None), for
    whom another tenant's owner is "not found" in the API: ask again there.
    An owner type no longer registered has nothing the API could attach to.
    """
    if owner_type not in attachment_registry:
        return False
    try:
        api_tenant = caller_tenant(request)
    except NoTenant:
        return False
    if api_tenant == tenant:
        return True  # the panel resolved the owner there and asked its hooks already
    try:
        spec, owner = resolve_owner(owner_type, owner_id, tenant=api_tenant)
    except (OwnerNotFound, InvalidValue, UnknownOwnerType):
        return False
    return may_view(request, spec, owner) and may_attach(request, spec, owner)


def messages() -> dict[str, str]:
    """The words the script shows, translated here with the admin's own."""
    return {
        "waiting": gettext("Waiting"),
        "hashing": gettext("Hashing"),
        "starting": gettext("Starting"),
        "sending": gettext("Sending"),
        "verifying": gettext("Verifying"),
        "resuming": gettext("resuming an earlier upload"),
        "done": gettext("Attached"),
        "cancelling": gettext("Cancelling"),
        "cancelled": gettext("Cancelled: nothing was attached"),
        "failed": gettext("Not attached"),
        "cancel": gettext("Cancel"),
        "cancelFile": gettext("Cancel the upload of %(file)s"),
        "refreshFailed": gettext("The list could not be refreshed: reload the page to see the new files."),
    }


def dropzone(request: Any, *, owner_type: str, owner_id: str, tenant: str | None) -> dict[str, Any] | None:
    """What the panel's script needs to upload to this owner; None where the zone is not offered.

    Call it only for a user who may change the owner's files (the panel's
    form is shown). None when the project does not include the API's URLs,
    when the API does not authenticate sessions (the admin's user would not
    be known there), or when the API would not find the owner for this user.
    """
    endpoint = uploads_url()
    if endpoint is None or not api_takes_sessions():
        return None
    if not api_may_attach(request, owner_type, owner_id, tenant):
        return None
    return {
        "script": static(SCRIPT),
        "endpoint": endpoint,
        "owner_type": owner_type,
        "owner_id": owner_id,
        # Hash files up to the server's threshold before the start (their single-PUT tickets need the
        # SHA-256), and declare larger ones without: the uploader's singlePutMax, kept equal to it.
        "single_put_max": app_settings.MULTIPART_THRESHOLD,
        "csrf_cookie": settings.CSRF_COOKIE_NAME if not settings.CSRF_USE_SESSIONS else "",
        "csrf_header": _header_name(settings.CSRF_HEADER_NAME),
        "messages": messages(),
    }


def _header_name(meta_key: str) -> str:
    """``HTTP_X_CSRFTOKEN`` (a ``request.META`` key, as Django's setting has it) -> ``X-CSRFTOKEN``."""
    return meta_key.removeprefix("HTTP_").replace("_", "-")
