"""An attachments panel for a consumer's ``ModelAdmin``: see, upload, download and unlink an owner's files.

::

    @admin.register(PlanItem)
    class PlanItemAdmin(AttachmentsAdminMixin, admin.ModelAdmin):
        attachments_owner_type = "plan_item"

The owner's change page then lists its attachments (filename, type, size,
slot, description, created; their malware scan where a scanner is configured;
their thumbnails, linked to their previews, where variants are declared: see
:mod:`django_attachments.admin.thumbnails`) with download links -- none for a
file the download would refuse, infected or not yet scanned -- and lets staff
who may change the owner upload files and unlink them; where the API's direct
uploads are served, they may also drop files on the panel, which go straight to
the storage with a progress bar each (see :mod:`django_attachments.admin.dropzone`).
Everything goes through
:mod:`django_attachments.services`, so the owner type's slots, size and type
limits and the deduplication apply exactly as in the API.

Tenancy and the owner type's hooks apply as in the API too (see
:mod:`django_attachments.admin.tenancy`): an owner of another tenant than the
user's, or one its ``can_view`` hook hides, shows no panel, and its download,
thumbnail, upload and unlink URLs answer 404, as for an owner that does not exist; a
user of no tenant is refused (403); ``can_attach`` decides who may change what
they see. Uploads are refused past the upload limit before the body is read.

The panel sits inside the change form, above its submit row, like an
inline; its controls belong to forms of its own placed after the change form
(by their ``form`` attribute), so that nothing is nested and the change form
never posts them. Its messages (uploaded, refused, unlinked) are shown in the
panel rather than at the top of the page. A ModelAdmin with its own
``change_form_template`` extends
``admin/django_attachments/change_form_with_attachments.html``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .. import downloads, services
from ..conf import app_settings
from ..exceptions import AttachmentError, InvalidValue, NoTenant, OwnerNotFound, UnknownOwnerType
from ..models import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH, Attachment, ScanState
from ..policy import may_attach, may_view, resolve_owner
from ..registry import attachment_registry
from ..uploadhandlers import limit_body
from . import display, dropzone, thumbnails
from .tenancy import admin_tenant

logger = logging.getLogger(__name__)

#: The ids of the panel's own forms, outside the change form; its controls name them in ``form=``.
UPLOAD_FORM_ID = "attachments-upload"
UNLINK_FORM_ID = "attachments-unlink"
#: The extra tag of the panel's messages: the panel shows them, the top of the page does not.
PANEL_MESSAGE_TAG = "attachments-panel"


def _messages(request: HttpRequest, *, panel: bool) -> list[Any]:
    """This request's messages that concern the panel (``panel=True``), or all the others."""
    return [
        message
        for message in messages.get_messages(request)
        if (PANEL_MESSAGE_TAG in (message.extra_tags or "").split()) == panel
    ]


