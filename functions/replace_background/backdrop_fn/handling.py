"""What the handler does with each event shape: SQS batches through Powertools' batch processing,
direct events (S3, EventBridge, a DLQ record) one by one."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from backdrop_fn.errors import BackdropError, ClaimNotReleased
from backdrop_fn.events import UnrecognisedEvent, items_from_event, items_from_message
from backdrop_fn.pipeline import Invocation, Outcome
from backdrop_fn.ports import Deadline
from backdrop_fn.wiring import Runtime


def handle(current: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    current.claims.register_lambda_context(context)
    if _is_sqs_batch(event):
        # A processor per invocation: its state is per batch, and the local poller runs batches in threads.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(
            event=event,
            record_handler=lambda record: _handle_message(current, record, context),
            processor=processor,
            context=context,
        )
    return {"outcomes": [outcome.as_dict() for outcome in _handle_direct(current, event, context)]}


def _is_sqs_batch(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return bool(records) and isinstance(records, list) and records[0].get("eventSource") == "aws:sqs"


def _handle_message(current: Runtime, record: SQSRecord, context: Any) -> list[Outcome]:
    """One work-queue message. Raising reports it in ``batchItemFailures`` (it comes back later)."""
    attempt = int(record.attributes.approximate_receive_count or 1)
    final_attempt = attempt >= current.settings.max_attempts
    invocation = Invocation(Deadline.from_context(context), context.aws_request_id)
    try:
        items = items_from_message(record.body, attempt=attempt, final_attempt=final_attempt)
    except UnrecognisedEvent as error:
        return [current.pipeline.reject(str(error), record.body, attempt=attempt, invocation=invocation)]
    outcomes: list[Outcome] = []
    try:
        for item in items:
            outcomes.extend(current.pipeline.process(item, invocation))
    except BackdropError as error:
        if current.backoff is not None:
            # A claim left "in progress" expires with this invocation: the message must not meet it.
            at_least = invocation.deadline.remaining() if isinstance(error, ClaimNotReleased) else 0
            current.backoff.delay(record.receipt_handle, attempt, at_least_seconds=at_least)
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
