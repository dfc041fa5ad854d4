"""The DLQ record (docs/REFERENCE.md#the-dlq-record): one replayable JSON message per failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backdrop_fn.errors import BackdropError
from backdrop_fn.vocabulary import ErrorClass

RECORD_TYPE = "backdrop.failure"
# Whatever a message says, the record stays far below the 256 KiB of an SQS message.
MAX_MESSAGE_CHARS = 4000


class FailureError(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    # Any string when read: a record written by another version of Backdrop is still replayed.
    error_class: ErrorClass | str = Field(alias="class")
    message: str
    http_status: int | None = None
    retryable: bool


class FailureSource(BaseModel):
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    sidecar_key: str | None = None


class FailureCost(BaseModel):
    """What the pair has been charged so far: every call that may have been, at its estimated price."""

    paid_calls: int
    estimated_usd: float


class FailureRecord(BaseModel):
    type: Literal["backdrop.failure"] = "backdrop.failure"
    version: Literal[1] = 1
    error: FailureError
    source: FailureSource
    attempts: int
    failed_at: str
    request_id: str | None = None
    event: dict[str, Any] = Field(description="the original S3 record, so that the message can be replayed")
    # A pair's failure says what it cost; a failure that is no pair's (an unrecognised event) has none.
    cost: FailureCost | None = None
    # Which of the sidecar's variants failed (from 1): a redrive of this record runs that one alone.
    variant: int | None = None

    @classmethod
    def from_error(
        cls,
        error: BackdropError,
        *,
        source: FailureSource,
        attempts: int,
        request_id: str | None,
        event: dict[str, Any],
        now: datetime | None = None,
    ) -> FailureRecord:
        failed_at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(
            error=FailureError(
                error_class=error.error_class,
                message=_shortened(error.message),
                http_status=error.http_status,
                retryable=error.retryable,
            ),
            source=source,
            attempts=attempts,
            failed_at=failed_at,
            request_id=request_id,
            event=event,
        )

    def to_json(self) -> str:
        absent = {name for name in ("cost", "variant") if getattr(self, name) is None}
        return self.model_dump_json(by_alias=True, exclude=absent or None)

    def replay_id(self) -> str:
        """What tells this failure from another of the same pair, so each redrive is processed once."""
        return f"{self.failed_at}/{self.request_id}/{self.attempts}"


def _shortened(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 14] + " … (shortened)"
