from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from backdrop_fn.adapters.kept_results import LocalDiskResults
from backdrop_fn.config import Settings
from backdrop_fn.events import WorkItem
from backdrop_fn.pipeline import Invocation, Outcome, Pipeline
from backdrop_fn.ports import Deadline
from tests.unit.function.fakes import FakeApi, FakeFailureSink, FakeStore, InMemoryClaims, RecordingMetrics

BUCKET = "in-bucket"
OUTPUT_BUCKET = "out-bucket"


def s3_record(
    key: str, *, bucket: str = BUCKET, etag: str = "etag", event_name: str = "ObjectCreated:Put"
) -> dict:
    """An S3 event record as S3 writes it: the key URL-encoded with '+' for spaces."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": event_name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "eTag": etag, "size": 1}},
    }


@dataclasses.dataclass
class World:
    """The pipeline with its fakes, and helpers to drive it like events would."""

    store: FakeStore
    api: FakeApi
    dlq: FakeFailureSink
    claims: InMemoryClaims
    metrics: RecordingMetrics
    settings: Settings
    paid: LocalDiskResults
    seed: int = 4242

    @property
    def pipeline(self) -> Pipeline:
        return Pipeline(
            self.settings,
            store=self.store,
            api=self.api,
            failures=self.dlq,
            claims=self.claims,
            metrics=self.metrics,
            paid=self.paid,
            random_seed=lambda: self.seed,
        )

    def configure(self, **changes: Any) -> None:
        self.settings = dataclasses.replace(self.settings, **changes)

    def upload(self, key: str, body: Any) -> str:
        return self.store.put(BUCKET, key, body)

    def event(
        self,
        key: str,
        *,
        attempt: int = 1,
        final: bool = True,
        replay_of: str | None = None,
        message_id: str | None = None,
    ) -> list[Outcome]:
        item = WorkItem(
            bucket=BUCKET,
            key=key,
            etag=None,
            version_id=None,
            event=s3_record(key),
            attempt=attempt,
            final_attempt=final,
            replay_of=replay_of,
            message_id=message_id,
        )
        return self.pipeline.process(item, Invocation(Deadline(300), "req-1"))

    def output(self, key: str) -> dict[str, Any]:
        return self.store.outputs[(OUTPUT_BUCKET, key)]


@pytest.fixture
def world(tmp_path: Path) -> World:
    settings = Settings(
        output_bucket=OUTPUT_BUCKET,
        api_key_secret_id="secret",
        dlq_url="https://sqs.example/dlq",
        idempotency_table="table",
    )
    return World(
        FakeStore(),
        FakeApi(),
        FakeFailureSink(),
        InMemoryClaims(),
        RecordingMetrics(),
        settings,
        LocalDiskResults(tmp_path / "paid-results"),
    )
