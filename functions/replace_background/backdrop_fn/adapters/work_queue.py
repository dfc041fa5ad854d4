"""Backoff between receives of a failed work-queue message.

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

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 900
MAX_VISIBILITY_SECONDS = 43_200  # SQS's own ceiling


def backoff_seconds(attempt: int, first: int = 60) -> int:
    return min(MAX_BACKOFF_SECONDS, first * 2 ** max(0, attempt - 1))


class WorkQueueBackoff:
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
