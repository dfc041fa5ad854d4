"""What the pipeline needs from the outside world, as small interfaces.

The pipeline is written against these; ``adapters/`` implements them with boto3, Powertools and
requests, and the unit tests implement them with in-memory fakes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from backdrop_fn.images import ImageType


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    etag: str
    size: int
    version_id: str | None = None


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
        self, bucket: str, key: str, body: BinaryIO, *, content_type: str, metadata: dict[str, str]
    ) -> int:
        """Store ``body`` read to its end, without holding it whole; returns how many bytes it had."""


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


@dataclass(frozen=True)
class ApiImage:
    """The API's answer, as a stream from its first byte: kept on local disk as it arrives."""

    image_type: ImageType
    body: BinaryIO = field(repr=False)


@dataclass(frozen=True)
class KeptResult:
    """A paid answer held on local disk until it is stored, with what its output needs."""

    image_type: ImageType
    metadata: dict[str, str]
    open: Callable[[], BinaryIO] = field(repr=False)


class PaidResults(Protocol):
    """Paid answers kept until they are stored, so that retrying a failed write pays nothing."""

    def keep(self, pair_id: str, answer: ApiImage, metadata: dict[str, str]) -> KeptResult:
        """Read ``answer`` to its end into the keep. Raises OutputWriteFailed when it cannot."""

    def find(self, pair_id: str) -> KeptResult | None:
        """The answer kept for this pair by an earlier attempt, or None."""

    def forget(self, pair_id: str) -> None:
        """Drop the pair's answer: it is stored."""


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


class BackgroundApi(Protocol):
    def replace_background(self, payload: dict[str, Any], deadline: Deadline) -> ApiImage:
        """Make the paid call. Raises a BackdropError subclass on every failure."""


class FailureSink(Protocol):
    def send(self, body: str, *, error_class: str) -> None: ...


class Claims(Protocol):
    def run_once(
        self, identity: dict[str, Any], work: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Run ``work`` at most once per ``identity``; returns (its result, whether it was stored before).

        An exception from ``work`` releases the claim (a later attempt may run it again).
        Raises ClaimInProgress when another attempt holds the claim right now.
        """


class Metrics(Protocol):
    def add(self, name: str, value: float, unit: str = "Count") -> None: ...

    def add_failure(self, error_class: str) -> None: ...
