"""What the pipeline needs from the outside world, as small interfaces.

The pipeline is written against these; ``adapters/`` implements them with boto3, Powertools and
requests, and the unit tests implement them with in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from backdrop_fn.images import ImageType
from backdrop_fn.outcome import Outcome
from backdrop_fn.timing import Deadline
from backdrop_fn.vocabulary import ErrorClass, Metric


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    etag: str
    size: int
    version_id: str | None = None
    last_modified: datetime | None = None


@dataclass(frozen=True)
class StoredObject:
    info: ObjectInfo
    body: bytes


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's current version, or None when there is no such object."""

    def peek(self, bucket: str, key: str, *, first_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        """The object's current version and its first bytes, in one request; None if absent."""

    def read(
        self, obj: ObjectInfo, *, first_bytes: int | None = None, last_bytes: int | None = None
    ) -> bytes:
        """The bytes of exactly that version (or only its first, or its last, so many bytes)."""

    def open(self, obj: ObjectInfo) -> BinaryIO:
        """Exactly that version, as a stream to read once (the caller closes it)."""

    def read_small(self, bucket: str, key: str, *, limit: int) -> StoredObject | None:
        """A small object whole, or its first ``limit + 1`` bytes when it is larger; None if absent."""

    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...

    def presigned_url(self, obj: ObjectInfo, *, expires_in: int) -> str: ...

    def write_output(
        self,
        bucket: str,
        key: str,
        body: BinaryIO,
        *,
        content_type: str,
        metadata: dict[str, str],
        tags: dict[str, str] | None = None,
    ) -> int:
        """Store ``body`` read to its end, without holding it whole, with its object ``tags``;
        returns how many bytes it had."""

    def describe(self, bucket: str, key: str) -> tuple[ObjectInfo, dict[str, str]] | None:
        """The object's current version with its user metadata, or None when there is none."""

    def delete_version(self, bucket: str, key: str, version_id: str) -> None:
        """Remove exactly that version: the one before it, if any, becomes current again."""


@dataclass(frozen=True)
class ApiKey:
    """The Segmind key. Its repr never shows the value, so a stray log line cannot leak it."""

    value: str = field(repr=False)


class ApiKeySource(Protocol):
    def current(self) -> ApiKey:
        """The cached key (read from the secret store at most once per cache period)."""

    def refreshed(self) -> ApiKey:
        """The key read again from the secret store, for a 401/403 after a rotation."""


@dataclass(frozen=True)
class InlineImage:
    """An image sent inside the request (base64 mode), read from the store while the request is
    sent: the function never holds it whole."""

    size: int
    open: Callable[[], BinaryIO] = field(repr=False)


class Readable(Protocol):
    """A stream read once, from its first byte to its last."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ApiImage:
    """The API's answer, as a stream from its first byte: kept on local disk as it arrives."""

    image_type: ImageType
    body: Readable = field(repr=False)


class BackgroundApi(Protocol):
    def replace_background(self, payload: dict[str, Any], deadline: Deadline) -> ApiImage:
        """Make the paid call. Raises a BackdropError subclass on every failure."""


@dataclass(frozen=True)
class KeptAnswer:
    """A paid answer kept until it is stored, with the metadata its output takes.

    ``durable`` is False for one held in memory because the disk had no room: it outlives
    neither this invocation nor a failed write.
    """

    image_type: ImageType
    metadata: dict[str, str]
    open: Callable[[], BinaryIO] = field(repr=False)
    durable: bool = True


class KeptAnswers(Protocol):
    """Paid answers kept until they are stored, so that retrying a failed write pays nothing."""

    def keep(self, pair_id: str, answer: ApiImage, metadata: dict[str, str]) -> KeptAnswer:
        """Read ``answer`` to its end into the keep; held in memory (not durable) when the keep has
        no room for it. Raises what reading the answer raises."""

    def find(self, pair_id: str) -> KeptAnswer | None:
        """The answer kept for this pair by an earlier attempt, or None."""

    def forget(self, pair_id: str) -> None:
        """Drop the pair's answer: it is stored."""


class OutputOwners(Protocol):
    """Which image an output key belongs to: the first image processed for it, while it exists."""

    def claim(self, output_stem: str, image: str, *, replacing: str | None = None) -> str | None:
        """Make ``image`` (``bucket/key``) the owner of ``output_stem`` (``bucket/key`` of the
        output, without its extension) when no image owns it yet, when it owns it already, or
        when ``replacing`` does. Returns None when ``image`` owns it now, or else the owner."""


@dataclass(frozen=True)
class Purchases:
    """What the ledger counts for one pair: calls that may have been charged, and answers lost."""

    paid: int
    lost: int
    # False: no purchase was counted, because ``limit`` were already, or a verdict waits.
    granted: bool = True
    # The DLQ record of a charged answer that failed, kept until it is sent: no need to buy again.
    verdict: str | None = None


class PurchaseLedger(Protocol):
    """How often each pair was bought, across every container (docs/REFERENCE.md#retries)."""

    def reserve(self, purchase_id: str, *, limit: int) -> Purchases:
        """Count one more purchase, unless ``limit`` are counted already or a verdict waits."""

    def release(self, purchase_id: str) -> None:
        """The reserved call was not charged: it no longer counts."""

    def count_lost(self, purchase_id: str, lost: int) -> None:
        """``lost`` of the purchases counted so far lost their answer."""

    def keep_verdict(self, purchase_id: str, record: str) -> None:
        """The DLQ record of a charged answer that failed, for a later attempt to send unpaid."""

    def counted(self, purchase_id: str) -> Purchases | None:
        """What is counted for the pair now; None when the ledger cannot say."""


@dataclass(frozen=True)
class SpendReservation:
    """One call's estimated price, reserved against its day's and month's spend (UTC)."""

    month: str  # "2026-12"
    day: int
    micro_usd: int
    rendering_speed: str
    spent_today_micro_usd: int  # with this call
    spent_this_month_micro_usd: int
    used_percent: float | None  # of the closer cap; None without one

    @property
    def usd(self) -> float:
        return self.micro_usd / 1_000_000


class SpendGuard(Protocol):
    """The estimated spend of every container, against the caps (docs/REFERENCE.md#budget)."""

    def reserve(self, rendering_speed: str) -> SpendReservation:
        """Reserve one call's price. Raises BudgetExceeded, reserving nothing, when it would pass
        a cap; InfrastructureUnavailable when the spend cannot be read."""

    def release(self, reservation: SpendReservation) -> None:
        """The call was not charged: its price no longer counts."""


class RequestPace(Protocol):
    """Turns to send a request to the API, shared by every container (docs/REFERENCE.md#pacing)."""

    def take_turn(self, max_wait_seconds: float) -> None:
        """Wait for this container's next turn. Raises NoTurnInTime, taking no turn, when it is
        more than ``max_wait_seconds`` away; InfrastructureUnavailable when turns cannot be read."""


class EventBus(Protocol):
    """Where completion events go (EventBridge, ``EVENT_BUS_NAME``)."""

    def put(self, detail_type: str, detail: str) -> None:
        """Publish one event. Raises EventNotPublished when the bus did not take it."""


class PendingEvents(Protocol):
    """Completion events the bus did not take, kept until they are published."""

    def keep(self, event_id: str, detail_type: str, detail: str) -> None:
        """Raises InfrastructureUnavailable when it cannot be kept."""

    def take(self, event_id: str) -> tuple[str, str] | None:
        """(detail type, detail) of a kept event, or None once it is published (or expired)."""

    def forget(self, event_id: str) -> None:
        """It was published; best effort."""


class FailureSink(Protocol):
    def send(self, body: str, *, error_class: ErrorClass) -> None: ...


class Claims(Protocol):
    def register_lambda_context(self, context: Any) -> None:
        """The invocation whose deadline an "in progress" claim expires with."""

    def run_once(self, identity: dict[str, Any], work: Callable[[], Outcome]) -> Outcome:
        """Run ``work`` at most once per ``identity``: its outcome, or, when it ran before, that
        outcome as a duplicate (``Outcome.as_duplicate``).

        An exception from ``work`` releases the claim (a later attempt may run it again).
        Raises ClaimInProgress when another attempt holds the claim right now.
        """


class WorkQueue(Protocol):
    def delay(self, receipt_handle: str, attempt: int, *, at_least_seconds: float = 0) -> None:
        """Keep a failed work-queue message away for its backoff, and at least ``at_least_seconds``."""

    def requeue(self, body: str, *, attempts_before: int, delay_seconds: int) -> None:
        """Send the message again, in ``delay_seconds``, as a new one that has made
        ``attempts_before`` attempts."""


class Metrics(Protocol):
    def add(self, metric: Metric, value: float) -> None: ...

    def add_failure(self, error_class: ErrorClass) -> None: ...
