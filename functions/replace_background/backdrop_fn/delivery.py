"""This delivery of the work: which attempt it is, and whether a failure comes back or is dead-lettered.

A work-queue message comes back (it is reported in ``batchItemFailures``) while its receive
count is below MAX_ATTEMPTS; on its last receive, and for an event invoked directly (no queue
to come back from), a failure is dead-lettered instead (docs/REFERENCE.md#retries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backdrop_fn.errors import BackdropError, BudgetExceeded, NotEnoughTime
from backdrop_fn.timing import Deadline
from backdrop_fn.vocabulary import ATTEMPTS_BEFORE


@dataclass(frozen=True)
class Delivery:
    deadline: Deadline
    request_id: str | None
    attempt: int = 1
    max_attempts: int = 1
    # The work-queue message that carries the work; None for a direct invocation.
    message_id: str | None = None

    @classmethod
    def direct(cls, context: Any) -> Delivery:
        """An S3, EventBridge or DLQ-record event invoked directly: its only attempt."""
        return cls(Deadline.from_context(context), context.aws_request_id)

    @classmethod
    def of_message(cls, record: dict[str, Any], context: Any, *, max_attempts: int) -> Delivery:
        """A work-queue message: its attempt is SQS's receive count, plus its earlier copies' attempts."""
        attempt = int(record.get("attributes", {}).get("ApproximateReceiveCount") or 1)
        attempt += _attempts_before(record)
        return cls(
            Deadline.from_context(context),
            context.aws_request_id,
            attempt=attempt,
            max_attempts=max_attempts,
            message_id=record["messageId"],
        )

    @property
    def is_final(self) -> bool:
        return self.message_id is None or self.attempt >= self.max_attempts

    def comes_back(self, error: BackdropError) -> bool:
        """Whether the work should be tried again on a later receive rather than dead-lettered now."""
        if isinstance(error, NotEnoughTime):
            # Not an attempt at all, so a queued message always comes back; a direct event has no
            # later attempt to wait for, and is dead-lettered.
            return self.message_id is not None
        if isinstance(error, BudgetExceeded):
            return False  # no receive can fix it before the cap is raised or its period turns
        return error.retryable and not self.is_final


def _attempts_before(record: dict[str, Any]) -> int:
    value = (record.get("messageAttributes") or {}).get(ATTEMPTS_BEFORE, {}).get("stringValue")
    try:
        return max(0, int(value)) if value is not None else 0
    except ValueError:
        return 0  # not ours to trust: count this copy's receives only
