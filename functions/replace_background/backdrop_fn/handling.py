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

from backdrop_fn.errors import BackdropError, ClaimNotReleased
from backdrop_fn.events import UnrecognisedEvent, items_from_event, items_from_message
from backdrop_fn.pipeline import Invocation, Outcome
from backdrop_fn.ports import Deadline
from backdrop_fn.wiring import Runtime

logger = logging.getLogger(__name__)


def handle(current: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    current.claims.register_lambda_context(context)
    if _is_sqs_batch(event):
        return {"batchItemFailures": _failed_messages(current, event["Records"], context)}
    return {"outcomes": [outcome.as_dict() for outcome in _handle_direct(current, event, context)]}


def _is_sqs_batch(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return bool(records) and isinstance(records, list) and records[0].get("eventSource") == "aws:sqs"


def _failed_messages(current: Runtime, records: list[dict[str, Any]], context: Any) -> list[dict[str, str]]:
    """Each message on its own: one that fails is reported (it comes back), its neighbours are not."""
    failed = []
    for record in records:
        try:
            _handle_message(current, record, context)
        except BackdropError:
            failed.append({"itemIdentifier": record["messageId"]})  # the pipeline logged why
        except Exception:
            logger.exception(
                "unexpected failure; the message will come back", extra={"id": record["messageId"]}
            )
            failed.append({"itemIdentifier": record["messageId"]})
    return failed


def _handle_message(current: Runtime, record: dict[str, Any], context: Any) -> list[Outcome]:
    """One work-queue message. Raising reports it in ``batchItemFailures`` (it comes back later)."""
    attempt = int(record.get("attributes", {}).get("ApproximateReceiveCount") or 1)
    final_attempt = attempt >= current.settings.max_attempts
    invocation = Invocation(Deadline.from_context(context), context.aws_request_id)
    try:
        items = items_from_message(
            record["body"], attempt=attempt, final_attempt=final_attempt, message_id=record["messageId"]
        )
    except UnrecognisedEvent as error:
        return [current.pipeline.reject(str(error), record["body"], attempt=attempt, invocation=invocation)]
    outcomes: list[Outcome] = []
    try:
        for item in items:
            outcomes.extend(current.pipeline.process(item, invocation))
    except BackdropError as error:
        if current.backoff is not None:
            # A claim left "in progress" expires with this invocation: the message must not meet it.
            at_least = invocation.deadline.remaining() if isinstance(error, ClaimNotReleased) else 0
            current.backoff.delay(record["receiptHandle"], attempt, at_least_seconds=at_least)
        raise
    return outcomes


def _handle_direct(current: Runtime, event: dict[str, Any], context: Any) -> list[Outcome]:
    """An S3 notification, EventBridge event or DLQ record invoked directly: no later attempt."""
    invocation = Invocation(Deadline.from_context(context), context.aws_request_id)
    try:
        items = items_from_event(event)
    except UnrecognisedEvent as error:
        raw = json.dumps(event, default=str)
        return [current.pipeline.reject(str(error), raw, attempt=1, invocation=invocation)]
    return [outcome for item in items for outcome in current.pipeline.process(item, invocation)]
