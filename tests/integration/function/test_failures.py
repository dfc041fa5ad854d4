"""Failures through the real handler: classes, retries, the DLQ record, partial batches, replay."""

from __future__ import annotations

import json
import re

import pytest

from backdrop.emulator import Reply
from tests.integration.conftest import API_KEY, INPUT_BUCKET, OUTPUT_BUCKET, Stack, photo

SIDECAR = {"prompt": "a quiet forest", "seed": 222}
ISO_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def s3_event(key: str, etag: str = "etag") -> dict:
    """A direct S3 invocation, as `sam local invoke -e events/s3-put-image.json` sends it."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-27T10:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": INPUT_BUCKET}, "object": {"key": quote_plus(key), "eTag": etag}},
            }
        ]
    }


def pair(stack: Stack, key: str = "p.png", sidecar: dict | str = SIDECAR) -> None:
    stack.upload(key, photo())
    stack.upload(key + ".json", sidecar)


# -- the DLQ record -----------------------------------------------------------------------------


def test_invalid_sidecar_dlq_record_has_the_contract_shape(stack: Stack):
    image_etag = stack.upload("shop/x.jpg", photo("JPEG"))
    stack.upload("shop/x.jpg.json", {"prompt": "x", "seed": 5})
    messages = stack.received()
    response = stack.deliver(messages[:1])  # the image's event

    assert response == {"batchItemFailures": []}  # permanent: dead-lettered, not retried
    assert stack.api_calls == 0
    ((record, attribute),) = stack.dlq()
    assert attribute == "invalid_sidecar"
    assert set(record) == {
        "type",
        "version",
        "error",
        "source",
        "attempts",
        "failed_at",
        "request_id",
        "event",
        "cost",
    }
    assert record["cost"] == {"paid_calls": 0, "estimated_usd": 0.0}  # refused before any call
    assert record["type"] == "backdrop.failure"
    assert record["version"] == 1
    assert record["error"] == {
        "class": "invalid_sidecar",
        "message": "seed: must be between 100 and 999999",
        "http_status": None,
        "retryable": False,
    }
    assert record["source"] == {
        "bucket": INPUT_BUCKET,
        "key": "shop/x.jpg",
        "etag": image_etag,
        "sidecar_key": "shop/x.jpg.json",
    }
    assert record["attempts"] == 1
    assert ISO_SECOND.fullmatch(record["failed_at"])
    assert record["request_id"]
    assert record["event"] == json.loads(messages[0]["Body"])  # the input rule's EventBridge event, whole


def test_non_image_bytes_named_jpg_fail_as_invalid_image_without_a_call(stack: Stack):
    stack.upload("fake.jpg", b"%PDF-1.7 this is a document")
    stack.upload("fake.jpg.json", SIDECAR)
    stack.drain()
    assert [cls for _, cls in stack.dlq()] == ["invalid_image"]
    assert stack.api_calls == 0


def test_image_over_max_image_bytes_fails_without_a_call(stack: Stack):
    stack.configure(MAX_IMAGE_BYTES="1000")
    stack.upload("big.png", photo(size=(400, 400)))
    stack.upload("big.png.json", SIDECAR)
    stack.drain()
    ((record, _),) = stack.dlq()
    assert record["error"]["class"] == "invalid_image"
    assert "MAX_IMAGE_BYTES" in record["error"]["message"]
    assert stack.api_calls == 0


def test_a_dlq_record_fed_back_is_processed_again(stack: Stack):
    pair(stack, "r.png", {"prompt": "x", "seed": 1})
    stack.drain()
    ((record, _),) = stack.dlq()
    stack.upload("r.png.json", SIDECAR)  # the user fixes the sidecar, then redrives
    stack.received()  # (the fix's own event is not needed: the redrive alone must do it)
    stack.sqs.purge_queue(QueueUrl=stack.work_queue_url)
    stack.sqs.send_message(QueueUrl=stack.work_queue_url, MessageBody=json.dumps(record))
    assert stack.deliver() == {"batchItemFailures": []}
    assert stack.output_keys() == ["r.png"]


def test_the_same_redrive_delivered_twice_calls_once(stack: Stack):
    stack.emulator.script(Reply(406, {"error": "Insufficient credits"}))
    pair(stack, "s.png")
    stack.drain()
    ((record, attribute),) = stack.dlq()
    assert attribute == "insufficient_credits"
    for _ in range(2):
        stack.sqs.send_message(QueueUrl=stack.work_queue_url, MessageBody=json.dumps(record))
    stack.drain()
    assert stack.api_calls == 2  # the failed call, then one for the redrive
    assert stack.output_keys() == ["s.png"]


# -- API answers → classes ----------------------------------------------------------------------

PERMANENT = [
    (400, "bad_request"),
    (401, "auth"),
    (403, "auth"),
    (404, "not_found"),
    (406, "insufficient_credits"),
    (422, "bad_request"),
]
TRANSIENT = [
    (429, "rate_limited"),
    (500, "server_error"),
    (501, "server_error"),
    (502, "server_error"),
    (504, "server_error"),
    (599, "server_error"),
]


@pytest.mark.parametrize(("status", "error_class"), PERMANENT)
def test_permanent_api_answers_are_dead_lettered_at_once(stack: Stack, status: int, error_class: str):
    stack.emulator.script(*[Reply(status, {"error": f"nope {status}"})] * 2)
    pair(stack)
    assert stack.deliver() == {"batchItemFailures": []}
    ((record, attribute),) = stack.dlq()
    assert attribute == error_class
    assert record["error"]["http_status"] == status
    assert record["error"]["message"] == f"API {status}: nope {status}"
    assert record["error"]["retryable"] is False


@pytest.mark.parametrize(("status", "error_class"), TRANSIENT)
def test_transient_api_answers_are_retried_in_the_call_then_left_on_the_queue(
    stack: Stack, status: int, error_class: str
):
    stack.configure(API_MAX_RETRIES="2")
    stack.emulator.script(*[Reply(status, {"error": "busy"})] * 3)
    pair(stack)
    image_message = stack.received()[0]
    response = stack.deliver([image_message])
    assert stack.api_calls == 3  # one call, two retries inside it
    assert response == {"batchItemFailures": [{"itemIdentifier": image_message["MessageId"]}]}
    assert stack.dlq() == []


@pytest.mark.parametrize(("status", "error_class"), TRANSIENT)
def test_transient_failure_on_the_last_receive_is_dead_lettered_and_acknowledged(
    stack: Stack, status: int, error_class: str
):
    stack.configure(API_MAX_RETRIES="0", MAX_ATTEMPTS="3")
    stack.emulator.script(Reply(status, {"error": "busy"}))
    pair(stack)
    image_message = stack.received()[0]
    image_message["Attributes"]["ApproximateReceiveCount"] = "3"
    assert stack.deliver([image_message]) == {"batchItemFailures": []}
    ((record, attribute),) = stack.dlq()
    assert attribute == error_class
    assert record["attempts"] == 3
    assert record["error"]["retryable"] is True


def test_transient_failure_of_a_direct_s3_event_is_dead_lettered_at_once(stack: Stack):
    stack.configure(API_MAX_RETRIES="1")
    stack.emulator.script(Reply(503, {"error": "down"}), Reply(503, {"error": "down"}))
    pair(stack, "direct.png")
    result = stack.invoke(s3_event("direct.png"))
    assert result["outcomes"][0]["status"] == "failed"
    assert [cls for _, cls in stack.dlq()] == ["server_error"]
    assert stack.api_calls == 2


def test_api_timeout_is_a_timeout(stack: Stack):
    stack.configure(API_TIMEOUT_SECONDS="0.5", API_MAX_RETRIES="1")
    stack.emulator.script(Reply(stall_seconds=1.5, drop=True), Reply(stall_seconds=1.5, drop=True))
    pair(stack, "slow.png")
    stack.invoke(s3_event("slow.png"))
    ((record, attribute),) = stack.dlq()
    assert attribute == "timeout"
    assert record["error"]["retryable"] is True


def test_retry_after_is_honoured_then_the_call_succeeds(stack: Stack):
    stack.emulator.script(Reply(429, {"error": "slow down"}, {"Retry-After": "1"}))
    pair(stack, "ra.png")
    stack.drain()
    assert stack.output_keys() == ["ra.png"]
    assert stack.api_calls == 2


@pytest.mark.parametrize(
    ("fmt", "ext", "content_type"),
    [("png", "png", "image/png"), ("jpeg", "jpg", "image/jpeg"), ("webp", "webp", "image/webp")],
)
def test_each_returned_image_type_sets_extension_and_content_type(
    stack: Stack, fmt: str, ext: str, content_type: str
):
    stack.emulator.settings.output_format = fmt
    pair(stack, "t.jpg")
    stack.drain()
    assert stack.output_keys() == [f"t.{ext}"]
    assert stack.output(f"t.{ext}")["ContentType"] == content_type


def test_a_200_that_is_not_an_image_is_never_paid_for_twice(stack: Stack):
    stack.emulator.script(*[Reply(200, {"status": "queued"})] * 5)
    pair(stack, "u.png")
    image_message = stack.received()[0]
    assert stack.deliver([image_message]) == {"batchItemFailures": []}
    ((record, attribute),) = stack.dlq()
    assert attribute == "internal"
    assert record["error"]["http_status"] == 200
    assert stack.api_calls == 1


def test_an_output_bucket_that_refuses_the_write_is_dead_lettered_and_a_redrive_pays_nothing(
    stack: Stack,
):
    pair(stack, "w.png")
    image_message, sidecar_message = stack.received()
    stack.s3.delete_bucket(Bucket=OUTPUT_BUCKET)  # NoSuchBucket: no later receive would fix it
    assert stack.deliver([image_message]) == {"batchItemFailures": []}
    ((record, attribute),) = stack.dlq()
    assert (attribute, record["error"]["retryable"]) == ("output_write", False)
    assert "paid for but could not be stored: could not write" in record["error"]["message"]
    assert "NoSuchBucket" in record["error"]["message"]
    assert stack.deliver([sidecar_message]) == {"batchItemFailures": []}  # a duplicate of the failure
    stack.s3.create_bucket(Bucket=OUTPUT_BUCKET)  # the user fixes the bucket, then redrives
    stack.sqs.send_message(QueueUrl=stack.work_queue_url, MessageBody=json.dumps(record))
    stack.drain()
    assert stack.output_keys() == ["w.png"]
    assert stack.output("w.png")["Metadata"]["seed"] == "222"
    assert stack.api_calls == 1  # the kept answer was stored: the redrive paid nothing


# -- keys ---------------------------------------------------------------------------------------


def test_a_rotated_key_is_picked_up_after_one_401(stack: Stack):
    pair(stack, "k1.png")
    stack.drain()  # the old key is now cached in this container
    stack.secrets.put_secret_value(
        SecretId=stack.secret_id, SecretString=json.dumps({"api_key": "sk-rotated"})
    )
    stack.emulator.settings.api_keys = {"sk-rotated"}
    pair(stack, "k2.png")
    stack.drain()
    assert [r.headers["x-api-key"] for r in stack.emulator.requests] == [API_KEY, API_KEY, "sk-rotated"]
    assert [r.status for r in stack.emulator.requests] == [200, 401, 200]
    assert stack.output_keys() == ["k1.png", "k2.png"]


def test_a_wrong_key_is_re_read_once_then_fails_as_auth(stack: Stack):
    stack.emulator.settings.api_keys = {"some-other-key"}
    pair(stack, "w.png")
    stack.drain()
    assert [r.status for r in stack.emulator.requests] == [401]  # same key re-read: no second call
    assert [cls for _, cls in stack.dlq()] == ["auth"]


def test_an_empty_secret_fails_as_auth_without_a_call(stack: Stack):
    stack.secrets.put_secret_value(SecretId=stack.secret_id, SecretString=json.dumps({"api_key": ""}))
    pair(stack, "e.png")
    stack.drain()
    ((record, attribute),) = stack.dlq()
    assert attribute == "auth"
    assert "put-secret-value" in record["error"]["message"]
    assert stack.api_calls == 0


def test_the_api_key_never_leaks(stack: Stack, capsys: pytest.CaptureFixture):
    # The API echoes the key back in its error text: it must be masked everywhere we write.
    stack.emulator.script(Reply(400, {"error": f"bad request for key {API_KEY}"}))
    stack.configure(API_MAX_RETRIES="0")
    pair(stack, "leak-1.png")
    pair(stack, "leak-2.png")
    stack.drain()
    records = stack.dlq()
    outputs = [stack.output(key) for key in stack.output_keys()]
    captured = capsys.readouterr()
    assert [cls for _, cls in records] == ["bad_request"]
    assert "***" in records[0][0]["error"]["message"]
    assert len(outputs) == 1
    written = json.dumps([r for r, _ in records]) + json.dumps([o["Metadata"] for o in outputs])
    for text in (written, captured.out, captured.err):
        assert API_KEY not in text


# -- partial batches ----------------------------------------------------------------------------


def test_one_bad_record_does_not_fail_its_neighbours(stack: Stack):
    stack.configure(API_MAX_RETRIES="0")
    pair(stack, "good.png")
    stack.upload("bad.png", photo())
    stack.upload("bad.png.json", "{broken")
    pair(stack, "flaky.png")
    by_key = {json.loads(m["Body"])["detail"]["object"]["key"]: m for m in stack.received()}
    image_messages = {key: message for key, message in by_key.items() if key.endswith(".png")}
    # In batch order the API sees good, then flaky (bad never reaches it): 200, then 502.
    stack.emulator.script(Reply(200, photo()), Reply(502, {"error": "busy"}))
    batch = [image_messages["good.png"], image_messages["bad.png"], image_messages["flaky.png"]]
    response = stack.deliver(batch)
    assert response == {"batchItemFailures": [{"itemIdentifier": image_messages["flaky.png"]["MessageId"]}]}
    assert [cls for _, cls in stack.dlq()] == ["invalid_sidecar"]
    assert stack.output_keys() == ["good.png"]


def test_an_unrecognised_message_is_dead_lettered_as_it_came(stack: Stack):
    stack.sqs.send_message(QueueUrl=stack.work_queue_url, MessageBody="hello, not an event")
    assert stack.deliver() == {"batchItemFailures": []}
    ((record, attribute),) = stack.dlq()
    assert attribute == "invalid_event"
    assert record["event"] == {"unrecognised": "hello, not an event"}
