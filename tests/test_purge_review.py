"""Review of the orphan purge's plain ``DELETE`` path: what it must still do as Django's collector did."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.db import connection, models

from django_attachments import services
from django_attachments.models import Blob
from tests.test_purge import names, orphan

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clip_model():
    """A project's model with a foreign key to blobs and no reverse accessor (``related_name="+"``), cascading
    as the collector does; its table made for the test and dropped after it, the model unregistered."""
    meta = type("Meta", (), {"app_label": "testapp"})
    attrs = {
        "__module__": __name__,
        "Meta": meta,
        "blob": models.ForeignKey(Blob, on_delete=models.CASCADE, related_name="+"),
    }
    model: Any = type("PurgeReviewClip", (models.Model,), attrs)
    with connection.schema_editor() as editor:
        editor.create_model(model)
    try:
        yield model
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(model)
        del apps.all_models["testapp"][model._meta.model_name]
        apps.clear_cache()


def test_a_hidden_foreign_key_to_blobs_is_cascaded_as_by_the_collector(owners, store, clip_model):
    blob = orphan(owners, b"clipped orphan" * 40)
    clip_model.objects.create(blob=blob)
    result = services.purge_orphans()
    assert (result.found, result.removed, result.failures) == (1, 1, [])
    assert not Blob.objects.exists() and not clip_model.objects.exists() and names(store) == []
