"""Backoff between receives of a failed work-queue message.

The queue's visibility timeout must be six times the function timeout (so a slow batch is never
received twice), which would make every retry wait that long. A transient failure instead sets
its message's visibility to an exponential backoff: 1, 2, 4, 8 minutes.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 60
MAX_BACKOFF_SECONDS = 900


def backoff_seconds(attempt: int) -> int:
    return min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, attempt - 1))


class WorkQueueBackoff:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self._queue_url = queue_url

    def delay(self, receipt_handle: str, attempt: int) -> None:
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=backoff_seconds(attempt),
            )
        except (ClientError, BotoCoreError) as error:
            # Harmless: the message still comes back, after the queue's own visibility timeout.
            logger.warning("could not set the retry backoff", extra={"error": type(error).__name__})
