"""The template's resources on moto in server mode, on loopback: AWS without an account.

Names are fixed (``backdrop-in-local`` …) so that ``events/*.json`` and ``events/env.json``
work against a running local stack; everything else (queue delay, visibility timeout,
``maxReceiveCount``, the input rule's event pattern, table key and TTL) comes from template.yaml.

Uploads reach the work queue as in AWS: the input bucket sends its events to EventBridge (moto's),
whose rule, the template's own pattern, sends the matching ones to the queue. With
``ExistingInputBucket``, that bucket is not the stack's: it must exist already, and its
EventBridge delivery is turned on by its owner (``bucket_events.enable_eventbridge``), not here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from backdrop.local.template import StackSpec, resolve, resolve_environment

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
    "InputEventsRule": "backdrop-input-events",
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


class MissingBucket(RuntimeError):
    """The bucket named by ExistingInputBucket is not there: the stack never creates it."""


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
    # Logical id → what !Ref gives locally (a name, or a queue's URL), for every resource created.
    names: dict[str, str]

    @property
    def input_prefix(self) -> str:
        return self.spec.parameters.get("InputPrefix", "")

    @property
    def output_prefix(self) -> str:
        return self.spec.parameters.get("OutputPrefix", "")

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=_FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def function_environment(self, api_url: str) -> dict[str, str]:
        env = resolve_environment(self.spec, self.names)
        env.update(_FAKE_CREDENTIALS)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "API_URL": api_url,
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            }
        )
        return env


def create_resources(spec: StackSpec, endpoint: str, *, api_key: str = LOCAL_API_KEY) -> LocalStack:
    """Create the template's buckets, queues, table and secret on the moto server at ``endpoint``."""
    session = boto3.session.Session(
        aws_access_key_id=_FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=_FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    s3 = session.client("s3", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)

    names = {logical_id: LOCAL_NAMES[logical_id] for logical_id in spec.buckets}
    for logical_id, bucket in names.items():
        s3.create_bucket(Bucket=bucket)
        if logical_id in spec.versioned_buckets:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        if logical_id in spec.eventbridge_buckets:
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
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

    names.update(urls)
    input_bucket = str(resolve(spec, spec.environment["INPUT_BUCKETS"], names))
    output_bucket = str(resolve(spec, spec.environment["OUTPUT_BUCKET"], names))
    _require_existing(s3, {input_bucket, output_bucket} - set(names.values()))
    _route_inputs(session.client("events", endpoint_url=endpoint), spec, names, arns)

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

    names.update({spec.table: table, spec.secret: secret_id})

    dlq_logical_id = spec.queues[spec.work_queue].dead_letter_target or ""
    events_queue_url = subscribe_to_completion_events(sqs, session.client("events", endpoint_url=endpoint))
    return LocalStack(
        spec=spec,
        endpoint=endpoint,
        input_bucket=input_bucket,
        output_bucket=output_bucket,
        work_queue_url=urls[spec.work_queue],
        work_queue_arn=arns[spec.work_queue],
        dlq_url=urls[dlq_logical_id],
        table=table,
        secret_id=secret_id,
        events_queue_url=events_queue_url,
        names=names,
    )


def _require_existing(s3: Any, buckets: set[str]) -> None:
    """Buckets the template names but does not create (ExistingInputBucket) must be there."""
    for bucket in sorted(buckets):
        try:
            s3.head_bucket(Bucket=bucket)
        except s3.exceptions.ClientError:
            raise MissingBucket(
                f"bucket {bucket!r} (ExistingInputBucket) does not exist on the local stack: "
                "the stack never creates it, so create it first"
            ) from None


def _route_inputs(events: Any, spec: StackSpec, names: dict[str, str], arns: dict[str, str]) -> None:
    """The template's input rule on moto's EventBridge, its pattern resolved as CloudFormation would."""
    rule = spec.input_rule
    name = LOCAL_NAMES[rule.logical_id]
    pattern = resolve(spec, rule.event_pattern, names)
    events.put_rule(Name=name, EventBusName=rule.event_bus, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(
        Rule=name, EventBusName=rule.event_bus, Targets=[{"Id": rule.target, "Arn": arns[rule.target]}]
    )
    names[rule.logical_id] = name


def subscribe_to_completion_events(sqs: Any, events: Any, name: str = LOCAL_EVENTS_QUEUE) -> str:
    """What a shop's backend does: a rule on the default bus for every Backdrop event, to a queue
    of its own (moto delivers rules to SQS targets). The local stack makes one, which `backdrop
    watch` and the demo read. Returns the queue's URL."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["backdrop"]}))
    events.put_targets(Rule=name, Targets=[{"Id": "listener", "Arn": arn}])
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
