"""The local stack end to end: upload → EventBridge rule → work queue → poller → handler → output or DLQ."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from backdrop.emulator import EmulatorSettings
from backdrop.local.aws_faults import FaultRule
from backdrop.local.esm import sqs_lambda_event
from backdrop.local.poller import EventSourceMapping
from backdrop.local.sandbox import Sandbox, sandbox
from backdrop.local.stack import LOCAL_API_KEY
from tests.integration.conftest import photo


@pytest.fixture
def box(aws: str) -> Iterator[Sandbox]:
    with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws) as running:
        yield running


def outputs(box: Sandbox) -> list[str]:
    s3 = box.stack.client("s3")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=box.stack.output_bucket).get("Contents", [])]


def dlq_depth(box: Sandbox) -> int:
    attributes = box.stack.client("sqs").get_queue_attributes(
        QueueUrl=box.stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_aws_faults_reach_the_function_and_its_retries_absorb_them(aws: str):
    throttled = FaultRule("dynamodb", probability=1.0, times=2, name="first two table calls")
    with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws, aws_faults=[throttled]) as box:
        s3 = box.stack.client("s3")
        s3.put_object(Bucket=box.stack.input_bucket, Key="t.jpg.json", Body=json.dumps({"prompt": "x"}))
        s3.put_object(Bucket=box.stack.input_bucket, Key="t.jpg", Body=photo("JPEG"))
        assert box.wait_until(lambda: outputs(box) == ["t.png"], timeout=60)
        assert box.aws_faults is not None
        stats = box.aws_faults.stats()
    assert stats["faults_by_rule"] == {"first two table calls": 2}
    assert stats["requests_by_operation"].get("s3.GetObject", 0) >= 1  # the function's reads, proxied
    assert len(box.emulator.requests) == 1


def test_an_upload_pair_comes_out_processed(box: Sandbox):
    s3 = box.stack.client("s3")
    s3.put_object(
        Bucket=box.stack.input_bucket, Key="shop/a b.jpg.json", Body=json.dumps({"prompt": "beach"})
    )
    s3.put_object(Bucket=box.stack.input_bucket, Key="shop/a b.jpg", Body=photo("JPEG"))
    assert box.wait_until(lambda: outputs(box) == ["shop/a b.png"], timeout=30)
    assert box.wait_until(lambda: not box.mapping.busy, timeout=10)
    assert len(box.emulator.requests) == 1
    assert box.mapping.stats.invocation_errors == 0


def test_an_image_in_any_letter_case_is_processed(box: Sandbox):
    """The stack's own bucket reaches the queue through EventBridge, whose rule ignores case."""
    s3 = box.stack.client("s3")
    s3.put_object(Bucket=box.stack.input_bucket, Key="odd/Shoe.jPg.json", Body=json.dumps({"prompt": "p"}))
    s3.put_object(Bucket=box.stack.input_bucket, Key="odd/Shoe.jPg", Body=photo("JPEG"))
    s3.put_object(Bucket=box.stack.input_bucket, Key="odd/notes.txt", Body=b"not an input")
    assert box.wait_until(lambda: outputs(box) == ["odd/Shoe.png"], timeout=30)
    assert box.wait_until(lambda: not box.mapping.busy, timeout=10)
    assert box.mapping.stats.messages == 2  # the rule let the image and its sidecar through, not the .txt


def test_a_key_with_a_plus_and_a_space_is_read_as_uploaded(box: Sandbox):
    """S3 URL-encodes keys in its events (the local stack's moto too), and the function decodes them."""
    s3 = box.stack.client("s3")
    s3.put_object(Bucket=box.stack.input_bucket, Key="c++ shoe.png.json", Body=json.dumps({"prompt": "p"}))
    s3.put_object(Bucket=box.stack.input_bucket, Key="c++ shoe.png", Body=photo())
    assert box.wait_until(lambda: outputs(box) == ["c++ shoe.png"], timeout=30)
    assert dlq_depth(box) == 0


def test_a_bad_upload_ends_in_the_dlq(box: Sandbox):
    s3 = box.stack.client("s3")
    s3.put_object(Bucket=box.stack.input_bucket, Key="x.png", Body=photo())
    s3.put_object(Bucket=box.stack.input_bucket, Key="x.png.json", Body=b'{"prompt": "p", "seed": 1}')
    assert box.wait_until(lambda: dlq_depth(box) == 1, timeout=30)
    assert box.emulator.requests == []


