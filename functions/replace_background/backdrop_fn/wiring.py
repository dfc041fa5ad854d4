"""Builds the pipeline from the environment: the one place that knows every concrete adapter."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

from backdrop_fn.adapters.claims import IdempotencyClaims
from backdrop_fn.adapters.dlq import SqsFailureSink
from backdrop_fn.adapters.event_bus import DynamoDbPendingEvents, EventBridgeBus
from backdrop_fn.adapters.kept_answers import DiskKeptAnswers
from backdrop_fn.adapters.metrics import EmfMetrics
from backdrop_fn.adapters.output_owners import DynamoDbOutputOwners
from backdrop_fn.adapters.pace import DynamoDbPace, Unpaced
from backdrop_fn.adapters.purchase_ledger import DynamoDbPurchaseLedger
from backdrop_fn.adapters.s3 import S3ObjectStore
from backdrop_fn.adapters.secrets import SecretsManagerApiKey
from backdrop_fn.adapters.segmind import RetryPolicy, SegmindClient
from backdrop_fn.adapters.spend import DynamoDbSpendGuard
from backdrop_fn.adapters.work_queue import SqsWorkQueue
from backdrop_fn.config import Settings
from backdrop_fn.pipeline import Pipeline
from backdrop_fn.runtime import Runtime
from backdrop_fn.timing import TimeBudget

# boto3's "standard" mode retries throttling and 5xx with backoff; endpoints come from
# AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>, so the same code runs against a local stack.
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)
# A completion event is put after the paid work, inside the pair's claim: a bus that hangs must
# not hold the invocation past its deadline. Refused, the event is kept and put again later.
_EVENTS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
# Presigned URLs must be SigV4: the only signature every region and KMS-encrypted object accepts.
_S3_CONFIG = _AWS_CONFIG.merge(Config(signature_version="s3v4"))


def aws_client(service: str, session: boto3.session.Session | None = None) -> Any:
    """A client configured as the function uses it."""
    config = {"s3": _S3_CONFIG, "events": _EVENTS_CONFIG}.get(service, _AWS_CONFIG)
    return (session or boto3.session.Session()).client(service, config=config)


def build_runtime(metrics: EmfMetrics) -> Runtime:
    settings = Settings.from_env()
    session = boto3.session.Session()
    # SQS is needed only when something fails: its client is made on first use, not at a cold start.
    sqs = functools.cache(lambda: aws_client("sqs", session))
    # Made on the first event published, after the first paid call: not at a cold start.
    events = functools.cache(lambda: aws_client("events", session))
    dynamodb = aws_client("dynamodb", session)
    claims = IdempotencyClaims(
        settings.idempotency_table, ttl_seconds=settings.idempotency_ttl_seconds, client=dynamodb
    )
    budget = TimeBudget()
    keys = SecretsManagerApiKey.from_client(settings.api_key_secret_id, aws_client("secretsmanager", session))
    api = SegmindClient(
        settings.api_url,
        keys,
        metrics,
        read_timeout_seconds=settings.api_timeout_seconds,
        max_answer_bytes=settings.max_answer_bytes,
        policy=RetryPolicy(
            max_retries=settings.api_max_retries, backoff_base_seconds=settings.api_backoff_seconds
        ),
        budget=budget,
        pace=(
            DynamoDbPace(
                settings.idempotency_table, client=dynamodb, requests_per_minute=settings.requests_per_minute
            )
            if settings.requests_per_minute
            else Unpaced()
        ),
    )
    pipeline = Pipeline(
        settings,
        store=S3ObjectStore(aws_client("s3", session)),
        api=api,
        failures=SqsFailureSink(sqs, settings.dlq_url),
        claims=claims,
        metrics=metrics,
        kept=DiskKeptAnswers.at_start(),
        owners=DynamoDbOutputOwners(settings.idempotency_table, client=dynamodb),
        ledger=DynamoDbPurchaseLedger(
            settings.idempotency_table, ttl_seconds=settings.idempotency_ttl_seconds, client=dynamodb
        ),
        spend=DynamoDbSpendGuard(
            settings.idempotency_table,
            client=dynamodb,
            daily_cap_usd=settings.daily_budget_usd,
            monthly_cap_usd=settings.monthly_budget_usd,
            credits_seen=lambda: api.last_remaining_credits,
        ),
        bus=EventBridgeBus(events, settings.event_bus_name),
        pending_events=DynamoDbPendingEvents(
            settings.idempotency_table, client=dynamodb, ttl_seconds=settings.idempotency_ttl_seconds
        ),
        budget=budget,
    )
    work_queue = (
        SqsWorkQueue(sqs, settings.work_queue_url, first_seconds=settings.retry_backoff_seconds)
        if settings.work_queue_url
        else None
    )
    return Runtime(settings=settings, pipeline=pipeline, claims=claims, work_queue=work_queue)
