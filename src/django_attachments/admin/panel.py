"""An attachments panel for a consumer's ``ModelAdmin``: see, upload, download and unlink an owner's files.

::

    @admin.register(PlanItem)
    class PlanItemAdmin(AttachmentsAdminMixin, admin.ModelAdmin):
        attachments_owner_type = "plan_item"

The owner's change page then lists its attachments (filename, type, size,
slot, description, created) with download links, and lets staff who may
change the owner upload files and unlink them. Everything goes through
:mod:`django_attachments.services`, so the owner type's slots, size and type
limits and the deduplication apply exactly as in the API. The admin is a
trusted interface: the owner is whatever the admin shows, and its files are
stored in the owner's own tenant.

A ModelAdmin with its own ``change_form_template`` can extend
``admin/django_attachments/change_form_with_attachments.html`` or include
``admin/django_attachments/attachments_panel.html`` in its ``content`` block.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from .. import downloads, services
from ..exceptions import AttachmentError
from ..models import Attachment
from ..registry import attachment_registry


class AttachmentUploadForm(forms.Form):
    file = forms.FileField(label=_("File"), allow_empty_file=True)
    name = forms.CharField(label=_("Slot"), required=False, max_length=64)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, slots: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if slots:
            choices = [(slot, slot or _("(none)")) for slot in sorted(slots)]
            self.fields["name"] = forms.ChoiceField(label=_("Slot"), choices=choices, required="" not in slots)


class AttachmentsAdminMixin:
    """Adds the owner's attachments to a ModelAdmin's change page."""

    #: The registered owner type this model's objects are.
    attachments_owner_type: str | None = None
    change_form_template = "admin/django_attachments/change_form_with_attachments.html"

    # -- what the owner is -----------------------------------------------------

    def get_attachments_owner_type(self, obj: Any) -> str:
        if not self.attachments_owner_type:
            raise ImproperlyConfigured(f"{type(self).__name__} must set attachments_owner_type.")
        return self.attachments_owner_type

    def get_attachments_owner_id(self, obj: Any) -> str:
        """The owner id attachments are stored under; the primary key by default."""
        return str(obj.pk)

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
        return [
            path(
                "<path:object_id>/attachments/upload/",
                wrap(self.attachments_upload_view),
                name=self._url_name("attachments_upload"),
            ),
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
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_view_or_change_permission(request, obj):
            extra_context = {**(extra_context or {}), **self.attachments_context(request, obj)}
        return super().change_view(request, object_id, form_url, extra_context)

    def attachments_context(self, request: HttpRequest, obj: Any) -> dict:
        object_id = quote(obj.pk)
        can_change = self.has_change_permission(request, obj)
        rows = [
            {
                "attachment": attachment,
                "download_url": self._url("attachments_download", object_id, attachment.pk),
                "unlink_url": self._url("attachments_unlink", object_id, attachment.pk),
            }
            for attachment in self.get_owner_attachments(obj)
        ]
        return {
            "attachments_panel": {
                "rows": rows,
                "can_change": can_change,
                "form": self._upload_form(obj) if can_change else None,
                "upload_url": self._url("attachments_upload", object_id),
            }
        }

    def _upload_form(self, obj: Any, *args: Any) -> AttachmentUploadForm:
        owner_type = self.get_attachments_owner_type(obj)
        spec = attachment_registry.get(owner_type) if owner_type in attachment_registry else None
        return AttachmentUploadForm(*args, slots=spec.allowed_names if spec else None)

    def _owner_or_404(self, request: HttpRequest, object_id: str, *, change: bool) -> Any:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("No such object."))
        allowed = (
            self.has_change_permission(request, obj) if change else self.has_view_or_change_permission(request, obj)
        )
        if not allowed:
            raise PermissionDenied
        return obj

    def _back(self, obj: Any) -> HttpResponseRedirect:
        return HttpResponseRedirect(self._url("change", quote(obj.pk)) + "#attachments")

    def _attachment_or_404(self, obj: Any, attachment_id: Any) -> Attachment:
        attachment = self.get_owner_attachments(obj).filter(pk=attachment_id).first()
        if attachment is None:
            raise Http404(_("No such attachment."))
        return attachment

    # -- actions ---------------------------------------------------------------

    def attachments_upload_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._upload)(request, object_id)

    def _upload(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self._owner_or_404(request, object_id, change=True)
        form = self._upload_form(obj, request.POST, request.FILES)
        if not form.is_valid():
            for field, errors in form.errors.items():
                messages.error(
                    request, f"{form.fields[field].label if field in form.fields else field}: {' '.join(errors)}"
                )
            return self._back(obj)
        upload = form.cleaned_data["file"]
        try:
            attachment = services.attach(
                upload,
                owner_type=self.get_attachments_owner_type(obj),
                owner_id=self.get_attachments_owner_id(obj),
                name=form.cleaned_data["name"] or "",
                description=form.cleaned_data["description"],
                user=request.user,
            )
        except AttachmentError as exc:
            messages.error(request, _("%(file)s was not attached: %(reason)s") % {"file": upload.name, "reason": exc})
            return self._back(obj)
        if attachment.was_created:
            messages.success(request, _("Attached %(file)s.") % {"file": attachment.blob.filename})
        else:
            messages.info(request, _("%(file)s was already attached here.") % {"file": attachment.blob.filename})
        return self._back(obj)

    def attachments_unlink_view(self, request: HttpRequest, object_id: str, attachment_id: Any) -> HttpResponse:
        return require_POST(self._unlink)(request, object_id, attachment_id)

    def _unlink(self, request: HttpRequest, object_id: str, attachment_id: Any) -> HttpResponse:
        obj = self._owner_or_404(request, object_id, change=True)
        attachment = self._attachment_or_404(obj, attachment_id)
        services.unlink(attachment)
        messages.success(request, _("Unlinked %(file)s.") % {"file": attachment.blob.filename})
        return self._back(obj)

    def attachments_download_view(self, request: HttpRequest, object_id: str, attachment_id: Any) -> HttpResponse:
        obj = self._owner_or_404(request, object_id, change=False)
        return downloads.serve_blob_or_503(request, self._attachment_or_404(obj, attachment_id).blob)
