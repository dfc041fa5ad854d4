"""The template's resources on moto in server mode, on loopback: AWS without an account.

Names are fixed (``backdrop-in-local`` …) so that ``events/*.json`` and ``events/env.json``
work against a running local stack; everything else (queue delay, visibility timeout,
``maxReceiveCount``, notification filters, table key and TTL) comes from template.yaml.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from backdrop.local.template import StackSpec, resolve_environment

REGION = "us-east-1"
LOCAL_API_KEY = "local-emulator-key"
# Logical id → local physical name.
LOCAL_NAMES = {
    "InputBucket": "backdrop-in-local",
    "OutputBucket": "backdrop-out-local",
    "WorkQueue": "backdrop-work",
    "DeadLetterQueue": "backdrop-dlq",
    "IdempotencyTable": "backdrop-idempotency",
    "ApiKeySecret": "backdrop/segmind-api-key",
    "WebhookDeadLetterQueue": "backdrop-webhook-dlq",
}
LOCAL_EVENTS_QUEUE = "backdrop-events-local"
# What boto3 needs to talk to moto: any credentials, one region, the local endpoint.
_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class LocalStack:
    spec: StackSpec
    endpoint: str
    input_bucket: str
    output_bucket: str
    work_queue_url: str
    work_queue_arn: str
    dlq_url: str
    table: str
    secret_id: str
    # What a shop's backend would subscribe: Backdrop's completion events, on a queue of their own.
    events_queue_url: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=_FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def function_environment(self, api_url: str) -> dict[str, str]:
        names = {
            self.spec.input_bucket: self.input_bucket,
            self.spec.output_bucket: self.output_bucket,
            self.spec.work_queue: self.work_queue_url,
            self._dlq_logical_id: self.dlq_url,
            self.spec.table: self.table,
            self.spec.secret: self.secret_id,
        }
        env = resolve_environment(self.spec, names)
        env.update(_FAKE_CREDENTIALS)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "API_URL": api_url,
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            }
        )
        return env

    @property
    def _dlq_logical_id(self) -> str:
        target = self.spec.queues[self.spec.work_queue].dead_letter_target
        assert target is not None, "the template's work queue has no redrive policy"
        return target


def create_resources(spec: StackSpec, endpoint: str, *, api_key: str = LOCAL_API_KEY) -> LocalStack:
    """Create the template's buckets, queues, table and secret on the moto server at ``endpoint``."""
    session = boto3.session.Session(
        aws_access_key_id=_FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=_FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    s3 = session.client("s3", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)

    for logical_id in spec.buckets:
        s3.create_bucket(Bucket=LOCAL_NAMES[logical_id])
        if logical_id in spec.versioned_buckets:
            s3.put_bucket_versioning(
                Bucket=LOCAL_NAMES[logical_id], VersioningConfiguration={"Status": "Enabled"}
            )

    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    # Dead-letter targets first: a redrive policy names its target's ARN.
    for logical_id in sorted(spec.queues, key=lambda q: spec.queues[q].dead_letter_target is not None):
        queue = spec.queues[logical_id]
        attributes = {
            "DelaySeconds": str(queue.delay_seconds),
            "VisibilityTimeout": str(queue.visibility_timeout),
            "MessageRetentionPeriod": str(queue.retention_seconds),
        }
        if queue.dead_letter_target:
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": arns[queue.dead_letter_target],
                    "maxReceiveCount": queue.max_receive_count,
                }
            )
        urls[logical_id] = sqs.create_queue(QueueName=LOCAL_NAMES[logical_id], Attributes=attributes)[
            "QueueUrl"
        ]
        arns[logical_id] = sqs.get_queue_attributes(QueueUrl=urls[logical_id], AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    input_bucket = LOCAL_NAMES[spec.input_bucket]
    s3.put_bucket_notification_configuration(
        Bucket=input_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arns[notification["Queue"]["Fn::GetAtt"][0]],
                    "Events": [notification["Event"]],
                    "Filter": {"Key": {"FilterRules": notification["Filter"]["S3Key"]["Rules"]}},
                }
                for notification in spec.notifications
            ]
        },
    )
    # S3 announces a new notification configuration with an s3:TestEvent: the handler ignores it.

    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    table = LOCAL_NAMES[spec.table]
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": spec.table_key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": spec.table_key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.table_ttl_attribute},
    )
    secret_id = session.client("secretsmanager", endpoint_url=endpoint).create_secret(
        Name=LOCAL_NAMES[spec.secret], SecretString=json.dumps({"api_key": api_key})
    )["ARN"]

    dlq_logical_id = spec.queues[spec.work_queue].dead_letter_target or ""
    events_queue_url = _completion_events_queue(session, endpoint)
    return LocalStack(
        spec=spec,
        endpoint=endpoint,
        input_bucket=input_bucket,
        output_bucket=LOCAL_NAMES[spec.output_bucket],
        work_queue_url=urls[spec.work_queue],
        work_queue_arn=arns[spec.work_queue],
        dlq_url=urls[dlq_logical_id],
        table=table,
        secret_id=secret_id,
        events_queue_url=events_queue_url,
    )


def _completion_events_queue(session: boto3.session.Session, endpoint: str) -> str:
    """A rule on the default bus for every Backdrop event, to a queue that `backdrop watch` and
    the demo read: locally, the bus's only subscriber (moto delivers rules to SQS targets)."""
    sqs = session.client("sqs", endpoint_url=endpoint)
    events = session.client("events", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=LOCAL_EVENTS_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=LOCAL_EVENTS_QUEUE, EventPattern=json.dumps({"source": ["backdrop"]}))
    events.put_targets(Rule=LOCAL_EVENTS_QUEUE, Targets=[{"Id": "local-listener", "Arn": arn}])
    return url


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set process environment variables for the duration (the handler reads its configuration there)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
