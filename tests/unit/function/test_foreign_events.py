"""Events that are not work: dead-lettered once as ``invalid_event``, before any read or call.

See docs/REFERENCE.md#accepted-events: a message or event that is not a valid S3, EventBridge or
Backdrop DLQ record, or that names a bucket outside INPUT_BUCKETS, is refused whole.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from backdrop_fn.errors import InternalError
from backdrop_fn.handling import handle
from backdrop_fn.runtime import Runtime
from tests.unit.function.conftest import BUCKET, World, s3_record
from tests.unit.function.fakes import JPEG_BYTES
from tests.unit.function.test_handling import Context, batch, message, s3_notification

SIDECAR = {"prompt": "a sunny beach", "seed": 1234}


@pytest.fixture
def runtime(world: World) -> Runtime:
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    return Runtime(settings=world.settings, pipeline=world.pipeline, claims=world.claims, work_queue=None)


def guarded(world: World, buckets: str) -> Runtime:
    world.configure(input_buckets=buckets)
    return Runtime(settings=world.settings, pipeline=world.pipeline, claims=world.claims, work_queue=None)


def eventbridge(key: str, bucket: str = BUCKET) -> dict[str, Any]:
    return {
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key, "etag": "e1"}},
    }


def dlq_record(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "backdrop.failure",
        "version": 1,
        "error": {"class": "server_error", "message": "API 502", "http_status": 502, "retryable": True},
        "source": {"bucket": BUCKET, "key": "a.jpg", "etag": "e", "sidecar_key": "a.jpg.json"},
        "attempts": 5,
        "failed_at": "2026-11-27T10:00:00Z",
        "request_id": "r-1",
        "event": event,
    }


def no_event_name() -> dict[str, Any]:
    record = s3_record("a.jpg")
    del record["eventName"]
    return {"Records": [record]}


def with_object(**changes: Any) -> dict[str, Any]:
    record = s3_record("a.jpg")
    record["s3"]["object"].update(changes)
    return {"Records": [record]}


def with_bucket(name: Any) -> dict[str, Any]:
    record = s3_record("a.jpg")
    record["s3"]["bucket"]["name"] = name
    return {"Records": [record]}


INVALID = {
    "not json": "not json",
    "a list": [],
    "no known shape": {"hello": "world"},
    "a record that is not an object": {"Records": ["oops"]},
    "records of another source": {"Records": [{"eventSource": "aws:sns"}]},
    "no records": {"Records": []},
    "an S3 record without eventName": no_event_name(),
    "an S3 record whose eventName is not text": {"Records": [s3_record("a.jpg", event_name=7)]},  # type: ignore[arg-type]
    "a key that is not text": with_object(key=["a.jpg"]),
    "a bucket that is not text": with_bucket({"name": BUCKET}),
    "an empty bucket name": with_bucket(""),
    "an ETag that is not text": with_object(eTag={"x": 1}),
    "a key longer than S3 allows": with_object(key="a" * 1021 + ".jpg"),
    "an EventBridge event without detail-type": {"source": "aws.s3", "detail": {}},
    "an EventBridge event whose key is not text": {
        **eventbridge("a.jpg"),
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": 5}},
    },
    "a malformed DLQ record": {"type": "backdrop.failure", "version": 1},
    "a DLQ record whose event is a list of records": dlq_record({"Records": ["oops"]}),
}


def one_invalid_event(world: World) -> dict[str, Any]:
    ((record, error_class),) = world.dlq.sent
    assert error_class == "invalid_event"
    assert record["error"]["class"] == "invalid_event"
    assert record["error"]["retryable"] is False
    assert world.api.calls == 0
    return record


@pytest.mark.parametrize("body", INVALID.values(), ids=INVALID.keys())
def test_a_message_that_is_not_an_event_is_dead_lettered_once_as_invalid_event(
    runtime: Runtime, world: World, body: Any
):
    answer = handle(runtime, batch(message("m1", body, receive_count=1)), Context())
    assert answer == {"batchItemFailures": []}  # acknowledged: no receive can fix it
    one_invalid_event(world)


DIRECT = {name: event for name, event in INVALID.items() if isinstance(event, dict)}


@pytest.mark.parametrize("event", DIRECT.values(), ids=DIRECT.keys())
def test_a_direct_event_that_is_not_an_event_is_dead_lettered_once_as_invalid_event(
    runtime: Runtime, world: World, event: dict[str, Any]
):
    answer = handle(runtime, event, Context())
    assert answer["outcomes"] == [
        {
            "status": "failed",
            "image_key": None,
            "variant": None,
            "output_key": None,
            "error_class": "invalid_event",
        }
    ]
    one_invalid_event(world)


def test_a_direct_event_that_is_not_an_object_is_dead_lettered(runtime: Runtime, world: World):
    answer = handle(runtime, ["oops"], Context())  # type: ignore[arg-type]
    assert answer["outcomes"][0]["error_class"] == "invalid_event"
    one_invalid_event(world)


def test_a_batch_record_that_is_not_a_message_is_dead_lettered_and_its_neighbours_go_through(
    runtime: Runtime, world: World
):
    answer = handle(runtime, {"Records": [message("m1", s3_notification("a.jpg")), "oops"]}, Context())
    assert answer == {"batchItemFailures": []}
    ((record, error_class),) = world.dlq.sent
    assert error_class == "invalid_event"
    assert record["event"] == {"unrecognised": '"oops"'}
    assert world.api.calls == 1


def test_object_removed_records_are_still_ignored(runtime: Runtime, world: World):
    event = {"Records": [s3_record("a.jpg", event_name="ObjectRemoved:Delete")]}
    assert handle(runtime, event, Context()) == {"outcomes": []}
    assert world.dlq.sent == []


# -- INPUT_BUCKETS ------------------------------------------------------------------------------

OTHER = "someone-elses-bucket"


def forged(kind: str) -> dict[str, Any]:
    if kind == "s3":
        return {"Records": [s3_record("a.jpg", bucket=OTHER)]}
    if kind == "eventbridge":
        return eventbridge("a.jpg", bucket=OTHER)
    return dlq_record(s3_record("a.jpg", bucket=OTHER))


@pytest.mark.parametrize("kind", ["s3", "eventbridge", "dlq_record"])
def test_a_message_naming_another_bucket_is_refused_before_any_read(world: World, kind: str):
    world.store.put(OTHER, "a.jpg", JPEG_BYTES)
    world.store.put(OTHER, "a.jpg.json", SIDECAR)
    current = guarded(world, f"{BUCKET}, backdrop-in-2")
    answer = handle(current, batch(message("m1", forged(kind))), Context())
    assert answer == {"batchItemFailures": []}
    record = one_invalid_event(world)
    assert OTHER in record["error"]["message"]
    assert "INPUT_BUCKETS" in record["error"]["message"]
    assert (record["source"]["bucket"], record["source"]["key"]) == (OTHER, "a.jpg")
    assert world.store.reads == []
    assert world.store.outputs == {}


@pytest.mark.parametrize("kind", ["s3", "eventbridge", "dlq_record"])
def test_a_direct_event_naming_another_bucket_is_refused_before_any_read(world: World, kind: str):
    world.store.put(OTHER, "a.jpg", JPEG_BYTES)
    world.store.put(OTHER, "a.jpg.json", SIDECAR)
    answer = handle(guarded(world, BUCKET), forged(kind), Context())
    assert [outcome["error_class"] for outcome in answer["outcomes"]] == ["invalid_event"]
    one_invalid_event(world)
    assert world.store.reads == []


def test_a_refused_record_is_replayable_once_its_bucket_is_allowed(world: World):
    world.store.put(OTHER, "a.jpg", JPEG_BYTES)
    world.store.put(OTHER, "a.jpg.json", SIDECAR)
    handle(guarded(world, BUCKET), forged("s3"), Context())
    (record,) = world.dlq.records
    answer = handle(guarded(world, f"{BUCKET},{OTHER}"), batch(message("m2", record)), Context())
    assert answer == {"batchItemFailures": []}
    assert world.api.calls == 1


def test_a_message_naming_an_allowed_bucket_is_processed(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    answer = handle(guarded(world, f"x,{BUCKET}"), batch(message("m1", s3_notification("a.jpg"))), Context())
    assert answer == {"batchItemFailures": []}
    assert world.dlq.sent == []
    assert world.api.calls == 1


def test_without_input_buckets_any_bucket_is_read(world: World):
    world.store.put(OTHER, "a.jpg", JPEG_BYTES)
    world.store.put(OTHER, "a.jpg.json", SIDECAR)
    current = Runtime(settings=world.settings, pipeline=world.pipeline, claims=world.claims, work_queue=None)
    handle(current, forged("s3"), Context())
    assert world.api.calls == 1


def test_s3_test_events_are_acknowledged_whatever_their_bucket(world: World):
    body = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": OTHER}
    assert handle(guarded(world, BUCKET), batch(message("m1", body)), Context()) == {"batchItemFailures": []}
    assert world.dlq.sent == []


# -- an image whose sidecar cannot exist ---------------------------------------------------------

# 1,024 bytes: the longest key S3 takes. Neither "<key>.json" nor "<stem>.json" fits.
NO_SIDECAR_POSSIBLE = "a" * 1020 + ".jpg"
# 1,022 bytes: "<key>.json" does not fit, "<stem>.json" does.
STEM_SIDECAR_ONLY = "b" * 1018 + ".png"


@pytest.fixture(autouse=True)
def s3_key_limit(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 answers a key over 1,024 bytes with KeyTooLongError (400), not with "no such key"."""
    read_small = world.store.read_small

    def checked(bucket: str, key: str, *, limit: int) -> Any:
        if len(key.encode("utf-8")) > 1024:
            raise InternalError(f"S3 refused GetObject {key!r}: KeyTooLongError")
        return read_small(bucket, key, limit=limit)

    monkeypatch.setattr(world.store, "read_small", checked)