def test_the_stack_serves_its_names_to_other_processes(box: Sandbox):
    """What events/env.json and `backdrop dlq --local` rely on."""
    assert box.stack.input_bucket == "backdrop-in-local"
    assert box.stack.dlq_url.endswith("/backdrop-dlq")
    response = requests.get(f"{box.stack.endpoint}/backdrop-in-local", timeout=5)
    assert response.status_code == 200


# -- the event source mapping's semantics, with a scripted handler ------------------------------


class ScriptedHandler:
    """Fails the messages whose body says so; records every batch it was given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict, context) -> dict:
        bodies = [record["body"] for record in event["Records"]]
        with self.lock:
            self.batches.append(bodies)
        if any(body == "crash" for body in bodies):
            raise RuntimeError("the function crashed")
        return {
            "batchItemFailures": [
                {"itemIdentifier": record["messageId"]}
                for record in event["Records"]
                if record["body"] == "fail"
            ]
        }

    def received(self, body: str) -> int:
        with self.lock:
            return sum(batch.count(body) for batch in self.batches)


def run_mapping(queues, handler, *, batch_size=5, concurrency=1, timeout=5.0) -> EventSourceMapping:
    sqs, url, arn, _ = queues
    return EventSourceMapping(
        sqs,
        url,
        arn,
        handler,
        batch_size=batch_size,
        maximum_concurrency=concurrency,
        function_timeout=timeout,
    ).start()


def depth(sqs, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def wait(predicate, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_successes_are_deleted_and_reported_failures_come_back_until_the_dlq(queues):
    sqs, url, _, dlq_url = queues
    for body in ("ok-1", "fail", "ok-2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    handler = ScriptedHandler()
    mapping = run_mapping(queues, handler)
    try:
        assert wait(lambda: depth(sqs, dlq_url) == 1 and depth(sqs, url) == 0)
    finally:
        mapping.stop()
    assert handler.received("ok-1") == handler.received("ok-2") == 1
    assert handler.received("fail") == 3  # maxReceiveCount receives, then the queue moved it
    (moved,) = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert moved["Body"] == "fail"
    assert mapping.stats.reported_failures == 3


def test_a_crashed_invocation_deletes_nothing(queues):
    sqs, url, _, dlq_url = queues
    sqs.send_message(QueueUrl=url, MessageBody="crash")
    handler = ScriptedHandler()
    mapping = run_mapping(queues, handler)
    try:
        assert wait(lambda: depth(sqs, dlq_url) == 1)
    finally:
        mapping.stop()
    assert handler.received("crash") == 3
    assert mapping.stats.invocation_errors == 3


def test_an_invocation_past_its_timeout_deletes_nothing(queues):
    sqs, url, _, _ = queues
    sqs.send_message(QueueUrl=url, MessageBody="slow")

    def slow(event, context):
        time.sleep(0.3)
        return {"batchItemFailures": []}

    mapping = run_mapping(queues, slow, timeout=0.1)
    try:
        assert wait(lambda: mapping.stats.timeouts >= 1)
    finally:
        mapping.stop()
    assert mapping.stats.deleted == 0


def test_batches_respect_the_batch_size_and_concurrency(queues):
    sqs, url, _, _ = queues
    for n in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=f"ok-{n}")
    running, peak = [0], [0]
    lock = threading.Lock()

    def handler(event, context):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        assert len(event["Records"]) <= 3
        assert context.get_remaining_time_in_millis() <= 5000
        return {"batchItemFailures": []}

    mapping = run_mapping(queues, handler, batch_size=3, concurrency=2)
    try:
        assert wait(lambda: depth(sqs, url) == 0)
    finally:
        mapping.stop()
    assert mapping.stats.deleted == 12
    assert peak[0] <= 2
    assert mapping.stats.invocation_errors == 0


def test_the_lambda_event_has_what_the_handler_reads():
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": "2"},
        "MessageAttributes": {"error_class": {"DataType": "String", "StringValue": "timeout"}},
    }
    (record,) = sqs_lambda_event([message], "arn:aws:sqs:us-east-1:123456789012:q")["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["messageAttributes"]["error_class"]["stringValue"] == "timeout"


def test_emulator_settings_reach_the_sandbox(aws: str):
    settings = EmulatorSettings(api_keys={LOCAL_API_KEY}, output_format="webp")
    with sandbox(parameters={"PairSettleSeconds": "0"}, emulator_settings=settings, moto_endpoint=aws) as box:
        s3 = box.stack.client("s3")
        s3.put_object(Bucket=box.stack.input_bucket, Key="w.png", Body=photo())
        s3.put_object(Bucket=box.stack.input_bucket, Key="w.png.json", Body=b'{"prompt": "p"}')
        assert box.wait_until(lambda: outputs(box) == ["w.webp"], timeout=30)


def test_only_an_image_that_would_take_the_default_prompt_waits_for_its_sidecar(aws: str):
    parameters = {"PairSettleSeconds": "3", "DefaultPrompt": "a white studio"}
    with sandbox(parameters=parameters, moto_endpoint=aws) as box:
        s3 = box.stack.client("s3")
        uploaded = time.time()
        s3.put_object(Bucket=box.stack.input_bucket, Key="late.png", Body=photo())
        s3.put_object(Bucket=box.stack.input_bucket, Key="alone.png", Body=photo())
        time.sleep(1)  # the images' first messages are sent back, uncounted, to settle
        s3.put_object(
            Bucket=box.stack.input_bucket, Key="late.png.json", Body=json.dumps({"prompt": "a beach"})
        )
        assert box.wait_until(lambda: sorted(outputs(box)) == ["alone.png", "late.png"], timeout=60)
        assert box.wait_until(lambda: not box.mapping.busy, timeout=10)
    prompts = {_image_key(request.body): request.body["prompt"] for request in box.emulator.requests}
    assert prompts == {"late.png": "a beach", "alone.png": "a white studio"}  # one call each
    (alone,) = [request for request in box.emulator.requests if request.body["prompt"] == "a white studio"]
    assert alone.at - uploaded >= 3  # not before it was PairSettleSeconds old


def _image_key(body: dict) -> str:
    return body["image"].split("?")[0].rsplit("/", 1)[-1]


def test_after_an_outage_the_backlog_drains_at_the_plan_s_rate_without_429s(aws: str):
    """The plan allows 8 requests in any 4 s (2 a second, RequestsPerMinute 120). The API is down
    while 16 pairs arrive; when it comes back, four containers share the turns."""
    api = EmulatorSettings(
        api_keys={LOCAL_API_KEY}, requests_per_minute=8, rate_window_seconds=4.0, latency_seconds=0.2
    )
    api.faults = {"503": 1.0}
    parameters = {"PairSettleSeconds": "0", "RequestsPerMinute": "120", "MaximumConcurrency": "4"}
    quick_retries = {"RETRY_BACKOFF_SECONDS": "2", "API_BACKOFF_SECONDS": "0.5"}
    with sandbox(
        parameters=parameters, emulator_settings=api, function_environment=quick_retries, moto_endpoint=aws
    ) as box:
        s3 = box.stack.client("s3")
        for number in range(16):
            s3.put_object(Bucket=box.stack.input_bucket, Key=f"p{number}.png", Body=photo())
            sidecar = json.dumps({"prompt": "a pale studio", "seed": 100 + number})
            s3.put_object(Bucket=box.stack.input_bucket, Key=f"p{number}.png.json", Body=sidecar)
        time.sleep(4)
        api.faults = {}
        back = time.time()
        busy_at_once: list[int] = []

        def all_stored() -> bool:
            busy_at_once.append(sum(1 for container in box.mapping.containers() if container.busy))
            return len(outputs(box)) == 16

        assert box.wait_until(all_stored, timeout=90, poll=0.1)
    after = [request for request in box.emulator.requests if request.at >= back]
    assert [request.status for request in after].count(429) <= 1  # a storm would be dozens
    billed = sorted(request.at for request in after if request.billed)
    assert (len(billed) - 1) / (billed[-1] - billed[0]) <= 2.0  # the plan's rate, not more
    assert max(busy_at_once) >= 2
