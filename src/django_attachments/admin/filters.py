"""List filters on where blobs stand in the processing pipeline: ``?scan=infected``, ``?analysis=failed``.

The blob list filters its own columns; the attachment list filters through
each link's blob, under the same parameter names::

    /admin/django_attachments/blob/?scan=infected
    /admin/django_attachments/attachment/?scan=pending&analysis=failed

They narrow the rows the page already shows (the user's tenant's), never
widen them; a value that is no state matches nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import TextChoices
from django.utils.translation import gettext_lazy as _

from ..models import AnalysisState, ScanState


class StateFilter(admin.SimpleListFilter):
    """A filter on one state column, reached by ``field_path``, offering each of ``states``."""

    field_path: str = ""
    states: type[TextChoices]

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, Any]]:
        return list(self.states.choices)

    def queryset(self, request: Any, queryset: Any) -> Any:
        value = self.value()
        return queryset if value is None else queryset.filter(**{self.field_path: value})


class ScanStateFilter(StateFilter):
    title = _("scan")
    parameter_name = "scan"
    field_path = "scan_state"
    states = ScanState


class AnalysisStateFilter(StateFilter):
    title = _("analysis")
    parameter_name = "analysis"
    field_path = "analysis_state"
    states = AnalysisState


class BlobScanStateFilter(ScanStateFilter):
    """:class:`ScanStateFilter` on attachments: their blob's scan."""

    field_path = "blob__scan_state"


class BlobAnalysisStateFilter(AnalysisStateFilter):
    """:class:`AnalysisStateFilter` on attachments: their blob's analysis."""

    field_path = "blob__analysis_state"
