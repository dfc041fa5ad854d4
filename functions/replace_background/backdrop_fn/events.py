"""Every event shape of CONTRACT.md §5, turned into work items: one per S3 object mentioned.

Hand-written rather than Powertools' data classes: those leave S3 record keys URL-encoded and
raise on optional fields that real events omit (``version-id``, ``eTag``), and the DLQ record
needs the raw record anyway, to be replayable.
"""

from __future__ import annotations

import dataclasses
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
    """One S3 object named by an event, with what is needed to retry or dead-letter it."""

    bucket: str
    key: str
    etag: str | None
    version_id: str | None
    event: dict[str, Any] = field(repr=False)
    attempt: int = 1
    final_attempt: bool = True
    # Set when the item comes from a DLQ record fed back, so that the redrive is processed again.
    replay_of: str | None = None
    # The work-queue message that carries it: the one that retries what it started.
    message_id: str | None = None


def items_from_event(event: dict[str, Any]) -> list[WorkItem]:
    """A direct invocation: an S3 notification, an EventBridge event or a DLQ record.

    There is no later attempt for these, so every item is its own final attempt.
    """
    return _items(event, attempt=1, final_attempt=True)


def items_from_message(
    body: str, *, attempt: int, final_attempt: bool, message_id: str | None = None
) -> list[WorkItem]:
    """The body of one work-queue message."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        raise UnrecognisedEvent("the message body is not JSON") from None
    if not isinstance(payload, dict):
        raise UnrecognisedEvent("the message body is not a JSON object")
    items = _items(payload, attempt=attempt, final_attempt=final_attempt)
    return [dataclasses.replace(item, message_id=message_id) for item in items]


def _items(payload: dict[str, Any], *, attempt: int, final_attempt: bool) -> list[WorkItem]:
    if payload.get("Event") == "s3:TestEvent":
        return []
    if payload.get("type") == RECORD_TYPE:
        return _replayed(payload, attempt=attempt, final_attempt=final_attempt)
    if payload.get("source") == "aws.s3" and "detail" in payload:
        return _from_eventbridge(payload, attempt=attempt, final_attempt=final_attempt)
    records = payload.get("Records")
    if isinstance(records, list):
        items: list[WorkItem] = []
        for record in records:
            items.extend(_from_s3_record(record, attempt=attempt, final_attempt=final_attempt))
        return items
    raise UnrecognisedEvent("not an S3 notification, an EventBridge S3 event or a Backdrop DLQ record")


def _from_s3_record(
    record: Any, *, attempt: int, final_attempt: bool, replay_of: str | None = None
) -> list[WorkItem]:
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
    return [
        WorkItem(
            bucket,
            key,
            obj.get("eTag") or None,
            obj.get("versionId") or None,
            record,
            attempt,
            final_attempt,
            replay_of,
        )
    ]


def _from_eventbridge(
    event: dict[str, Any], *, attempt: int, final_attempt: bool, replay_of: str | None = None
) -> list[WorkItem]:
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
            attempt=attempt,
            final_attempt=final_attempt,
            replay_of=replay_of,
        )
    ]


def _replayed(payload: dict[str, Any], *, attempt: int, final_attempt: bool) -> list[WorkItem]:
    try:
        record = FailureRecord.model_validate(payload)
    except ValidationError as exc:
        raise UnrecognisedEvent(f"a malformed Backdrop DLQ record ({exc.error_count()} problems)") from None
    original = record.event
    replay_of = record.replay_id()
    if original.get("eventSource") == "aws:s3":
        return _from_s3_record(original, attempt=attempt, final_attempt=final_attempt, replay_of=replay_of)
    if original.get("source") == "aws.s3":
        return _from_eventbridge(original, attempt=attempt, final_attempt=final_attempt, replay_of=replay_of)
    raise UnrecognisedEvent("a Backdrop DLQ record whose event is not an S3 record: it cannot be replayed")
