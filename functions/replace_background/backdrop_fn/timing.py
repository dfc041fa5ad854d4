"""Time: the invocation's deadline, and every rule about how much of it each step needs.

One budget, so that the API client, the pipeline and the presigned URL agree: the call is made
only with time left for it and for what follows it (the output write, or the DLQ record).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Deadline:
    """The moment the Lambda invocation ends, on a monotonic clock."""

    def __init__(self, seconds_left: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ends_at = clock() + seconds_left

    @classmethod
    def from_context(cls, context: Any, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(context.get_remaining_time_in_millis() / 1000.0, clock)

    def remaining(self) -> float:
        return self._ends_at - self._clock()


@dataclass(frozen=True)
class TimeBudget:
    # An API call takes ~15 s and the output write some more: with less than this left, a pair is
    # not started. Its message comes back for a fresh invocation, and this receive does not count
    # toward MAX_ATTEMPTS (SQS's receive count, and so the queue's redrive backstop, still grows).
    min_seconds_to_start: float = 30.0
    # Kept free after the API call for the output write or the DLQ record.
    write_reserve_seconds: float = 10.0
    # A paid answer whose output write failed for passing trouble is written again in the same
    # call, after a wait, while this much would be left afterwards (a write retried by boto3
    # itself can take as long): the message's retry may reach a container without the answer,
    # and buy it again. Waiting is far cheaper than a second purchase.
    write_retry_reserve_seconds: float = 30.0
    first_write_retry_wait_seconds: float = 2.0
    max_write_retry_wait_seconds: float = 16.0
    # A retry of the API call is started only when at least this much is left for it.
    min_attempt_seconds: float = 15.0
    # A server-requested wait (Retry-After, reset time) longer than this is not waited for in the
    # call: the message goes back to the queue rather than holding a Lambda idle.
    max_server_wait_seconds: float = 65.0
    # A turn to call the API (REQUESTS_PER_MINUTE) further off than this is not waited for: the
    # message goes back to the queue rather than holding a Lambda idle.
    max_turn_wait_seconds: float = 60.0
    connect_timeout_seconds: float = 5.0
    # A presigned input URL must outlive the API call, and no more (at most 15 min).
    presigned_url_seconds: int = 600
