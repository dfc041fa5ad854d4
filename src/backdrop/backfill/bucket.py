"""The two S3 calls of the backfill that the function's adapter has no use for: a listing streamed
a page at a time, and a sidecar written only where none is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from backdrop.backfill.walk import Listed


def listing(s3: Any, bucket: str, prefix: str) -> Iterator[Listed]:
    """Every object under ``prefix``, in S3's order, one ListObjectsV2 page (1,000 keys) held at a time."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield Listed(item["Key"], item["ETag"].strip('"'), int(item["Size"]))


def keys_under(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    return (listed.key for listed in listing(s3, bucket, prefix))


class SidecarTaken(RuntimeError):
    """An object already holds the sidecar's key: nothing was written."""


def write_sidecar(s3: Any, bucket: str, key: str, body: bytes) -> str:
    """Write a sidecar only if no object has its key (S3's conditional write); its ETag.

    Never over a sidecar that appeared since the plan looked: the shop's own file wins.
    """
    try:
        written = s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*"
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            raise SidecarTaken(f"{key} appeared since the plan was made: run again to see it") from None
        raise
    return str(written["ETag"]).strip('"')
