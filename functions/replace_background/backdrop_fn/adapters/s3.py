"""The object store port on S3 (boto3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError

from backdrop_fn.errors import BackdropError, InfrastructureUnavailable, InternalError, OutputWriteFailed
from backdrop_fn.ports import ObjectInfo, StoredObject
from backdrop_fn.streams import CountingStream

# Results go to S3 in parts of 5 MiB (S3's smallest), one at a time: a 20 MB result is never
# held whole. Smaller results go in one PutObject.
_STREAMING_UPLOAD = TransferConfig(
    multipart_threshold=5 * 1024 * 1024,
    multipart_chunksize=5 * 1024 * 1024,
    max_concurrency=1,
    use_threads=False,
)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
# Answers that mean "try again": throttling, and an object replaced between our HEAD and GET.
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "PreconditionFailed",
    "412",
}


def _info(bucket: str, key: str, response: dict[str, Any]) -> ObjectInfo:
    """What HeadObject and GetObject both answer about the object's current version."""
    return ObjectInfo(
        bucket=bucket,
        key=key,
        etag=response["ETag"].strip('"'),
        size=response["ContentLength"],
        version_id=response.get("VersionId"),
        last_modified=response.get("LastModified"),
    )


def _is_not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _NOT_FOUND


class S3ObjectStore:
    def __init__(self, client: Any) -> None:
        self._s3 = client

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        response = _unless_absent(
            "HeadObject", bucket, key, lambda: self._s3.head_object(Bucket=bucket, Key=key)
        )
        return None if response is None else _info(bucket, key, response)

    def peek(self, bucket: str, key: str, *, first_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        def ranged_get() -> Any:
            try:
                return self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{first_bytes - 1}")
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "InvalidRange":
                    return _EMPTY  # an empty object has no byte 0
                raise

        response = _unless_absent("GetObject", bucket, key, ranged_get)
        if response is _EMPTY:
            info = self.head(bucket, key)
            return None if info is None else (info, b"")
        if response is None:
            return None
        body = response["Body"]
        try:
            data = body.read()
        finally:
            body.close()
        # "bytes 0-262143/7692463": the object's whole size is after the slash.
        size = int(response.get("ContentRange", "").rpartition("/")[2] or response["ContentLength"])
        return _info(bucket, key, {**response, "ContentLength": size}), data

    def read(
        self, obj: ObjectInfo, *, first_bytes: int | None = None, last_bytes: int | None = None
    ) -> bytes:
        if first_bytes is not None:
            request_range = f"bytes=0-{first_bytes - 1}"
        elif last_bytes is not None:
            request_range = f"bytes=-{last_bytes}"
        else:
            request_range = None
        body = self._get(obj, request_range)
        try:
            return body.read()
        finally:
            body.close()

    def open(self, obj: ObjectInfo) -> BinaryIO:
        return self._get(obj, None)

    def _get(self, obj: ObjectInfo, request_range: str | None) -> Any:
        """That very version's body (If-Match: a replaced object fails rather than mixing versions)."""
        request: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key, "IfMatch": f'"{obj.etag}"'}
        if obj.version_id:
            request["VersionId"] = obj.version_id
        if request_range:
            request["Range"] = request_range
        try:
            return self._s3.get_object(**request)["Body"]
        except (ClientError, BotoCoreError) as error:
            raise _unavailable("GetObject", obj.bucket, obj.key, error) from None

    def read_small(self, bucket: str, key: str, *, limit: int) -> StoredObject | None:
        response = _unless_absent(
            "GetObject", bucket, key, lambda: self._s3.get_object(Bucket=bucket, Key=key)
        )
        if response is None:
            return None
        body = response["Body"]
        try:
            data = body.read(limit + 1)  # never more than the limit tells us, whatever the size
        finally:
            body.close()
        return StoredObject(info=_info(bucket, key, response), body=data)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as error:
            raise _unavailable("ListObjectsV2", bucket, prefix, error) from None
        return keys

    def presigned_url(self, obj: ObjectInfo, *, expires_in: int) -> str:
        params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            params["VersionId"] = obj.version_id
        return self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def write_output(
        self,
        bucket: str,
        key: str,
        body: BinaryIO,
        *,
        content_type: str,
        metadata: dict[str, str],
        tags: dict[str, str] | None = None,
    ) -> int:
        counted = CountingStream(b"", body)
        extra = {"ContentType": content_type, "Metadata": metadata}
        if tags:
            # Set with the object itself (x-amz-tagging), so that no untagged result is ever seen.
            extra["Tagging"] = urlencode(tags, quote_via=quote)
        try:
            self._s3.upload_fileobj(counted, bucket, key, ExtraArgs=extra, Config=_STREAMING_UPLOAD)
        except (ClientError, BotoCoreError, S3UploadFailedError, OSError, HTTPError) as error:
            # A refusal (AccessDenied, NoSuchBucket, a KMS key denied) is no passing trouble: a
            # later receive would meet it again, and in another container pay again.
            raise OutputWriteFailed(
                f"could not write s3://{bucket}/{key}: {_reason(error)}", retryable=_passes(error)
            ) from None
        return counted.count

    def describe(self, bucket: str, key: str) -> tuple[ObjectInfo, dict[str, str]] | None:
        response = _unless_absent(
            "HeadObject", bucket, key, lambda: self._s3.head_object(Bucket=bucket, Key=key)
        )
        return None if response is None else (_info(bucket, key, response), response.get("Metadata", {}))

    def delete_version(self, bucket: str, key: str, version_id: str) -> None:
        try:
            self._s3.delete_object(Bucket=bucket, Key=key, VersionId=version_id)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable("DeleteObject", bucket, key, error) from None


_EMPTY = object()


def _unless_absent(operation: str, bucket: str, key: str, call: Callable[[], Any]) -> Any | None:
    """``call()``'s response, or None when there is no such object."""
    try:
        return call()
    except ClientError as error:
        if _is_not_found(error):
            return None
        raise _unavailable(operation, bucket, key, error) from None
    except BotoCoreError as error:
        raise _unavailable(operation, bucket, key, error) from None


def _reason(error: BaseException) -> str:
    error = _unwrapped(error)
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")
    return type(error).__name__


def _unavailable(operation: str, bucket: str, key: str, error: Exception) -> BackdropError:
    message = f"S3 {operation} s3://{bucket}/{key} failed: {_reason(error)}"
    return InfrastructureUnavailable(message) if _passes(error) else InternalError(message)


def _passes(error: BaseException) -> bool:
    """Whether S3 trouble is worth another receive: throttling, 5xx and transport failures are;
    a 4xx such as AccessDenied is not."""
    error = _unwrapped(error)
    if not isinstance(error, ClientError):
        return True
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    code = error.response.get("Error", {}).get("Code", "")
    return status >= 500 or code in _TRANSIENT_CODES


def _unwrapped(error: BaseException) -> BaseException:
    """The ClientError inside boto3's S3UploadFailedError, which keeps only its text."""
    if isinstance(error, S3UploadFailedError) and isinstance(error.__context__, ClientError):
        return error.__context__
    return error
