"""The work queue as the function uses it: a backoff between receives of a failed message, and a
message sent again when a receive made no attempt.

The queue's visibility timeout must be six times the function timeout (so a slow batch is never
received twice), which would make every retry wait that long. A transient failure instead sets
its message's visibility to an exponential backoff: 1, 2, 4, 8 minutes (RETRY_BACKOFF_SECONDS
sets the first step).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backdrop_fn.errors import InfrastructureUnavailable
from backdrop_fn.vocabulary import ATTEMPTS_BEFORE

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 900
MAX_VISIBILITY_SECONDS = 43_200  # SQS's own ceiling
MAX_DELAY_SECONDS = 900  # SQS's ceiling for a message's delay


def backoff_seconds(attempt: int, first: int = 60) -> int:
    return min(MAX_BACKOFF_SECONDS, first * 2 ** max(0, attempt - 1))


class SqsWorkQueue:
    def __init__(self, client: Callable[[], Any], queue_url: str, *, first_seconds: int = 60) -> None:
        self._sqs = client  # made on first use
        self._queue_url = queue_url
        self._first = first_seconds

    def delay(self, receipt_handle: str, attempt: int, *, at_least_seconds: float = 0) -> None:
        """Hide the message for its backoff, and at least ``at_least_seconds``.

        Pass the invocation's remaining time: a claim this invocation could not release expires
        with it, and a message back sooner would find that claim and take it for another's.
        """
        seconds = max(backoff_seconds(attempt, self._first), math.ceil(at_least_seconds) + 1)
        try:
            self._sqs().change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=min(seconds, MAX_VISIBILITY_SECONDS),
            )
        except (ClientError, BotoCoreError) as error:
            # Harmless: the message still comes back, after the queue's own visibility timeout.
            logger.warning("could not set the retry backoff", extra={"error": type(error).__name__})

    def requeue(self, body: str, *, attempts_before: int, delay_seconds: int) -> None:
        """Send the message again, in ``delay_seconds``, as a new one that remembers the attempts
        made so far.

        SQS counts every receive; a receive that made no attempt (too little time left to start,
        or a pair still settling) must not bring the message closer to its last attempt, so its
        copy starts counting anew.
        """
        try:
            self._sqs().send_message(
                QueueUrl=self._queue_url,
                MessageBody=body,
                DelaySeconds=max(0, min(delay_seconds, MAX_DELAY_SECONDS)),
                MessageAttributes={
                    ATTEMPTS_BEFORE: {"DataType": "Number", "StringValue": str(attempts_before)}
                },
            )
        except (ClientError, BotoCoreError) as error:
            # Not re-sent means the original must come back, counted: never lost.
            raise InfrastructureUnavailable(
                f"could not send the message back to the work queue: {type(error).__name__}"
            ) from None
