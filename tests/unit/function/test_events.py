"""Event shapes of docs/REFERENCE.md#accepted-events → work items."""

from __future__ import annotations

import json

import pytest

from backdrop_fn.errors import InternalError
from backdrop_fn.events import UnrecognisedEvent, items_from_event, items_from_message
from backdrop_fn.failures import MAX_MESSAGE_CHARS, FailureRecord, FailureSource
from tests.unit.function.conftest import s3_record


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("shop/red+shoe.jpg", "shop/red shoe.jpg"),
        ("shop/red%20shoe.jpg", "shop/red shoe.jpg"),
        ("shop/c%2B%2B.png", "shop/c++.png"),
        ("shop/schuh+%C3%BC.jpg", "shop/schuh ü.jpg"),
        ("a/b/c/d.webp", "a/b/c/d.webp"),
    ],
)
def test_s3_keys_are_url_decoded(encoded: str, decoded: str):
    record = s3_record("x")
    record["s3"]["object"]["key"] = encoded
    (item,) = items_from_event({"Records": [record]})
    assert item.key == decoded
    assert item.event is record


def test_an_s3_record_names_its_bucket_and_etag():
    (item,) = items_from_event({"Records": [s3_record("a.jpg", etag="abc")]})
    assert (item.bucket, item.key, item.etag) == ("in-bucket", "a.jpg", "abc")


def test_s3_test_event_gives_nothing_to_do():
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "in-bucket"})
    assert items_from_message(body) == []


def test_object_removed_records_are_skipped():
    assert items_from_event({"Records": [s3_record("a.jpg", event_name="ObjectRemoved:Delete")]}) == []


def test_eventbridge_object_created():
    event = {
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": "in-bucket"}, "object": {"key": "shop/red+shoe.jpg", "etag": "e1"}},
    }
    (item,) = items_from_event(event)
    assert (item.bucket, item.key, item.etag) == ("in-bucket", "shop/red shoe.jpg", "e1")


@pytest.mark.parametrize("error_class", ["server_error", "a_class_of_another_version"])
def test_dlq_record_is_replayed_with_its_identity(error_class: str):
    record = {
        "type": "backdrop.failure",
        "version": 1,
        "error": {"class": error_class, "message": "API 502", "http_status": 502, "retryable": True},
        "source": {"bucket": "in-bucket", "key": "a.jpg", "etag": "e", "sidecar_key": "a.jpg.json"},
        "attempts": 5,
        "failed_at": "2026-11-27T10:00:00Z",
        "request_id": "r-1",
        "event": s3_record("a.jpg"),
    }
    (item,) = items_from_message(json.dumps(record))
    assert item.key == "a.jpg"
    assert item.replay_of == "2026-11-27T10:00:00Z/r-1/5"
    assert item.replay_variant is None
    (item,) = items_from_message(json.dumps({**record, "variant": 3}))
    assert item.replay_variant == 3


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"hello": "world"}),
        json.dumps({"Records": [{"eventSource": "aws:sns"}]}),
        json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}),
        json.dumps({"type": "backdrop.failure", "version": 1}),
    ],
)
def test_garbage_is_unrecognised(body: str):
    with pytest.raises(UnrecognisedEvent):
        items_from_message(body)


def test_a_long_error_message_is_shortened_in_the_dlq_record():
    record = FailureRecord.from_error(
        InternalError("x" * 100_000), source=FailureSource(), attempts=1, request_id=None, event={}
    )
    assert len(record.error.message) == MAX_MESSAGE_CHARS
    assert record.error.message.endswith("(shortened)")
