"""Every event shape of docs/REFERENCE.md#accepted-events, turned into work items: one per S3 object named.

Hand-written rather than Powertools' data classes: those leave S3 record keys URL-encoded and
raise on optional fields that real events omit (``version-id``, ``eTag``), and the DLQ record
needs the raw record anyway, to be replayable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote_plus

from pydantic import ValidationError

from backdrop_fn.errors import BackdropError
from backdrop_fn.failures import RECORD_TYPE, FailureRecord
from backdrop_fn.vocabulary import ErrorClass

# S3 takes keys of at most this many bytes (UTF-8): a longer one names no object.
S3_KEY_LIMIT = 1024


class UnrecognisedEvent(BackdropError):
    """An event or message body that is not work: of no accepted shape, or for a bucket not ours.

    Never retryable: no later receive changes what a message says.
    """

    error_class = ErrorClass.INVALID_EVENT


class ForeignBucket(UnrecognisedEvent):
    """A well-formed event for a bucket outside INPUT_BUCKETS: refused before anything is read."""

    def __init__(self, item: WorkItem) -> None:
        super().__init__(f"bucket {item.bucket!r} is not one of INPUT_BUCKETS")
        self.item = item


@dataclass(frozen=True)
class WorkItem:
    """One S3 object named by an event, with the event itself: a DLQ record replays it."""

    bucket: str
    key: str
    etag: str | None
    version_id: str | None
    event: dict[str, Any] = field(repr=False)
    # Set when the item comes from a DLQ record fed back, so that the redrive is processed again.
    replay_of: str | None = None
    # The variant whose failure the record is: only that one is run again.
    replay_variant: int | None = None


def items_from_event(event: Any, input_buckets: frozenset[str] | None = None) -> list[WorkItem]:
    """A direct invocation: an S3 notification, an EventBridge event or a DLQ record.

    ``input_buckets`` (INPUT_BUCKETS): the only buckets an item may name; None allows any.
    """
    if not isinstance(event, dict):
        raise UnrecognisedEvent("the event is not a JSON object")
    return _allowed(_items(event), input_buckets)


def items_from_message(body: str, input_buckets: frozenset[str] | None = None) -> list[WorkItem]:
    """The body of one work-queue message."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        raise UnrecognisedEvent("the message body is not JSON") from None
    if not isinstance(payload, dict):
        raise UnrecognisedEvent("the message body is not a JSON object")
    return _allowed(_items(payload), input_buckets)


def _allowed(items: list[WorkItem], input_buckets: frozenset[str] | None) -> list[WorkItem]:
    """The whole event is refused when one item names a bucket we may not read."""
    for item in items:
        if input_buckets is not None and item.bucket not in input_buckets:
            raise ForeignBucket(item)
    return items


def _items(payload: dict[str, Any]) -> list[WorkItem]:
    if payload.get("Event") == "s3:TestEvent":
        return []
    if payload.get("type") == RECORD_TYPE:
        return _replayed(payload)
    if payload.get("source") == "aws.s3" and "detail" in payload:
        return _from_eventbridge(payload)
    records = payload.get("Records")
    if isinstance(records, list) and records:
        return [item for record in records for item in _from_s3_record(record)]
    raise UnrecognisedEvent("not an S3 notification, an EventBridge S3 event or a Backdrop DLQ record")


def _from_s3_record(record: Any, *, replay_of: str | None = None) -> list[WorkItem]:
    if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
        raise UnrecognisedEvent("a record in Records is not an S3 event record")
    event_name = record.get("eventName")
    if not isinstance(event_name, str):
        raise UnrecognisedEvent("an S3 event record without eventName")
    if not event_name.startswith("ObjectCreated"):
        return []
    try:
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        key = obj["key"]
    except (KeyError, TypeError):
        raise UnrecognisedEvent("an S3 event record without s3.bucket.name or s3.object.key") from None
    etag, version_id = _optional(obj, "eTag"), _optional(obj, "versionId")
    return [WorkItem(*_named(bucket, key), etag, version_id, record, replay_of)]


def _from_eventbridge(event: dict[str, Any], *, replay_of: str | None = None) -> list[WorkItem]:
    detail_type = event.get("detail-type")
    if not isinstance(detail_type, str):
        raise UnrecognisedEvent("an EventBridge S3 event without detail-type")
    if detail_type != "Object Created":
        return []
    try:
        detail = event["detail"]
        bucket = detail["bucket"]["name"]
        obj = detail["object"]
        key = obj["key"]
    except (KeyError, TypeError):
        raise UnrecognisedEvent(
            "an EventBridge S3 event without detail.bucket.name or detail.object.key"
        ) from None
    bucket, key = _named(bucket, key)
    return [
        WorkItem(
            bucket=bucket,
            key=key,
            etag=_optional(obj, "etag") or _optional(obj, "eTag"),
            version_id=_optional(obj, "version-id"),
            event=event,
            replay_of=replay_of,
        )
    ]


def _named(bucket: Any, encoded_key: Any) -> tuple[str, str]:
    """The bucket and the URL-decoded key, when they can name an S3 object at all."""
    if not isinstance(bucket, str) or not bucket:
        raise UnrecognisedEvent("the bucket name is not a non-empty string")
    if not isinstance(encoded_key, str) or not encoded_key:
        raise UnrecognisedEvent("the object key is not a non-empty string")
    key = unquote_plus(encoded_key)
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnrecognisedEvent("the object key is not valid Unicode") from None
    if size > S3_KEY_LIMIT:
        raise UnrecognisedEvent(f"the object key is over S3's {S3_KEY_LIMIT} bytes")
    return bucket, key


def _optional(obj: dict[str, Any], name: str) -> str | None:
    """An optional text field (an ETag, a version id): absent or empty is None, anything else refused."""
    value = obj.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UnrecognisedEvent(f"{name} is not a string")
    return value


def _replayed(payload: dict[str, Any]) -> list[WorkItem]:
    try:
        record = FailureRecord.model_validate(payload)
    except ValidationError as exc:
        raise UnrecognisedEvent(f"a malformed Backdrop DLQ record ({exc.error_count()} problems)") from None
    original = record.event
    replay_of = record.replay_id()
    if original.get("eventSource") == "aws:s3":
        items = _from_s3_record(original, replay_of=replay_of)
    elif original.get("source") == "aws.s3":
        items = _from_eventbridge(original, replay_of=replay_of)
    else:
        raise UnrecognisedEvent(
            "a Backdrop DLQ record whose event is not an S3 record: it cannot be replayed"
        )
    return [replace(item, replay_variant=record.variant) for item in items]
