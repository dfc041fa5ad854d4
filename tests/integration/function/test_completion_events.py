"""Completion events on EventBridge (moto server), through the adapters and the real handler."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from backdrop.local.stack import LOCAL_NAMES, create_resources, subscribe_to_completion_events
from backdrop.local.template import load_spec
from backdrop_fn.adapters.event_bus import DynamoDbPendingEvents, EventBridgeBus
from backdrop_fn.completion import FAILED, PROCESSED
from backdrop_fn.errors import EventNotPublished
from tests.integration.conftest import REGION, Stack, photo
from tests.integration.function.test_adapters import claims_table

SIDECAR = {"prompt": "a marble counter", "seed": 777, "metadata": {"sku": "VASE-2"}}


def subscribed_queue() -> str:
    return subscribe_to_completion_events(
        boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION), "shop-listener"
    )


def received_events(url: str) -> list[dict]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def test_a_processed_pair_and_a_failure_each_reach_a_rule_on_the_bus(stack: Stack):
    url = subscribed_queue()
    stack.upload("shop/vase.png", photo())
    stack.upload("shop/vase.png.json", SIDECAR)
    stack.upload("shop/bowl.png", photo())
    stack.upload("shop/bowl.png.json", {"prompt": "a shelf", "sead": 5})
    stack.drain()
    events = {event["detail-type"]: event for event in received_events(url)}
    assert set(events) == {PROCESSED, FAILED}
    processed = events[PROCESSED]
    assert processed["source"] == "backdrop"
    assert processed["detail"]["input"]["key"] == "shop/vase.png"
    assert processed["detail"]["output"]["key"] == "shop/vase.png"
    assert processed["detail"]["output"]["version_id"]  # the template's output bucket keeps versions
    assert processed["detail"]["metadata"] == {"sku": "VASE-2"}
    assert processed["detail"]["cost"] == {
        "paid_calls": 1,
        "estimated_usd": 0.075,
        "pair_estimated_usd": 0.075,
    }
    assert events[FAILED]["detail"]["error"]["class"] == "invalid_sidecar"
    assert events[FAILED]["detail"] == stack.dlq()[0][0]


def test_a_bus_that_refuses_is_an_unpublished_event(aws: str):
    bus = EventBridgeBus(lambda: boto3.client("events", region_name=REGION), "no-such-bus")
    with pytest.raises(EventNotPublished, match="no-such-bus"):
        bus.put(PROCESSED, "{}")


def test_an_entry_the_bus_failed_is_put_again(aws: str):
    client = boto3.client("events", region_name=REGION)
    failed = {
        "FailedEntryCount": 1,
        "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}],
    }
    with Stubber(client) as stub:
        stub.add_response("put_events", failed)
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]})
        EventBridgeBus(lambda: client, "default", sleep=lambda _: None).put(PROCESSED, "{}")
        stub.assert_no_pending_responses()


def test_an_entry_the_bus_keeps_failing_says_why(aws: str):
    client = boto3.client("events", region_name=REGION)
    failed = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "oops"}]}
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_response("put_events", failed)
        with pytest.raises(EventNotPublished, match="InternalFailure: oops"):
            EventBridgeBus(lambda: client, "default", sleep=lambda _: None).put(PROCESSED, "{}")


def test_a_kept_event_is_taken_until_it_is_forgotten(aws: str):
    pending = DynamoDbPendingEvents("events", client=claims_table("events"), ttl_seconds=3600)
    assert pending.take("e-1") is None
    pending.keep("e-1", PROCESSED, '{"version":1}')
    assert pending.take("e-1") == (PROCESSED, '{"version":1}')
    pending.forget("e-1")
    assert pending.take("e-1") is None


def test_a_local_stack_with_a_webhook_has_its_dead_letter_queue(aws: str):
    create_resources(load_spec(parameters={"WebhookUrl": "https://shop.example/hook"}), aws)
    sqs = boto3.client("sqs", region_name=REGION)
    assert sqs.get_queue_url(QueueName=LOCAL_NAMES["WebhookDeadLetterQueue"])["QueueUrl"]
