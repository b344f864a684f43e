"""Helpers shared by the API tests: URLs, uploads through DRF's test client, response bodies.

The ``tenant_resolver`` and ``staff`` fixtures live in ``tests/conftest.py``.
"""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

LIST = "/api/attachments/"


def detail(pk) -> str:
    return f"/api/attachments/{pk}/"


def download(pk) -> str:
    return f"/api/attachments/{pk}/download/"


def upload(client, owner_type, owner_id, data, filename="scan.pdf", content_type="application/octet-stream", **fields):
    return client.post(
        LIST,
        {
            "file": SimpleUploadedFile(filename, data, content_type=content_type),
            "owner_type": owner_type,
            "owner_id": str(owner_id),
            **fields,
        },
        format="multipart",
    )


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content
