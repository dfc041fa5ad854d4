"""Every event shape of docs/REFERENCE.md#accepted-events, turned into work items: one per S3 object named.

Hand-written rather than Powertools' data classes: those leave S3 record keys URL-encoded and
raise on optional fields that real events omit (``version-id``, ``eTag``), and the DLQ record
needs the raw record anyway, to be replayable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from pydantic import ValidationError

from backdrop_fn.failures import RECORD_TYPE, FailureRecord


class UnrecognisedEvent(ValueError):
    """An event or message body of no shape the function accepts."""


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


def items_from_event(event: dict[str, Any]) -> list[WorkItem]:
    """A direct invocation: an S3 notification, an EventBridge event or a DLQ record."""
    return _items(event)


def items_from_message(body: str) -> list[WorkItem]:
    """The body of one work-queue message."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        raise UnrecognisedEvent("the message body is not JSON") from None
    if not isinstance(payload, dict):
        raise UnrecognisedEvent("the message body is not a JSON object")
    return _items(payload)


def _items(payload: dict[str, Any]) -> list[WorkItem]:
    if payload.get("Event") == "s3:TestEvent":
        return []
    if payload.get("type") == RECORD_TYPE:
        return _replayed(payload)
    if payload.get("source") == "aws.s3" and "detail" in payload:
        return _from_eventbridge(payload)
    records = payload.get("Records")
    if isinstance(records, list):
        items: list[WorkItem] = []
        for record in records:
            items.extend(_from_s3_record(record))
        return items
    raise UnrecognisedEvent("not an S3 notification, an EventBridge S3 event or a Backdrop DLQ record")


def _from_s3_record(record: Any, *, replay_of: str | None = None) -> list[WorkItem]:
    if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
        raise UnrecognisedEvent("a record in Records is not an S3 event record")
    if not str(record.get("eventName", "")).startswith("ObjectCreated"):
        return []
    try:
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        key = unquote_plus(obj["key"])
    except (KeyError, TypeError):
        raise UnrecognisedEvent("an S3 event record without s3.bucket.name or s3.object.key") from None
    return [WorkItem(bucket, key, obj.get("eTag") or None, obj.get("versionId") or None, record, replay_of)]


def _from_eventbridge(event: dict[str, Any], *, replay_of: str | None = None) -> list[WorkItem]:
    if event.get("detail-type") != "Object Created":
        return []
    try:
        detail = event["detail"]
        bucket = detail["bucket"]["name"]
        obj = detail["object"]
        key = unquote_plus(obj["key"])
    except (KeyError, TypeError):
        raise UnrecognisedEvent(
            "an EventBridge S3 event without detail.bucket.name or detail.object.key"
        ) from None
    return [
        WorkItem(
            bucket=bucket,
            key=key,
            etag=obj.get("etag") or obj.get("eTag") or None,
            version_id=obj.get("version-id") or None,
            event=event,
            replay_of=replay_of,
        )
    ]


def _replayed(payload: dict[str, Any]) -> list[WorkItem]:
    try:
        record = FailureRecord.model_validate(payload)
    except ValidationError as exc:
        raise UnrecognisedEvent(f"a malformed Backdrop DLQ record ({exc.error_count()} problems)") from None
    original = record.event
    replay_of = record.replay_id()
    if original.get("eventSource") == "aws:s3":
        return _from_s3_record(original, replay_of=replay_of)
    if original.get("source") == "aws.s3":
        return _from_eventbridge(original, replay_of=replay_of)
    raise UnrecognisedEvent("a Backdrop DLQ record whose event is not an S3 record: it cannot be replayed")
