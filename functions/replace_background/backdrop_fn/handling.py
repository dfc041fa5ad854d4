"""What the handler does with each event shape: an SQS batch answered with its partial-batch
response, direct events (S3, EventBridge, a DLQ record) one by one.

The batch loop is ours rather than Powertools' BatchProcessor: with pydantic installed, that one
imports every Parser model of every event source, about 0.1 s of each cold start (bench/), for a
loop of a few lines.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from backdrop_fn.delivery import Delivery
from backdrop_fn.errors import BackdropError, ClaimNotReleased, EventNotPublished, NotEnoughTime
from backdrop_fn.events import UnrecognisedEvent, items_from_event, items_from_message
from backdrop_fn.outcome import Outcome
from backdrop_fn.runtime import Runtime

logger = logging.getLogger(__name__)


def handle(current: Runtime, event: Any, context: Any) -> dict[str, Any]:
    current.claims.register_lambda_context(context)
    if _is_sqs_batch(event):
        return {"batchItemFailures": _failed_messages(current, event["Records"], context)}
    outcomes = _handle_direct(current, event, Delivery.direct(context))
    # A pending event's id is the claim's bookkeeping, not part of the answer.
    return {"outcomes": [outcome.model_dump(mode="json", exclude={"event_pending"}) for outcome in outcomes]}


def _is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and any(isinstance(record, dict) for record in records)
        and all(record.get("eventSource") == "aws:sqs" for record in records if isinstance(record, dict))
    )


def _failed_messages(current: Runtime, records: list[Any], context: Any) -> list[dict[str, str]]:
    """Each message on its own: one that fails is reported (it comes back), its neighbours are not."""
    failed = []
    for record in records:
        if not isinstance(record, dict):
            # Not a message at all: nothing to report it by, so it is dead-lettered here.
            _reject(current, UnrecognisedEvent("a record of the SQS batch is not a message"), record, context)
            continue
        try:
            delivery = Delivery.of_message(record, context, max_attempts=current.settings.max_attempts)
            _handle_message(current, record, delivery)
        except BackdropError:
            failed.append({"itemIdentifier": record["messageId"]})  # the pipeline logged why
        except Exception:
            logger.exception(
                "unexpected failure; the message will come back", extra={"id": record["messageId"]}
            )
            failed.append({"itemIdentifier": record["messageId"]})
    return failed


def _handle_message(current: Runtime, record: dict[str, Any], delivery: Delivery) -> list[Outcome]:
    """One work-queue message. Raising reports it in ``batchItemFailures`` (it comes back later)."""
    try:
        items = items_from_message(record["body"], current.settings.input_buckets)
    except UnrecognisedEvent as error:
        return [current.pipeline.reject(error, record["body"], delivery)]
    outcomes: list[Outcome] = []
    try:
        for item in items:
            outcomes.extend(current.pipeline.process(item, delivery))
    except NotEnoughTime as wait:
        if current.work_queue is None:
            raise
        # Not an attempt: a copy that remembers the attempts made so far replaces this message.
        current.work_queue.requeue(
            record["body"], attempts_before=delivery.attempt - 1, delay_seconds=wait.come_back_after_seconds
        )
        logger.info(
            "sent back uncounted",
            extra={
                "reason": wait.message,
                "attempt": delivery.attempt,
                "seconds": wait.come_back_after_seconds,
            },
        )
    except BackdropError as error:
        if current.work_queue is not None:
            # A claim left "in progress" expires with this invocation: the message must not meet it.
            # So must one whose event alone is missing: were its claim left so, it would meet it,
            # be taken for another invocation's work, and never publish the event.
            stays = isinstance(error, ClaimNotReleased | EventNotPublished)
            at_least = delivery.deadline.remaining() if stays else 0
            current.work_queue.delay(record["receiptHandle"], delivery.attempt, at_least_seconds=at_least)
        raise
    return outcomes


def _handle_direct(current: Runtime, event: Any, delivery: Delivery) -> list[Outcome]:
    """An S3 notification, EventBridge event or DLQ record invoked directly: no later attempt."""
    try:
        items = items_from_event(event, current.settings.input_buckets)
    except UnrecognisedEvent as error:
        return [current.pipeline.reject(error, json.dumps(event, default=str), delivery)]
    return [outcome for item in items for outcome in current.pipeline.process(item, delivery)]


def _reject(current: Runtime, error: UnrecognisedEvent, raw: Any, context: Any) -> None:
    current.pipeline.reject(error, json.dumps(raw, default=str), Delivery.direct(context))
