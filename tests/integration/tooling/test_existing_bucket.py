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


def upload_pair(box: Sandbox, image_key: str, image: bytes) -> None:
    """The sidecar first, then the image: the image's event starts the pair."""
    s3 = box.stack.client("s3")
    s3.put_object(Bucket=SHOP, Key=image_key + ".json", Body=SIDECAR)
    s3.put_object(Bucket=SHOP, Key=image_key, Body=image)


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
def shop_stack(aws: str, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """The local stack on the shop's bucket, deployed with the parameters the test gives."""
    shop_bucket()
    with sandbox(parameters=request.param, moto_endpoint=aws) as running:
        yield running


prefixed = pytest.mark.parametrize("shop_stack", [PREFIXED], indirect=True, ids=["inputs under a prefix"])


@prefixed
def test_an_image_in_any_letter_case_under_the_prefix_is_processed(shop_stack: Sandbox):
    upload_pair(shop_stack, "backdrop/in/shoe.jPg", photo("JPEG"))
    assert shop_stack.wait_until(lambda: outputs(shop_stack) == ["backdrop/in/shoe.png"], timeout=30)
    assert len(shop_stack.emulator.requests) == 1


@prefixed
def test_a_pair_outside_the_prefix_never_reaches_the_function(shop_stack: Sandbox):
    upload_pair(shop_stack, "other/hat.jpg", photo("JPEG"))  # the function would process it: moto has no IAM
    upload_pair(shop_stack, "backdrop/in/shoe.png", photo())
    assert shop_stack.wait_until(lambda: outputs(shop_stack) == ["backdrop/in/shoe.png"], timeout=30)
    settled(shop_stack)
    assert shop_stack.mapping.stats.messages == 2  # the two halves under the prefix, nothing else
    assert outputs(shop_stack) == ["backdrop/in/shoe.png"]
    assert (len(shop_stack.emulator.requests), dlq_depth(shop_stack)) == (1, 0)


@prefixed
def test_the_stack_creates_no_input_bucket_and_reads_the_existing_one(shop_stack: Sandbox):
    buckets = {bucket["Name"] for bucket in shop_stack.stack.client("s3").list_buckets()["Buckets"]}
    assert buckets == {SHOP, LOCAL_NAMES["OutputBucket"]}
    assert (shop_stack.stack.input_bucket, shop_stack.stack.output_bucket) == (
        SHOP,
        LOCAL_NAMES["OutputBucket"],
    )
    assert shop_stack.stack.function_environment("http://api")["INPUT_BUCKETS"] == SHOP


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


same_bucket = pytest.mark.parametrize(
    "shop_stack", [SAME_BUCKET], indirect=True, ids=["results beside the inputs"]
)


@same_bucket
def test_a_result_written_under_the_output_prefix_triggers_nothing(shop_stack: Sandbox):
    upload_pair(shop_stack, "shoes/shoe.jpg", photo("JPEG"))
    assert shop_stack.wait_until(
        lambda: outputs(shop_stack, "backdrop/out/") == ["backdrop/out/shoes/shoe.png"], timeout=30
    )
    settled(shop_stack)
    assert shop_stack.mapping.stats.messages == 2  # the two halves; the result's event was never sent
    assert len(shop_stack.emulator.requests) == 1
    assert shop_stack.stack.output_bucket == SHOP
    buckets = {bucket["Name"] for bucket in shop_stack.stack.client("s3").list_buckets()["Buckets"]}
    assert buckets == {SHOP}  # neither an input nor an output bucket of the stack's own


@same_bucket
def test_an_event_for_a_result_forced_onto_the_queue_is_acknowledged_and_ignored(shop_stack: Sandbox):
    s3 = shop_stack.stack.client("s3")
    s3.put_object(Bucket=SHOP, Key="backdrop/out/shoes/boot.png", Body=photo())  # as if a result
    forced = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2026-12-01T12:00:00Z",
        "detail": {"bucket": {"name": SHOP}, "object": {"key": "backdrop/out/shoes/boot.png"}},
    }
    sqs = shop_stack.stack.client("sqs")
    sqs.send_message(QueueUrl=shop_stack.stack.work_queue_url, MessageBody=json.dumps(forced))
    assert shop_stack.wait_until(lambda: shop_stack.mapping.stats.deleted >= 1, timeout=30)
    settled(shop_stack)
    assert shop_stack.emulator.requests == []  # DefaultPrompt would have paid for it
    assert dlq_depth(shop_stack) == 0
    assert outputs(shop_stack, "backdrop/out/") == ["backdrop/out/shoes/boot.png"]
