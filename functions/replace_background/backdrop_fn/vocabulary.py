"""The words of docs/REFERENCE.md that code speaks, each spelled once.

Error classes, metric names and units, and the sidecar's and settings' choices: the DLQ record,
the metrics adapter, the sidecar model and the settings model all take them from here.
"""

from __future__ import annotations

import re
from enum import StrEnum

# A colour as the sidecar writes it, in a palette or a rendition's background.
HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")

# The message attribute of a work-queue message sent again after a receive that made no attempt:
# the attempts its earlier copies made (docs/REFERENCE.md#retries).
ATTEMPTS_BEFORE = "backdrop-attempts-before"


class ErrorClass(StrEnum):
    """``error.class`` of a DLQ record, its ``error_class`` attribute and the ``ErrorClass`` dimension."""

    INVALID_SIDECAR = "invalid_sidecar"
    INVALID_IMAGE = "invalid_image"
    MISSING_OBJECT = "missing_object"
    INVALID_EVENT = "invalid_event"
    BAD_REQUEST = "bad_request"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    OUTPUT_WRITE = "output_write"
    BUDGET_EXCEEDED = "budget_exceeded"
    INTERNAL = "internal"


class RenderingSpeed(StrEnum):
    TURBO = "TURBO"
    DEFAULT = "DEFAULT"
    QUALITY = "QUALITY"


class MagicPrompt(StrEnum):
    AUTO = "AUTO"
    ON = "ON"
    OFF = "OFF"


class ImageTransfer(StrEnum):
    """How the input reaches the API: a presigned GET URL it fetches, or base64 inside the request."""

    URL = "url"
    BASE64 = "base64"


class Unit(StrEnum):
    """CloudWatch's names for the units the function uses."""

    COUNT = "Count"
    MILLISECONDS = "Milliseconds"
    BYTES = "Bytes"
    NONE = "None"
    PERCENT = "Percent"


class Metric(StrEnum):
    """Every metric the function emits (CloudWatch embedded metric format, one namespace)."""

    IMAGES_PROCESSED = "ImagesProcessed"
    IMAGES_FAILED = "ImagesFailed"
    API_LATENCY = "ApiLatency"
    API_RETRIES = "ApiRetries"
    DUPLICATES_SKIPPED = "DuplicatesSkipped"
    AWAITING_SIDECAR = "AwaitingSidecar"
    AWAITING_IMAGE = "AwaitingImage"
    OUTPUT_BYTES = "OutputBytes"
    REMAINING_CREDITS = "RemainingCredits"
    KEPT_ANSWERS_REUSED = "KeptAnswersReused"
    PAID_ANSWERS_LOST = "PaidAnswersLost"
    RESULTS_SUPERSEDED = "ResultsSuperseded"
    # An event for one of the function's own results (under OUTPUT_PREFIX), acknowledged unprocessed.
    OUTPUT_EVENTS_IGNORED = "OutputEventsIgnored"
    # The estimated price of each call that may be charged (less the ones released): its Sum over
    # a period is that period's estimated spend.
    ESTIMATED_SPEND_USD = "EstimatedSpendUsd"
    # With a cap: the larger share of today's or this month's cap spent, after each reservation.
    BUDGET_USED_PERCENT = "BudgetUsedPercent"
    # Completion events that could not be published when their outcome was reached: each is kept
    # and published again with its message's next delivery.
    EVENTS_UNPUBLISHED = "EventsUnpublished"

    @property
    def unit(self) -> Unit:
        return _UNITS.get(self, Unit.COUNT)


_UNITS = {
    Metric.API_LATENCY: Unit.MILLISECONDS,
    Metric.OUTPUT_BYTES: Unit.BYTES,
    Metric.ESTIMATED_SPEND_USD: Unit.NONE,
    Metric.BUDGET_USED_PERCENT: Unit.PERCENT,
}
