"""Backdrop's completion events as a shop's backend sees them (CONTRACT.md §8).

Locally they are taken from the queue the local stack subscribes to the bus
(``LocalStack.events_queue_url``), told in one line each, and POSTed to a developer's own
endpoint as the stack's EventBridge API destination would: the detail alone, as JSON, with the
same headers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests
from rich.markup import escape

PROCESSED = "Backdrop Image Processed"
FAILED = "Backdrop Image Failed"
# What an EventBridge API destination sends with each event (the Authorization header comes
# from the connection: WebhookSecretArn's value, or "Backdrop").
WEBHOOK_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "Amazon/EventBridge/ApiDestinations",
}
DEFAULT_AUTHORIZATION = "Backdrop"


@dataclass(frozen=True)
class CompletionEvent:
    detail_type: str
    detail: dict[str, Any]

    @property
    def image_key(self) -> str:
        place = self.detail.get("input") or self.detail.get("source") or {}
        return str(place.get("key") or "?")

    def line(self) -> str:
        """One console line, in rich markup."""
        key = escape(self.image_key)
        if self.detail_type == PROCESSED:
            output = self.detail.get("output") or {}
            cost = (self.detail.get("cost") or {}).get("estimated_usd", 0.0)
            return (
                f"[magenta]⚑[/] event [bold]{PROCESSED}[/]: {key} → "
                f"s3://{escape(str(output.get('bucket')))}/{escape(str(output.get('key')))} (${cost:.3f})"
            )
        error_class = escape(str((self.detail.get("error") or {}).get("class")))
        return f"[magenta]⚑[/] event [bold]{escape(self.detail_type)}[/]: {key}: {error_class}"


def take(sqs: Any, queue_url: str) -> list[CompletionEvent]:
    """Every event waiting on a subscribed queue, oldest first as far as SQS says; each is
    deleted once read."""
    events: list[CompletionEvent] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return events
        events.extend(event for event in map(_event_of, messages) if event is not None)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
        )


def _event_of(message: dict[str, Any]) -> CompletionEvent | None:
    """The event a message carries; None for one that is not an event (deleted all the same, so
    that it cannot stand in front of the others)."""
    try:
        envelope = json.loads(message["Body"])
        return CompletionEvent(str(envelope["detail-type"]), dict(envelope["detail"]))
    except (ValueError, KeyError, TypeError):
        return None


def post(url: str, event: CompletionEvent, *, authorization: str = DEFAULT_AUTHORIZATION) -> str:
    """POST the event's detail to ``url``; what came back, in a few words (never raises)."""
    try:
        answer = requests.post(
            url,
            data=json.dumps(event.detail).encode("utf-8"),
            headers={**WEBHOOK_HEADERS, "Authorization": authorization},
            timeout=10,
        )
    except requests.RequestException as error:
        return f"not delivered: {type(error).__name__}"
    return f"{answer.status_code} {answer.reason}".strip()
