"""The real handler on moto refuses what is not work: one `invalid_event` DLQ record, nothing read or paid.

The stack's environment is the template's, so INPUT_BUCKETS names the input bucket only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backdrop_fn.config import Settings
from tests.integration.conftest import INPUT_BUCKET, Stack, photo

OTHER = "someone-elses-bucket"
SIDECAR = {"prompt": "a sunny beach at noon", "seed": 4321}
ENV_JSON = Path(__file__).resolve().parents[3] / "events" / "env.json"


def s3_record(bucket: str, key: str) -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}},
    }


def forged(kind: str) -> dict[str, Any]:
    """A well-formed message of each accepted kind, naming a pair in a bucket that is not ours."""
    if kind == "s3":
        return {"Records": [s3_record(OTHER, "a.png")]}
    if kind == "eventbridge":
        return {
            "version": "0",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "detail": {"bucket": {"name": OTHER}, "object": {"key": "a.png", "size": 1}},
        }
    return {
        "type": "backdrop.failure",
        "version": 1,
        "error": {"class": "server_error", "message": "API 502", "http_status": 502, "retryable": True},
        "source": {"bucket": OTHER, "key": "a.png", "etag": "e", "sidecar_key": "a.png.json"},
        "attempts": 5,
        "failed_at": "2026-11-27T10:00:00Z",
        "request_id": "r-1",
        "event": s3_record(OTHER, "a.png"),
    }


@pytest.fixture
def other_bucket(stack: Stack) -> Stack:
    """A readable bucket with a complete pair in it: processing it would pay and store."""
    stack.s3.create_bucket(Bucket=OTHER)
    stack.s3.put_object(Bucket=OTHER, Key="a.png", Body=photo())
    stack.s3.put_object(Bucket=OTHER, Key="a.png.json", Body=json.dumps(SIDECAR).encode())
    return stack


def assert_refused(stack: Stack) -> dict[str, Any]:
    ((record, attribute),) = stack.dlq()
    assert attribute == "invalid_event"
    assert record["error"]["class"] == "invalid_event"
    assert record["error"]["retryable"] is False
    assert stack.api_calls == 0
    assert stack.output_keys() == []
    return record


@pytest.mark.parametrize("kind", ["s3", "eventbridge", "dlq_record"])
def test_a_message_naming_another_bucket_is_dead_lettered_with_no_call(other_bucket: Stack, kind: str):
    other_bucket.sqs.send_message(QueueUrl=other_bucket.work_queue_url, MessageBody=json.dumps(forged(kind)))
    assert other_bucket.deliver() == {"batchItemFailures": []}
    record = assert_refused(other_bucket)
    assert OTHER in record["error"]["message"]
    assert record["source"]["bucket"] == OTHER


@pytest.mark.parametrize("kind", ["s3", "eventbridge", "dlq_record"])
def test_a_direct_event_naming_another_bucket_is_dead_lettered_with_no_call(other_bucket: Stack, kind: str):
    answer = other_bucket.invoke(forged(kind))
    assert [outcome["error_class"] for outcome in answer["outcomes"]] == ["invalid_event"]
    assert_refused(other_bucket)


def test_the_input_bucket_is_still_processed(stack: Stack):
    stack.upload("a.png", photo())
    stack.upload("a.png.json", SIDECAR)
    assert stack.deliver() == {"batchItemFailures": []}
    assert stack.output_keys() == ["a.png"]
    assert stack.dlq() == []


@pytest.mark.parametrize(
    "body",
    [
        "hello, not an event",
        json.dumps({"Records": ["oops"]}),
        json.dumps({"Records": [{**s3_record(INPUT_BUCKET, "a.png"), "eventName": None}]}),
        json.dumps({"Records": [{**s3_record(INPUT_BUCKET, "a.png"), "s3": {"bucket": {"name": 7}}}]}),
    ],
)
def test_a_message_that_is_not_an_event_is_dead_lettered_once_as_invalid_event(stack: Stack, body: str):
    stack.upload("a.png", photo())
    stack.upload("a.png.json", SIDECAR)
    stack.received()
    stack.sqs.purge_queue(QueueUrl=stack.work_queue_url)
    stack.sqs.send_message(QueueUrl=stack.work_queue_url, MessageBody=body)
    assert stack.deliver() == {"batchItemFailures": []}
    record = assert_refused(stack)
    assert record["event"] == {"unrecognised": body}


def test_an_image_key_with_no_room_for_a_sidecar_fails_at_once_as_invalid_image(stack: Stack):
    key = "a" * 1020 + ".png"  # 1,024 bytes: "<key>.json" and "<stem>.json" are both too long
    stack.upload(key, photo())
    assert stack.deliver() == {"batchItemFailures": []}
    ((record, attribute),) = stack.dlq()
    assert attribute == "invalid_image"
    assert "too long for a sidecar" in record["error"]["message"]
    assert stack.api_calls == 0


def test_an_image_key_with_room_for_its_stem_sidecar_only_is_paired_with_it(stack: Stack):
    stem = "b" * 1016
    stack.upload(stem + ".png", photo())  # 1,020 bytes: "<key>.json" would be 1,025, "<stem>.json" 1,021
    stack.upload(stem + ".json", SIDECAR)
    stack.deliver()
    assert stack.dlq() == []
    assert stack.api_calls == 1


def test_env_json_allows_the_local_input_bucket_only():
    env = json.loads(ENV_JSON.read_text())["ReplaceBackgroundFunction"]
    assert Settings.from_env(env).input_buckets == frozenset({INPUT_BUCKET})
