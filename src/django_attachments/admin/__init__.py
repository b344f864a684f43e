"""The admin: pages for blobs, attachments and direct uploads, and a panel for your own models' change pages.

::

    # treatment_plan/admin.py
    from django_attachments.admin import AttachmentsAdminMixin

    @admin.register(PlanItem)
    class PlanItemAdmin(AttachmentsAdminMixin, admin.ModelAdmin):
        attachments_owner_type = "plan_item"
"""

from .filters import AnalysisStateFilter, BlobAnalysisStateFilter, BlobScanStateFilter, ScanStateFilter
from .models import AttachmentAdmin, BlobAdmin, DirectUploadAdmin, OrphanFilter
from .panel import AttachmentsAdminMixin

__all__ = [
    "AnalysisStateFilter",
    "AttachmentAdmin",
    "AttachmentsAdminMixin",
    "BlobAdmin",
    "BlobAnalysisStateFilter",
    "BlobScanStateFilter",
    "DirectUploadAdmin",
    "OrphanFilter",
    "ScanStateFilter",
]