class AttachmentUploadForm(forms.Form):
    file = forms.FileField(label=_("File"), allow_empty_file=True)
    name = forms.CharField(label=_("Slot"), required=False, max_length=NAME_MAX_LENGTH)
    description = forms.CharField(
        label=_("Description"),
        required=False,
        max_length=DESCRIPTION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, slots: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if slots:
            choices = [(slot, slot or _("(none)")) for slot in sorted(slots)]
            self.fields["name"] = forms.ChoiceField(label=_("Slot"), choices=choices, required="" not in slots)


@dataclass(frozen=True)
class OwnerAccess:
    """What the admin user may do with an owner's files, once the owner is known to be theirs to see."""

    #: The tenant the user acts in (None: every tenant), passed on to the services.
    tenant: str | None
    #: The owner type's ``can_attach`` hook allows changes (the model permission is asked apart).
    may_attach: bool


if TYPE_CHECKING:  # the mixin goes on a ModelAdmin: type-check it as one
    from django.contrib.admin import ModelAdmin as _AdminBase
else:
    _AdminBase = object


class AttachmentsAdminMixin(_AdminBase):
    """Adds the owner's attachments to a ModelAdmin's change page."""

    #: The registered owner type this model's objects are.
    attachments_owner_type: str | None = None
    #: The variant the panel shows of each file; None: the smallest declared for the owner type.
    attachments_thumbnail_variant: str | None = None
    #: The variant a thumbnail's link opens; None: the largest declared.
    attachments_preview_variant: str | None = None
    change_form_template = "admin/django_attachments/change_form_with_attachments.html"
    too_large_template = "admin/django_attachments/upload_too_large.html"

    # -- what the owner is -----------------------------------------------------

    def get_attachments_owner_type(self, obj: Any) -> str:
        if not self.attachments_owner_type:
            raise ImproperlyConfigured(f"{type(self).__name__} must set attachments_owner_type.")
        return self.attachments_owner_type

    def get_attachments_owner_id(self, obj: Any) -> str:
        """The owner id attachments are stored under; the primary key by default."""
        return str(obj.pk)

    def get_attachments_tenant(self, request: HttpRequest) -> str | None:
        """The tenant whose files this user sees and changes here; None for every tenant.

        By default :func:`~django_attachments.admin.tenancy.admin_tenant`: None
        in a single-tenant project and for users ``ADMIN_CROSS_TENANT`` accepts,
        else the user's tenant from ``TENANT_RESOLVER``; raises NoTenant (a
        ``PermissionDenied``) for a user of no tenant.
        """
        return admin_tenant(request)

    def get_attachments_access(self, request: HttpRequest, obj: Any) -> OwnerAccess | None:
        """What the user may do with ``obj``'s files; None when, for them, the owner does not exist.

        The owner resolves through its owner type as seen from the user's
        tenant, as in the API: another tenant's owner is None, and so is one
        the ``can_view`` hook hides. Raises NoTenant for a user of no tenant.
        An owner type no longer registered has no resolver and no hooks to
        ask; its files are still shown only from their own tenant.
        """
        tenant = self.get_attachments_tenant(request)
        try:
            spec, owner = resolve_owner(
                self.get_attachments_owner_type(obj), self.get_attachments_owner_id(obj), tenant=tenant
            )
        except UnknownOwnerType:
            return OwnerAccess(tenant=tenant, may_attach=True)
        except (OwnerNotFound, InvalidValue):
            return None
        if not may_view(request, spec, owner):
            return None
        return OwnerAccess(tenant=tenant, may_attach=may_attach(request, spec, owner))

    def get_owner_attachments(self, obj: Any) -> Any:
        return (
            Attachment.objects.filter(
                owner_type=self.get_attachments_owner_type(obj), owner_id=self.get_attachments_owner_id(obj)
            )
            .select_related("blob")
            .order_by("-created_at", "-id")
        )

    # -- URLs and pages --------------------------------------------------------

    def _url_name(self, suffix: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{suffix}"

    def _url(self, suffix: str, *args: Any) -> str:
        return reverse(f"admin:{self._url_name(suffix)}", args=args, current_app=self.admin_site.name)

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        # admin_view checks CSRF, reading request.POST and so the whole body:
        # limit_body refuses an oversized one first. It is csrf_exempt only so
        # that CsrfViewMiddleware does not read the body before it either;
        # admin_view's own check still runs, after the guard.
        upload = csrf_exempt(limit_body(wrap(self.attachments_upload_view), refused=self.attachments_too_large))
        return [
            path("<path:object_id>/attachments/upload/", upload, name=self._url_name("attachments_upload")),
            path(
                "<path:object_id>/attachments/<uuid:attachment_id>/unlink/",
                wrap(self.attachments_unlink_view),
                name=self._url_name("attachments_unlink"),
            ),
            path(
                "<path:object_id>/attachments/<uuid:attachment_id>/download/",
                wrap(self.attachments_download_view),
                name=self._url_name("attachments_download"),
            ),
            path(
                "<path:object_id>/attachments/<uuid:attachment_id>/variants/<str:variant>/",
                wrap(self.attachments_variant_view),
                name=self._url_name("attachments_variant"),
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_view_or_change_permission(request, obj):
            context = self.attachments_context(request, obj)
            if context:
                # Read when the page renders (a POST that redirects must not consume them).
                context["attachments_panel"]["messages"] = partial(_messages, request, panel=True)
                context["attachments_page_messages"] = partial(_messages, request, panel=False)
            extra_context = {**(extra_context or {}), **context}
        return super().change_view(request, object_id, form_url, extra_context)

    def attachments_context(self, request: HttpRequest, obj: Any) -> dict:
        try:
            access = self.get_attachments_access(request, obj)
        except NoTenant:
            return {"attachments_panel": {"refused": True}}
        if access is None:
            return {}  # not found: nothing to say about it
        object_id = quote(obj.pk)
        can_change = self.has_change_permission(request, obj) and access.may_attach
        rows = []
        show_thumbnails = services.variants.any_declared()
        attachments = self._attachments(obj, access)
        if show_thumbnails:  # each row's thumbnail: two queries, not two a row
            attachments = attachments.prefetch_related("blob__variants", "blob__renders")
        for attachment in attachments:
            refusal = display.download_refusal(attachment.blob)
            rows.append(
                {
                    "attachment": attachment,
                    # None where the download view would refuse the file (409): no link is offered.
                    "download_url": None if refusal else self._url("attachments_download", object_id, attachment.pk),
                    "no_download": display.no_download(refusal) if refusal else None,
                    "scan": display.scan_badge(attachment.blob, signature=True),
                    "unlink_url": self._url("attachments_unlink", object_id, attachment.pk),
                    "thumbnail": self._thumbnail(object_id, attachment) if show_thumbnails else None,
                }
            )
        # The scan column where there is something to say: a scanner, or files it judged before.
        show_scan = app_settings.SCANNER is not None or any(
            row["attachment"].blob.scan_state != ScanState.NOT_SCANNED for row in rows
        )
        return {
            "attachments_panel": {
                "rows": rows,
                "show_scan": show_scan,
                "show_thumbnails": show_thumbnails,
                "can_change": can_change,
                "form": self._panel_form(obj) if can_change else None,
                "dropzone": self.get_attachments_dropzone(request, obj, access) if can_change else None,
                "upload_url": self._url("attachments_upload", object_id),
                "upload_form_id": UPLOAD_FORM_ID,
                "unlink_form_id": UNLINK_FORM_ID,
            }
        }

    def get_attachments_dropzone(self, request: HttpRequest, obj: Any, access: OwnerAccess) -> dict | None:
        """The drop zone's settings for a user who may change ``obj``'s files; None: the form alone.

        See :mod:`django_attachments.admin.dropzone`: offered where the API's
        direct uploads are served and would take this user's upload.
        """
        return dropzone.dropzone(
            request,
            owner_type=self.get_attachments_owner_type(obj),
            owner_id=self.get_attachments_owner_id(obj),
            tenant=access.tenant,
        )

    def _thumbnail(self, object_id: str, attachment: Attachment) -> str:
        return thumbnails.cell(
            attachment.blob,
            attachment.owner_type,
            partial(self._url, "attachments_variant", object_id, attachment.pk),
            thumbnail=self.attachments_thumbnail_variant,
            preview=self.attachments_preview_variant,
            box=thumbnails.PANEL_BOX,
            alt=str(_("Thumbnail of %(file)s") % {"file": attachment.filename or attachment.blob.filename}),
        )

    def _upload_form(self, obj: Any, *args: Any) -> AttachmentUploadForm:
        owner_type = self.get_attachments_owner_type(obj)
        spec = attachment_registry.get(owner_type) if owner_type in attachment_registry else None
        return AttachmentUploadForm(*args, slots=spec.allowed_names if spec else None)

    def _panel_form(self, obj: Any) -> AttachmentUploadForm:
        """The upload form as the panel shows it: inside the change form, its controls owned by the panel's form."""
        form = self._upload_form(obj)
        form.auto_id = "id_attachments_%s"  # the owner's own form may have a "description" or a "name"
        for field in form.fields.values():
            field.widget.attrs["form"] = UPLOAD_FORM_ID
        return form

    def _owner_or_404(self, request: HttpRequest, object_id: str, *, change: bool) -> tuple[Any, OwnerAccess]:
        """The owner and the user's access to it: 404 if, for the user, it does not exist; else 403 if denied."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("No such object."))
        access = self.get_attachments_access(request, obj)  # NoTenant: 403
        if access is None:
            raise Http404(_("No such object."))  # the same answer as for no object at all
        allowed = (
            self.has_change_permission(request, obj) and access.may_attach
            if change
            else self.has_view_or_change_permission(request, obj)
        )
        if not allowed:
            raise PermissionDenied
        return obj, access

    def _back(self, obj: Any) -> HttpResponseRedirect:
        return HttpResponseRedirect(self._url("change", quote(obj.pk)) + "#attachments")

    def _attachments(self, obj: Any, access: OwnerAccess) -> Any:
        """The owner's attachments whose blob is in the user's tenant (every tenant's for None)."""
        attachments = self.get_owner_attachments(obj)
        return attachments if access.tenant is None else attachments.filter(blob__tenant=access.tenant)

    def _attachment_or_404(self, obj: Any, access: OwnerAccess, attachment_id: Any) -> Attachment:
        attachment = self._attachments(obj, access).filter(pk=attachment_id).first()
        if attachment is None:
            raise Http404(_("No such attachment."))
        return attachment

    # -- actions ---------------------------------------------------------------

    def attachments_upload_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._upload)(request, object_id)

    def attachments_too_large(self, request: HttpRequest, error: AttachmentError) -> HttpResponse:
        """The 413 page for an upload past the limit: found by its Content-Length, or while parsed."""
        match = request.resolver_match
        object_id = match.kwargs.get("object_id") if match else None
        context = {
            **self.admin_site.each_context(request),
            "title": _("File too large"),
            "limit": getattr(error, "limit", None),
            "back_url": self._url("change", object_id) + "#attachments" if object_id else None,
        }
        return TemplateResponse(request, self.too_large_template, context, status=413)

    def _upload(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj, access = self._owner_or_404(request, object_id, change=True)
        form = self._upload_form(obj, request.POST, request.FILES)
        if not form.is_valid():
            for field, errors in form.errors.items():
                label = form.fields[field].label if field in form.fields else field
                messages.error(request, f"{label}: {' '.join(map(str, errors))}", extra_tags=PANEL_MESSAGE_TAG)
            return self._back(obj)
        upload = form.cleaned_data["file"]
        try:
            attachment = services.attach(
                upload,
                owner_type=self.get_attachments_owner_type(obj),
                owner_id=self.get_attachments_owner_id(obj),
                name=form.cleaned_data["name"] or "",
                description=form.cleaned_data["description"],
                tenant=access.tenant,
                user=request.user,
            )
        except AttachmentError as exc:  # a misconfiguration is no AttachmentError: a server error, not a message
            if exc.public_detail is not None and exc.status_code >= 500:  # a 4xx is the user's answer
                logger.error("%s: %s", type(exc).__name__, exc, exc_info=exc)
            reason = exc.public_detail or str(exc)
            message = _("%(file)s was not attached: %(reason)s") % {"file": upload.name, "reason": reason}
            messages.error(request, message, extra_tags=PANEL_MESSAGE_TAG)
            return self._back(obj)
        if attachment.was_created:
            text = _("Attached %(file)s.") % {"file": attachment.filename}
            messages.success(request, text, extra_tags=PANEL_MESSAGE_TAG)
        else:
            text = _("%(file)s was already attached here.") % {"file": attachment.filename}
            messages.info(request, text, extra_tags=PANEL_MESSAGE_TAG)
        return self._back(obj)

    def attachments_unlink_view(self, request: HttpRequest, object_id: str, attachment_id: Any) -> HttpResponse:
        return require_POST(self._unlink)(request, object_id, attachment_id)

    def _unlink(self, request: HttpRequest, object_id: str, attachment_id: Any) -> HttpResponse:
        obj, access = self._owner_or_404(request, object_id, change=True)
        attachment = self._attachment_or_404(obj, access, attachment_id)
        services.unlink(attachment)
        text = _("Unlinked %(file)s.") % {"file": attachment.filename}
        messages.success(request, text, extra_tags=PANEL_MESSAGE_TAG)
        return self._back(obj)

    def attachments_download_view(self, request: HttpRequest, object_id: str, attachment_id: Any) -> HttpResponseBase:
        obj, access = self._owner_or_404(request, object_id, change=False)
        attachment = self._attachment_or_404(obj, access, attachment_id)
        return downloads.serve_blob_or_503(request, attachment.blob, filename=attachment.filename)

    def attachments_variant_view(
        self, request: HttpRequest, object_id: str, attachment_id: Any, variant: str
    ) -> HttpResponseBase:
        """A file's thumbnail or preview, for the panel's images: the download view's checks, then as the API."""
        obj, access = self._owner_or_404(request, object_id, change=False)
        attachment = self._attachment_or_404(obj, access, attachment_id)
        return thumbnails.serve(request, attachment.blob, variant, owner_type=attachment.owner_type)
