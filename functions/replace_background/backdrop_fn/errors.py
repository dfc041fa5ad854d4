"""Failures as values with a class (docs/REFERENCE.md#error-classes).

Each error's ``error_class`` says what the DLQ record and the ``ErrorClass`` dimension of the
``ImagesFailed`` metric say; ``retryable`` says whether it is worth another attempt. Whether
this delivery makes that attempt is the delivery's decision (``delivery.py``).
"""

from __future__ import annotations

from backdrop_fn.vocabulary import ErrorClass


class BackdropError(Exception):
    """A failure the pipeline understands. Subclasses fix the class and whether it is transient."""

    error_class = ErrorClass.INTERNAL
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        if retryable is not None:  # a class's usual answer, overridden for this one failure
            self.retryable = retryable


class InvalidSidecar(BackdropError):
    error_class = ErrorClass.INVALID_SIDECAR


class InvalidImage(BackdropError):
    error_class = ErrorClass.INVALID_IMAGE


class MissingObject(BackdropError):
    error_class = ErrorClass.MISSING_OBJECT


class BadRequest(BackdropError):
    error_class = ErrorClass.BAD_REQUEST


class AuthFailed(BackdropError):
    error_class = ErrorClass.AUTH


class ApiNotFound(BackdropError):
    error_class = ErrorClass.NOT_FOUND


class InsufficientCredits(BackdropError):
    error_class = ErrorClass.INSUFFICIENT_CREDITS


class RateLimited(BackdropError):
    error_class = ErrorClass.RATE_LIMITED
    retryable = True


class ServerError(BackdropError):
    error_class = ErrorClass.SERVER_ERROR
    retryable = True


class ApiTimeout(BackdropError):
    error_class = ErrorClass.TIMEOUT
    retryable = True


class OutputWriteFailed(BackdropError):
    error_class = ErrorClass.OUTPUT_WRITE
    retryable = True


class BudgetExceeded(BackdropError):
    """A call that would pass a spend cap is not made. Retryable, by a redrive once the cap is
    raised or its period has turned; so it is dead-lettered at once, not retried on the queue."""

    error_class = ErrorClass.BUDGET_EXCEEDED
    retryable = True


class KeptAnswerGone(OutputWriteFailed):
    """The kept answer vanished before it was written: only a new receive (and purchase) can help,
    so it is not written again in the same call."""


class InternalError(BackdropError):
    """A bug or an unexpected answer: retrying the same input would fail the same way."""

    error_class = ErrorClass.INTERNAL


class InfrastructureUnavailable(BackdropError):
    """An AWS service on our side (S3 read, DynamoDB, Secrets Manager) failed after its own retries.

    It is classed ``internal`` because no API class fits, but unlike a bug it is worth another
    receive of the message: throttling and 5xx from AWS pass.
    """

    error_class = ErrorClass.INTERNAL
    retryable = True


class EventNotPublished(InfrastructureUnavailable):
    """A completion event could not be put on the event bus. The work it tells of is done: only
    the event is tried again, with the message's next delivery."""


class ClaimNotReleased(InfrastructureUnavailable):
    """The work failed and its claim could not be released: it stays "in progress" until this
    invocation's deadline, so the message must not come back before then."""


class NotEnoughTime(BackdropError):
    """Too little of the invocation is left to make the call: not an attempt, so always tried again."""

    error_class = ErrorClass.TIMEOUT
    retryable = True
    # How long the message waits before it comes back.
    come_back_after_seconds = 5

    def __init__(self, message: str, *, come_back_after_seconds: int | None = None) -> None:
        super().__init__(message)
        if come_back_after_seconds is not None:
            self.come_back_after_seconds = come_back_after_seconds


class PairSettling(NotEnoughTime):
    """An image that would be paid with DEFAULT_PROMPT is younger than PAIR_SETTLE_SECONDS: its
    sidecar may still come. Not an attempt either: its message comes back when it is old enough."""


class NoTurnInTime(NotEnoughTime):
    """Every container shares the plan's REQUESTS_PER_MINUTE, and this one's next turn to call the
    API is too far off to wait for. Not an attempt: its message comes back about when turns free up."""


class ClaimInProgress(Exception):
    """Another invocation holds the claim on this pair right now: try again later, call nothing."""
