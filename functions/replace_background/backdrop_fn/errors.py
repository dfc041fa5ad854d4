"""Failures as values with a class (CONTRACT.md §3).

Each error's ``error_class`` decides three things at once: whether the record is retried,
what the DLQ record says, and the ``ErrorClass`` dimension of the ``ImagesFailed`` metric.
"""

from __future__ import annotations


class BackdropError(Exception):
    """A failure the pipeline understands. Subclasses fix the class and whether it is transient."""

    error_class = "internal"
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
    error_class = "invalid_sidecar"


class InvalidImage(BackdropError):
    error_class = "invalid_image"


class MissingObject(BackdropError):
    error_class = "missing_object"


class BadRequest(BackdropError):
    error_class = "bad_request"


class AuthFailed(BackdropError):
    error_class = "auth"


class ApiNotFound(BackdropError):
    error_class = "not_found"


class InsufficientCredits(BackdropError):
    error_class = "insufficient_credits"


class RateLimited(BackdropError):
    error_class = "rate_limited"
    retryable = True


class ServerError(BackdropError):
    error_class = "server_error"
    retryable = True


class ApiTimeout(BackdropError):
    error_class = "timeout"
    retryable = True


class OutputWriteFailed(BackdropError):
    error_class = "output_write"
    retryable = True


class InternalError(BackdropError):
    """A bug or an unexpected answer: retrying the same input would fail the same way."""

    error_class = "internal"


class InfrastructureUnavailable(BackdropError):
    """An AWS service on our side (S3 read, DynamoDB, Secrets Manager) failed after its own retries.

    It is classed ``internal`` because no API class fits, but unlike a bug it is worth another
    receive of the message: throttling and 5xx from AWS pass.
    """

    error_class = "internal"
    retryable = True


class ClaimNotReleased(InfrastructureUnavailable):
    """The work failed and its claim could not be released: it stays "in progress" until this
    invocation's deadline, so the message must not come back before then."""


class NotEnoughTime(BackdropError):
    """Too little of the invocation is left to make the call: not an attempt, so always tried again."""

    error_class = "timeout"
    retryable = True


class ClaimInProgress(Exception):
    """Another invocation holds the claim on this pair right now: try again later, call nothing."""


ERROR_CLASSES = (
    "invalid_sidecar",
    "invalid_image",
    "missing_object",
    "bad_request",
    "auth",
    "not_found",
    "insufficient_credits",
    "rate_limited",
    "server_error",
    "timeout",
    "output_write",
    "internal",
)
