"""The attachment's JSON as the API builds it for a page's rows, against DRF's own field-by-field path."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from django_attachments import services
from django_attachments.api.serializers import AttachmentSerializer
from django_attachments.models import AnalysisState, Attachment, Blob, ScanState

pytestmark = pytest.mark.django_db

#: Blob states that change what the representation shows: each scan and analysis state, with what goes with it.
STATES = [
    {"scan_state": ScanState.PENDING},
    {"scan_state": ScanState.CLEAN, "scanned_at": timezone.now() - timedelta(hours=3)},
    {"scan_state": ScanState.INFECTED, "scan_signature": "Eicar-Test-Signature", "scanned_at": timezone.now()},
    {"scan_state": ScanState.INFECTED, "scan_signature": ""},
    {"scan_state": ScanState.FAILED, "scan_error_code": "scan_unavailable", "scan_error": "daemon at 127.0.0.1 down"},
    {"scan_state": ScanState.FAILED, "scan_error_code": ""},
    {"scan_state": ScanState.NOT_SCANNED},
    {
        "analysis_state": AnalysisState.ANALYZED,
        "analyzed_at": timezone.now(),
        "metadata": {"image.width": 40, "image.height": 20, "declared_content_type": "image/png", "private": 1},
    },
    {
        "analysis_state": AnalysisState.FAILED,
        "analyzed_at": timezone.now(),
        "analysis_errors": {"pdf": {"code": "analysis_failed", "detail": "broken xref"}, "odd": "not a dict"},
        "metadata": {"pdf.pages": 3},
    },
    {"analysis_state": AnalysisState.PENDING, "metadata": {"pdf.pages": 3}},
    {"analysis_state": AnalysisState.NOT_ANALYZED},
]


@pytest.fixture
def listed(owners, store):
    rows = []
    for i, state in enumerate(STATES):
        attachment = services.attach(
            f"file {i} ".encode() * 20,
            owner_type="patient",
            owner_id=owners.alice.pk,
            name=f"slot-{i}" if i % 2 else "",
            description="x" * i,
            filename=f"scan {i}.bin",
        )
        Blob.objects.filter(pk=attachment.blob_id).update(**state)
        rows.append(attachment.pk)
    return list(Attachment.objects.select_related("blob").filter(pk__in=rows).order_by("created_at"))


@pytest.mark.parametrize("is_staff", [False, True])
def test_each_row_is_what_drf_makes_of_it_field_by_field(listed, is_staff):
    request = APIRequestFactory().get("/api/attachments/")
    request.user = get_user_model()(username="reader", is_staff=is_staff)
    context = {"request": request}
    fast = AttachmentSerializer(listed, many=True, context=context).data
    generic = AttachmentSerializer(context=context)
    by_drf = [serializers.ModelSerializer.to_representation(generic, attachment) for attachment in listed]
    assert [dict(row) for row in fast] == [dict(row) for row in by_drf]
    assert [list(row) for row in fast] == [AttachmentSerializer.Meta.fields] * len(listed)  # and in the same order
    # What the states show (so that both paths could not agree on something wrong).
    infected = next(row for row in fast if row["scan_signature"] or row["scan"] == "infected")
    assert infected["scan_signature"] == ("Eicar-Test-Signature" if is_staff else None)
    failed = [row["scan_error_code"] for row in fast if row["scan"] == "failed"]
    assert failed == ["scan_unavailable", None]
    analyzed = next(row for row in fast if row["analysis"] == "analyzed")
    assert analyzed["metadata"] == {"image.width": 40, "image.height": 20} and analyzed["analyzed_at"].endswith("Z")


def test_a_subclass_or_changed_fields_take_drfs_path(listed):
    class WithExtra(AttachmentSerializer):
        extra = serializers.SerializerMethodField()

        class Meta(AttachmentSerializer.Meta):
            fields = [*AttachmentSerializer.Meta.fields, "extra"]

        def get_extra(self, attachment):
            return attachment.blob.filename

    request = APIRequestFactory().get("/api/attachments/")
    request.user = get_user_model()(username="reader")
    rows = WithExtra(listed, many=True, context={"request": request}).data
    assert [row["extra"] for row in rows] == [attachment.blob.filename for attachment in listed]
