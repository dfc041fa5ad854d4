from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from backdrop_fn.adapters.kept_answers import DiskKeptAnswers
from backdrop_fn.config import Settings
from backdrop_fn.delivery import Delivery
from backdrop_fn.events import WorkItem
from backdrop_fn.outcome import Outcome, Status
from backdrop_fn.pipeline import Pipeline
from backdrop_fn.timing import Deadline
from tests.unit.function.fakes import (
    UPLOADED,
    FakeApi,
    FakeClock,
    FakeFailureSink,
    FakeStore,
    InMemoryClaims,
    InMemoryLedger,
    InMemoryOwners,
    InMemoryPendingEvents,
    InMemorySpendGuard,
    RecordingBus,
    RecordingMetrics,
)

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


def statuses(outcomes: list[Outcome]) -> list[Status]:
    return [outcome.status for outcome in outcomes]


@dataclasses.dataclass
class World:
    """The pipeline with its fakes, and helpers to drive it like events would."""

    store: FakeStore
    api: FakeApi
    dlq: FakeFailureSink
    claims: InMemoryClaims
    metrics: RecordingMetrics
    settings: Settings
    kept: DiskKeptAnswers
    owners: InMemoryOwners = dataclasses.field(default_factory=InMemoryOwners)
    ledger: InMemoryLedger = dataclasses.field(default_factory=InMemoryLedger)
    spend: InMemorySpendGuard = dataclasses.field(default_factory=InMemorySpendGuard)
    bus: RecordingBus = dataclasses.field(default_factory=RecordingBus)
    pending_events: InMemoryPendingEvents = dataclasses.field(default_factory=InMemoryPendingEvents)
    clock: FakeClock = dataclasses.field(default_factory=FakeClock)
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
            kept=self.kept,
            owners=self.owners,
            ledger=self.ledger,
            spend=self.spend,
            bus=self.bus,
            pending_events=self.pending_events,
            random_seed=lambda: self.seed,
            sleep=self.clock.sleep,
            wall_clock=self.wall_time,
        )

    def wall_time(self) -> datetime:
        """UTC time, moved on by the same sleeps as the monotonic clock."""
        return UPLOADED + timedelta(seconds=self.clock.now)

    def configure(self, **changes: Any) -> None:
        self.settings = Settings.model_validate({**self.settings.model_dump(), **changes})

    def upload(self, key: str, body: Any) -> str:
        return self.store.put(BUCKET, key, body)

    def event(
        self,
        key: str,
        *,
        attempt: int = 1,
        final: bool = True,
        replay_of: str | None = None,
        replay_variant: int | None = None,
        message_id: str | None = None,
    ) -> list[Outcome]:
        """``final=False``: a work-queue message with receives left (``message-1`` unless named)."""
        item = WorkItem(
            BUCKET, key, None, None, s3_record(key), replay_of=replay_of, replay_variant=replay_variant
        )
        delivery = Delivery(
            Deadline(300, clock=self.clock),
            "req-1",
            attempt=attempt,
            max_attempts=attempt if final else attempt + 1,
            message_id=message_id or (None if final else "message-1"),
        )
        return self.pipeline.process(item, delivery)

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
    made = World(
        FakeStore(),
        FakeApi(),
        FakeFailureSink(),
        InMemoryClaims(),
        RecordingMetrics(),
        settings,
        DiskKeptAnswers(tmp_path / "kept-answers"),
    )
    made.store.clock = made.wall_time  # uploads are dated by the world's own clock
    return made
