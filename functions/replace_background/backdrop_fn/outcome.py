"""What became of one image: the pipeline's answer, remembered by its claim for duplicates."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from backdrop_fn.vocabulary import ErrorClass


class Status(StrEnum):
    PROCESSED = "processed"
    # Processed, but a newer version of the image or its sidecar arrived meanwhile: its result,
    # not this one, is the output.
    SUPERSEDED = "superseded"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    AWAITING_SIDECAR = "awaiting_sidecar"
    AWAITING_IMAGE = "awaiting_image"
    IGNORED = "ignored"


class Outcome(BaseModel):
    """A pydantic model, so that Powertools Idempotency stores and restores it as it is."""

    model_config = ConfigDict(frozen=True)

    status: Status
    image_key: str | None = None
    # Which of the sidecar's variants (from 1); None when it has none.
    variant: int | None = None
    output_key: str | None = None
    # Any string when read back from a claim stored by another version of Backdrop.
    error_class: ErrorClass | str | None = None
    # The id of its completion event when the bus did not take it: kept, and published again by
    # the message's next delivery (``completion.py``).
    event_pending: str | None = None

    def as_duplicate(self) -> Outcome:
        """The same outcome seen again: by a duplicate event, or another event of the same pair."""
        return self.model_copy(update={"status": Status.DUPLICATE})
