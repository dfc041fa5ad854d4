"""Builds the pipeline from the environment: the one place that knows every concrete adapter."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
from botocore.config import Config

from backdrop_fn.adapters.claims import IdempotencyClaims
from backdrop_fn.adapters.dlq import SqsFailureSink
from backdrop_fn.adapters.metrics import EmfMetrics
from backdrop_fn.adapters.s3 import S3ObjectStore
from backdrop_fn.adapters.secrets import SecretsManagerApiKey
from backdrop_fn.adapters.segmind import SegmindClient
from backdrop_fn.adapters.work_queue import WorkQueueBackoff
from backdrop_fn.config import Settings
from backdrop_fn.pipeline import Pipeline

# boto3's "standard" mode retries throttling and 5xx with backoff; endpoints come from
# AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>, so the same code runs against a local stack.
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pipeline: Pipeline
    claims: IdempotencyClaims
    backoff: WorkQueueBackoff | None


def build_runtime(metrics: EmfMetrics) -> Runtime:
    settings = Settings.from_env()
    session = boto3.session.Session()
    s3 = session.client("s3", config=_AWS_CONFIG.merge(Config(signature_version="s3v4")))
    sqs = session.client("sqs", config=_AWS_CONFIG)
    claims = IdempotencyClaims(
        settings.idempotency_table,
        ttl_seconds=settings.idempotency_ttl_seconds,
        client=session.client("dynamodb", config=_AWS_CONFIG),
    )
    keys = SecretsManagerApiKey.from_client(
        settings.api_key_secret_id, session.client("secretsmanager", config=_AWS_CONFIG)
    )
    pipeline = Pipeline(
        settings,
        store=S3ObjectStore(s3),
        api=SegmindClient(settings.api_url, keys, metrics, read_timeout_seconds=settings.api_timeout_seconds),
        failures=SqsFailureSink(sqs, settings.dlq_url),
        claims=claims,
        metrics=metrics,
    )
    backoff = WorkQueueBackoff(sqs, settings.work_queue_url) if settings.work_queue_url else None
    return Runtime(settings=settings, pipeline=pipeline, claims=claims, backoff=backoff)
