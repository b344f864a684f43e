"""S3 from the benchmark process: boto3 against the moto server, as the anchors use it."""

from __future__ import annotations

import time
import zlib
from typing import TYPE_CHECKING, Any

from .config import CHUNK

if TYPE_CHECKING:
    from .context import Context


def s3_client(ctx: Context) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=ctx.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def bucket_usage(client: Any, bucket: str) -> tuple[int, int, int]:
    """(objects, bytes, multipart uploads in progress) of the bucket."""
    objects = total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            objects += 1
            total += obj["Size"]
    uploads = len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    return objects, total, uploads


def s3_get(client: Any, bucket: str, key: str, byte_range: str | None = None) -> tuple[int, int, float]:
    crc = received = 0
    started = time.perf_counter()
    params = {"Bucket": bucket, "Key": key}
    if byte_range:
        params["Range"] = byte_range
    body = client.get_object(**params)["Body"]
    try:
        while chunk := body.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
            received += len(chunk)
    finally:
        body.close()
    return received, crc, time.perf_counter() - started
