"""A failure becomes one DLQ record (docs/REFERENCE.md#the-dlq-record), a metric, a log line and
a completion event."""

from __future__ import annotations

import logging
from typing import Any

from backdrop_fn.completion import CompletionEvents
from backdrop_fn.delivery import Delivery
from backdrop_fn.errors import BackdropError
from backdrop_fn.events import ForeignBucket, UnrecognisedEvent
from backdrop_fn.failures import FailureRecord, FailureSource
from backdrop_fn.outcome import Outcome, Status
from backdrop_fn.ports import FailureSink, Metrics
from backdrop_fn.vocabulary import ErrorClass

logger = logging.getLogger(__name__)

# An unrecognised message is kept in its DLQ record up to this many characters: even escaped
# (6 bytes a character at worst) the record stays under the 256 KiB of an SQS message.
UNRECOGNISED_EVENT_CHARS = 30_000


class DeadLetters:
    def __init__(self, sink: FailureSink, metrics: Metrics, events: CompletionEvents) -> None:
        self._sink = sink
        self._metrics = metrics
        self._events = events

    def send(
        self, error: BackdropError, source: FailureSource, event: dict[str, Any], delivery: Delivery
    ) -> Outcome:
        return self.send_record(self.record(error, source, event, delivery))

    @staticmethod
    def record(
        error: BackdropError, source: FailureSource, event: dict[str, Any], delivery: Delivery
    ) -> FailureRecord:
        return FailureRecord.from_error(
            error, source=source, attempts=delivery.attempt, request_id=delivery.request_id, event=event
        )

    def send_record(self, record: FailureRecord) -> Outcome:
        error_class = ErrorClass(record.error.error_class)
        self._sink.send(record.to_json(), error_class=error_class)
        self._metrics.add_failure(error_class)
        logger.warning(
            "failed: sent to the DLQ",
            extra={"key": record.source.key, "error_class": error_class, "error": record.error.message},
        )
        return Outcome(
            status=Status.FAILED,
            image_key=record.source.key,
            variant=record.variant,
            error_class=error_class,
            event_pending=self._events.failed(record),
        )

    def reject(self, error: UnrecognisedEvent, raw: str, delivery: Delivery) -> Outcome:
        """An event that is not work, dead-lettered once as ``invalid_event``: no retry can fix it.

        One for a bucket outside INPUT_BUCKETS keeps the S3 record it named, so that a redrive
        processes it once that bucket is allowed; any other is kept as it came.
        """
        if isinstance(error, ForeignBucket):
            item = error.item
            source = FailureSource(bucket=item.bucket, key=item.key, etag=item.etag)
            return self.send(error, source, item.event, delivery)
        event = {"unrecognised": raw[:UNRECOGNISED_EVENT_CHARS]}
        return self.send(error, FailureSource(), event, delivery)
