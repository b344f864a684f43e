"""The OpenAPI schema describes every endpoint, and validates."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_schema_is_valid_openapi(schema):
    validate_schema(schema)


def test_upload_is_multipart_with_a_binary_file_and_link_is_json(schema):
    body = schema["paths"]["/api/attachments/"]["post"]["requestBody"]["content"]
    upload = schema["components"]["schemas"][body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert upload["properties"]["file"] == {"type": "string", "format": "binary"}
    assert set(upload["required"]) >= {"file", "owner_type", "owner_id"}
    link = schema["components"]["schemas"][body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(link["required"]) >= {"blob_id", "owner_type", "owner_id"}


def test_responses_are_documented(schema):
    paths = schema["paths"]
    assert set(paths["/api/attachments/"]["post"]["responses"]) >= {"200", "201", "400", "404", "413", "415"}
    download = paths["/api/attachments/{id}/download/"]["get"]
    assert download["responses"]["200"]["content"]["*/*"]["schema"] == {"type": "string", "format": "binary"}
    assert set(download["responses"]) >= {"200", "206", "304", "404", "416"}
    assert {p["name"] for p in download["parameters"]} >= {"Range", "If-None-Match", "If-Range"}
    assert {p["name"] for p in paths["/api/attachments/"]["get"]["parameters"]} >= {
        "owner_type",
        "owner_id",
        "name",
        "checksum",
        "page",
        "page_size",
    }
    assert "put" not in paths["/api/attachments/{id}/"]


def test_no_operation_is_described_by_a_mixin_of_the_views(schema):
    """An operation without a description of its own takes its viewset's docstring, never the body guard's."""
    from django_attachments.api.uploads import BodyGuardMixin

    guard = " ".join(BodyGuardMixin.__doc__.split())
    described = [
        (path, method, operation.get("description", ""))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict)
    ]
    assert described
    assert [(path, method) for path, method, text in described if guard[:40] in " ".join(text.split())] == []
