"""Existing-bucket mode on the local stack: a shop's own bucket, its EventBridge delivery turned on
with `backdrop enable-eventbridge`'s helper, the template's rule into the work queue, the real handler."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from backdrop.bucket_events import enable_eventbridge
from backdrop.local.sandbox import Sandbox, sandbox
from backdrop.local.stack import LOCAL_NAMES, MissingBucket
from tests.integration.conftest import REGION, photo

SHOP = "shop-assets"
SIDECAR = json.dumps({"prompt": "on a marble plinth"}).encode()


def shop_bucket() -> Any:
    """The shop's bucket as it was before Backdrop: its own notifications, then EventBridge turned on."""
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    s3.create_bucket(Bucket=SHOP)
    feed = sqs.create_queue(QueueName="shop-feed")["QueueUrl"]
    feed_arn = sqs.get_queue_attributes(QueueUrl=feed, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=SHOP,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": feed_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    enable_eventbridge(s3, SHOP)
    return s3


def outputs(box: Sandbox, prefix: str = "") -> list[str]:
    s3 = box.stack.client("s3")
    listed = s3.list_objects_v2(Bucket=box.stack.output_bucket, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def dlq_depth(box: Sandbox) -> int:
    attributes = box.stack.client("sqs").get_queue_attributes(
        QueueUrl=box.stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def settled(box: Sandbox) -> None:
    """Until the mapping has had every message the queue was sent (moto delivers events at once)."""
    time.sleep(1.5)  # one long poll of the mapping
    assert box.wait_until(lambda: not box.mapping.busy, timeout=20)


# -- inputs under a prefix, results in the stack's own bucket -------------------------------------

PREFIXED = {"ExistingInputBucket": SHOP, "InputPrefix": "backdrop/in/", "PairSettleSeconds": "0"}


@pytest.fixture
def prefixed(aws: str) -> Iterator[Sandbox]:
    shop_bucket()
    with sandbox(parameters=PREFIXED, moto_endpoint=aws) as running:
        yield running


def test_an_image_in_any_letter_case_under_the_prefix_is_processed(prefixed: Sandbox):
    s3 = prefixed.stack.client("s3")
    s3.put_object(Bucket=SHOP, Key="backdrop/in/shoe.jPg", Body=photo("JPEG"))
    s3.put_object(Bucket=SHOP, Key="backdrop/in/shoe.jPg.json", Body=SIDECAR)
    assert prefixed.wait_until(lambda: outputs(prefixed) == ["backdrop/in/shoe.png"], timeout=30)
    assert len(prefixed.emulator.requests) == 1


def test_a_pair_outside_the_prefix_never_reaches_the_function(prefixed: Sandbox):
    s3 = prefixed.stack.client("s3")
    for key, body in [("other/hat.jpg", photo("JPEG")), ("other/hat.jpg.json", SIDECAR)]:
        s3.put_object(Bucket=SHOP, Key=key, Body=body)  # the function would process these: moto has no IAM
    s3.put_object(Bucket=SHOP, Key="backdrop/in/shoe.png", Body=photo())
    s3.put_object(Bucket=SHOP, Key="backdrop/in/shoe.png.json", Body=SIDECAR)
    assert prefixed.wait_until(lambda: outputs(prefixed) == ["backdrop/in/shoe.png"], timeout=30)
    settled(prefixed)
    assert prefixed.mapping.stats.messages == 2  # the two halves under the prefix, nothing else
    assert outputs(prefixed) == ["backdrop/in/shoe.png"]
    assert (len(prefixed.emulator.requests), dlq_depth(prefixed)) == (1, 0)


def test_the_stack_creates_no_input_bucket_and_reads_the_existing_one(prefixed: Sandbox):
    buckets = {bucket["Name"] for bucket in prefixed.stack.client("s3").list_buckets()["Buckets"]}
    assert buckets == {SHOP, LOCAL_NAMES["OutputBucket"]}
    assert (prefixed.stack.input_bucket, prefixed.stack.output_bucket) == (SHOP, LOCAL_NAMES["OutputBucket"])
    assert prefixed.stack.function_environment("http://api")["INPUT_BUCKETS"] == SHOP


def test_a_stack_on_a_bucket_that_is_not_there_does_not_start(aws: str):
    with pytest.raises(MissingBucket, match="shop-assets"), sandbox(parameters=PREFIXED, moto_endpoint=aws):
        pass


# -- results in the shop's own bucket, under OutputPrefix ------------------------------------------

SAME_BUCKET = {
    "ExistingInputBucket": SHOP,
    "OutputToInputBucket": "true",
    "OutputPrefix": "backdrop/out/",
    # A result taken for an input would be paid for with this prompt, and its result again, …
    "DefaultPrompt": "a white studio",
    "PairSettleSeconds": "0",
}


@pytest.fixture
def same_bucket(aws: str) -> Iterator[Sandbox]:
    shop_bucket()
    with sandbox(parameters=SAME_BUCKET, moto_endpoint=aws) as running:
        yield running


def test_a_result_written_under_the_output_prefix_triggers_nothing(same_bucket: Sandbox):
    s3 = same_bucket.stack.client("s3")
    s3.put_object(Bucket=SHOP, Key="shoes/shoe.jpg.json", Body=SIDECAR)
    s3.put_object(Bucket=SHOP, Key="shoes/shoe.jpg", Body=photo("JPEG"))
    assert same_bucket.wait_until(
        lambda: outputs(same_bucket, "backdrop/out/") == ["backdrop/out/shoes/shoe.png"], timeout=30
    )
    settled(same_bucket)
    assert same_bucket.mapping.stats.messages == 2  # the two halves; the result's event was never sent
    assert len(same_bucket.emulator.requests) == 1
    assert same_bucket.stack.output_bucket == SHOP
    buckets = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    assert buckets == {SHOP}  # neither an input nor an output bucket of the stack's own


def test_an_event_for_a_result_forced_onto_the_queue_is_acknowledged_and_ignored(same_bucket: Sandbox):
    s3 = same_bucket.stack.client("s3")
    s3.put_object(Bucket=SHOP, Key="backdrop/out/shoes/boot.png", Body=photo())  # as if a result
    forced = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2026-12-01T12:00:00Z",
        "detail": {"bucket": {"name": SHOP}, "object": {"key": "backdrop/out/shoes/boot.png"}},
    }
    sqs = same_bucket.stack.client("sqs")
    sqs.send_message(QueueUrl=same_bucket.stack.work_queue_url, MessageBody=json.dumps(forced))
    assert same_bucket.wait_until(lambda: same_bucket.mapping.stats.deleted >= 1, timeout=30)
    settled(same_bucket)
    assert same_bucket.emulator.requests == []  # DefaultPrompt would have paid for it
    assert dlq_depth(same_bucket) == 0
    assert outputs(same_bucket, "backdrop/out/") == ["backdrop/out/shoes/boot.png"]