def test_an_image_whose_key_leaves_no_room_for_a_sidecar_fails_at_once(world: World):
    world.upload(NO_SIDECAR_POSSIBLE, JPEG_BYTES)
    (outcome,) = world.event(NO_SIDECAR_POSSIBLE)
    assert outcome.error_class == "invalid_image"
    ((record, error_class),) = world.dlq.sent
    assert error_class == "invalid_image"
    assert "too long" in record["error"]["message"]
    assert "sidecar" in record["error"]["message"]
    assert world.api.calls == 0


def test_an_image_whose_key_leaves_no_room_for_a_sidecar_is_dead_lettered_once(world: World):
    world.upload(NO_SIDECAR_POSSIBLE, JPEG_BYTES)
    world.event(NO_SIDECAR_POSSIBLE)
    world.event(NO_SIDECAR_POSSIBLE)
    assert len(world.dlq.sent) == 1


def test_with_a_default_prompt_such_an_image_is_processed_as_any_other(world: World):
    world.configure(default_prompt="studio")
    world.upload(NO_SIDECAR_POSSIBLE, JPEG_BYTES)
    (outcome,) = world.event(NO_SIDECAR_POSSIBLE)
    # Paired with the prompt, it meets the usual checks: here its output key (room for ".webp")
    # is itself too long, refused before paying.
    assert outcome.error_class == "output_write"
    assert "output key" in world.dlq.records[0]["error"]["message"]
    assert world.api.calls == 0


def test_an_image_with_room_for_its_stem_sidecar_only_finds_it(world: World):
    world.upload(STEM_SIDECAR_ONLY, JPEG_BYTES)
    world.upload("b" * 1018 + ".json", SIDECAR)
    (outcome,) = world.event(STEM_SIDECAR_ONLY)
    assert outcome.status == "processed"
    assert world.api.calls == 1


def test_an_image_with_room_for_its_stem_sidecar_waits_for_it(world: World):
    world.upload(STEM_SIDECAR_ONLY, JPEG_BYTES)
    (outcome,) = world.event(STEM_SIDECAR_ONLY)
    assert outcome.status == "awaiting_sidecar"
    assert world.dlq.sent == []


def test_the_dlq_body_of_a_refused_message_is_kept_as_it_came(runtime: Runtime, world: World):
    handle(runtime, batch(message("m1", json.dumps({"hello": "world"}))), Context())
    record = one_invalid_event(world)
    assert record["event"] == {"unrecognised": '{"hello": "world"}'}
