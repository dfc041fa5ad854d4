"""`backdrop enable-eventbridge BUCKET` on moto: EventBridge delivery on, a shop's own notifications kept."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from backdrop.bucket_events import enable_eventbridge
from backdrop.cli import main
from tests.integration.conftest import REGION

SHOP = "shop-assets"


def queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def keys_in(sqs: Any, url: str) -> list[str]:
    """The object keys of the messages waiting in a queue: S3 notifications or EventBridge events."""
    found = []
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        body = json.loads(message["Body"])
        if "detail" in body:
            found.append(body["detail"]["object"]["key"])
        found += [record["s3"]["object"]["key"] for record in body.get("Records", [])]
    return found


@pytest.fixture
def shop(aws: str) -> dict[str, Any]:
    """A shop's bucket that already notifies its own queue (of .csv) and topic (of deletions)."""
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    s3.create_bucket(Bucket=SHOP)
    feed_url, feed_arn = queue(sqs, "shop-feed")
    topic = sns.create_topic(Name="shop-deletions")["TopicArn"]
    configuration = {
        "QueueConfigurations": [
            {
                "Id": "feed",
                "QueueArn": feed_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".csv"}]}},
            }
        ],
        "TopicConfigurations": [{"Id": "deletions", "TopicArn": topic, "Events": ["s3:ObjectRemoved:*"]}],
    }
    s3.put_bucket_notification_configuration(Bucket=SHOP, NotificationConfiguration=configuration)
    sqs.purge_queue(QueueUrl=feed_url)  # S3's s3:TestEvent
    # What the stack's rule does, in the small: every Object Created event of the bucket, to a queue.
    events = boto3.client("events", region_name=REGION)
    rule_url, rule_arn = queue(sqs, "rule-target")
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [SHOP]}},
    }
    events.put_rule(Name="shop-objects", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="shop-objects", Targets=[{"Id": "q", "Arn": rule_arn}])
    return {"s3": s3, "sqs": sqs, "feed": feed_url, "rule": rule_url}


def configured(s3: Any) -> dict[str, Any]:
    found = s3.get_bucket_notification_configuration(Bucket=SHOP)
    return {
        kind: [{k: v for k, v in item.items() if k != "Id"} for item in found.get(kind, [])]
        for kind in ("QueueConfigurations", "TopicConfigurations")
    }


def test_eventbridge_is_turned_on_and_the_bucket_s_own_notifications_keep_working(shop: dict[str, Any]):
    s3, sqs = shop["s3"], shop["sqs"]
    before = configured(s3)
    done = enable_eventbridge(s3, SHOP)
    assert (done.written, done.already_on) == (True, False)
    assert done.kept == {"QueueConfigurations": 1, "TopicConfigurations": 1}
    assert configured(s3) == before
    s3.put_object(Bucket=SHOP, Key="prices.csv", Body=b"sku,price")
    s3.put_object(Bucket=SHOP, Key="shoe.jPg", Body=b"jpeg")
    assert keys_in(sqs, shop["feed"]) == ["prices.csv"]  # the shop's own consumer, as before
    assert sorted(keys_in(sqs, shop["rule"])) == ["prices.csv", "shoe.jPg"]  # and EventBridge now


def test_writing_eventbridge_alone_would_have_ended_the_shop_s_notifications(shop: dict[str, Any]):
    """Why the helper reads first: S3 replaces the whole configuration on every write."""
    s3, sqs = shop["s3"], shop["sqs"]
    s3.put_bucket_notification_configuration(
        Bucket=SHOP, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    assert configured(s3) == {"QueueConfigurations": [], "TopicConfigurations": []}
    s3.put_object(Bucket=SHOP, Key="prices.csv", Body=b"sku,price")
    assert keys_in(sqs, shop["feed"]) == []


def test_a_dry_run_writes_nothing(shop: dict[str, Any]):
    s3, sqs = shop["s3"], shop["sqs"]
    done = enable_eventbridge(s3, SHOP, dry_run=True)
    assert (done.written, done.already_on) == (False, False)
    s3.put_object(Bucket=SHOP, Key="shoe.jpg", Body=b"jpeg")
    assert keys_in(sqs, shop["rule"]) == []


def test_a_bucket_whose_delivery_is_on_already_is_not_written_again():
    # moto does not return EventBridgeConfiguration on a read, so S3's answer is stubbed here.
    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(s3) as stub:
        stub.add_response(
            "get_bucket_notification_configuration",
            {"EventBridgeConfiguration": {}, "QueueConfigurations": []},
            {"Bucket": SHOP},
        )
        done = enable_eventbridge(s3, SHOP)  # a put_bucket_notification_configuration would fail here
        stub.assert_no_pending_responses()
    assert (done.already_on, done.written, done.kept) == (True, False, {})


def test_the_command_turns_it_on_and_says_what_it_kept(shop: dict[str, Any], capsys: pytest.CaptureFixture):
    assert main(["enable-eventbridge", SHOP, "--endpoint-url", shop["s3"].meta.endpoint_url]) == 0
    said = capsys.readouterr().out
    assert "EventBridge delivery is on for shop-assets" in said
    assert "1 QueueConfigurations, 1 TopicConfigurations" in said
    shop["s3"].put_object(Bucket=SHOP, Key="shoe.jpg", Body=b"jpeg")
    assert keys_in(shop["sqs"], shop["rule"]) == ["shoe.jpg"]


def test_the_command_names_a_bucket_it_cannot_read(aws: str, capsys: pytest.CaptureFixture):
    assert main(["enable-eventbridge", "no-such-bucket", "--endpoint-url", aws]) == 2
    assert "NoSuchBucket" in capsys.readouterr().out
