"""In-memory fakes of the pipeline's ports: behaviour, not mocks (they keep state and rules)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from PIL import Image

from backdrop_fn.errors import BackdropError, BudgetExceeded, ClaimInProgress, EventNotPublished
from backdrop_fn.image_metadata import srgb_profile
from backdrop_fn.images import PNG, ImageType
from backdrop_fn.outcome import Outcome
from backdrop_fn.ports import ApiImage, ObjectInfo, Purchases, SpendReservation, StoredObject
from backdrop_fn.pricing import price_of
from backdrop_fn.streams import JsonBody
from backdrop_fn.timing import Deadline
from backdrop_fn.vocabulary import ErrorClass, Metric


def picture(fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    """A real, tiny image in sRGB: the pipeline checks more than the first bytes, and stores an
    answer that says its colours as it came."""
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt, icc_profile=srgb_profile())
    return out.getvalue()


def noisy_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: as large as a real photo of that size."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), random.Random(1).randbytes(width * height * 3)).save(out, "PNG")
    return out.getvalue()


PNG_BYTES = picture("PNG")
JPEG_BYTES = picture("JPEG")
WEBP_BYTES = picture("WEBP")


# When the fakes' objects were uploaded, unless a test's clock says otherwise.
UPLOADED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FakeStore:
    """Buckets as dicts; ETags are content hashes, as S3's are for single-part uploads."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.outputs: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads: list[tuple[str, int | None]] = []
        self.fail_writes_with: BackdropError | None = None
        self.writes_to_fail: int | None = None  # with fail_writes_with: only this many more fail
        # Writes of one key that fail, one error for each.
        self.failing_writes: dict[str, list[BackdropError]] = {}
        # Every version written to each output key, oldest first, as in a versioned bucket.
        self.output_versions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.clock: Callable[[], datetime] = lambda: UPLOADED
        self.modified: dict[tuple[str, str], datetime] = {}

    def put(self, bucket: str, key: str, body: bytes | str | dict) -> str:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.objects[(bucket, key)] = body
        self.modified[(bucket, key)] = self.clock()
        return etag_of(body)

    def delete(self, bucket: str, key: str) -> None:
        self.objects.pop((bucket, key), None)

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        body = self.objects.get((bucket, key))
        if body is None:
            return None
        return ObjectInfo(
            bucket=bucket,
            key=key,
            etag=etag_of(body),
            size=len(body),
            last_modified=self.modified.get((bucket, key), UPLOADED),
        )

    def peek(self, bucket: str, key: str, *, first_bytes: int) -> tuple[ObjectInfo, bytes] | None:
        info = self.head(bucket, key)
        if info is None:
            return None
        self.reads.append((key, first_bytes))
        return info, self.objects[(bucket, key)][:first_bytes]

    def read(
        self, obj: ObjectInfo, *, first_bytes: int | None = None, last_bytes: int | None = None
    ) -> bytes:
        self.reads.append((obj.key, first_bytes or (-last_bytes if last_bytes else None)))
        body = self.objects[(obj.bucket, obj.key)]
        if first_bytes is not None:
            return body[:first_bytes]
        return body if last_bytes is None else body[-last_bytes:]

    def open(self, obj: ObjectInfo) -> BinaryIO:
        self.reads.append((obj.key, "stream"))
        if (obj.bucket, obj.key) in self.outputs:  # a stored result, read back for its renditions
            return io.BytesIO(self.outputs[(obj.bucket, obj.key)]["body"])
        return io.BytesIO(self.objects[(obj.bucket, obj.key)])

    def read_small(self, bucket: str, key: str, *, limit: int) -> StoredObject | None:
        info = self.head(bucket, key)
        if info is None:
            return None
        return StoredObject(info=info, body=self.objects[(bucket, key)][: limit + 1])

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        return sorted(key for (b, key) in self.objects if b == bucket and key.startswith(prefix))

    def presigned_url(self, obj: ObjectInfo, *, expires_in: int) -> str:
        return f"https://{obj.bucket}.s3.example/{obj.key}?expires={expires_in}"

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
        if self.failing_writes.get(key):
            raise self.failing_writes[key].pop(0)
        if self.fail_writes_with is not None and self.writes_to_fail != 0:
            if self.writes_to_fail is not None:
                self.writes_to_fail -= 1
            raise self.fail_writes_with
        data = body.read()
        versions = self.output_versions.setdefault((bucket, key), [])
        written = {
            "body": data,
            "content_type": content_type,
            "metadata": metadata,
            "tags": dict(tags or {}),
            "version_id": f"v{sum(map(len, self.output_versions.values())) + 1}",
        }
        versions.append(written)
        self.outputs[(bucket, key)] = written
        return len(data)

    def describe(self, bucket: str, key: str) -> tuple[ObjectInfo, dict[str, str]] | None:
        current = self.outputs.get((bucket, key))
        if current is None:
            return None
        info = ObjectInfo(bucket, key, etag_of(current["body"]), len(current["body"]), current["version_id"])
        return info, dict(current["metadata"])

    def delete_version(self, bucket: str, key: str, version_id: str) -> None:
        versions = self.output_versions.get((bucket, key), [])
        versions[:] = [version for version in versions if version["version_id"] != version_id]
        if versions:
            self.outputs[(bucket, key)] = versions[-1]
        else:
            self.outputs.pop((bucket, key), None)


def etag_of(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


@dataclass
class FakeApi:
    """Answers with ``image`` unless told to raise; remembers every payload it was sent."""

    image: bytes = PNG_BYTES
    image_type: ImageType = PNG
    errors: list[BackdropError] = field(default_factory=list)
    # Errors for the calls of one prompt only (a variant's), one for each such call.
    errors_for_prompt: dict[str, list[BackdropError]] = field(default_factory=dict)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    # Answers charged (a 200) whose body then fails with this error while it is read.
    lost_answers: list[BackdropError] = field(default_factory=list)
    # Runs inside the next call, before it answers: what happens elsewhere while a call is slow.
    while_answering: list[Callable[[], Any]] = field(default_factory=list)

    def replace_background(self, payload: dict[str, Any], deadline: Deadline) -> ApiImage:
        # What went over the wire: inline images as the base64 text the request carries.
        self.payloads.append(json.loads(JsonBody(payload).read()))
        if self.while_answering:
            self.while_answering.pop(0)()
        if self.errors:
            raise self.errors.pop(0)
        if self.errors_for_prompt.get(payload["prompt"]):
            raise self.errors_for_prompt[payload["prompt"]].pop(0)
        if self.lost_answers:
            return ApiImage(image_type=self.image_type, body=BreakingBody(self.lost_answers.pop(0)))
        return ApiImage(image_type=self.image_type, body=io.BytesIO(self.image))

    @property
    def calls(self) -> int:
        return len(self.payloads)


class BreakingBody(io.BytesIO):
    """The first bytes of an answer, then the failure of the transfer."""

    def __init__(self, error: BackdropError) -> None:
        super().__init__(b"\x89PNG\r\n\x1a\n")
        self._error = error

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if not data:
            raise self._error
        return data


@dataclass
class FakeFailureSink:
    sent: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    # Sends that fail (a DLQ outage), one error for each.
    outages: list[BackdropError] = field(default_factory=list)

    def send(self, body: str, *, error_class: ErrorClass) -> None:
        if self.outages:
            raise self.outages.pop(0)
        self.sent.append((json.loads(body), error_class.value))

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for record, _ in self.sent]


@dataclass
class RecordingBus:
    """The event bus: what it took, by detail type, and how many puts to refuse first."""

    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refusals: int = 0

    def put(self, detail_type: str, detail: str) -> None:
        if self.refusals:
            self.refusals -= 1
            raise EventNotPublished("the event bus 'default' refused the event: ThrottlingException")
        self.published.append((detail_type, json.loads(detail)))

    def details(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, detail in self.published if kind == detail_type]


@dataclass
class InMemoryPendingEvents:
    kept: dict[str, tuple[str, str]] = field(default_factory=dict)

    def keep(self, event_id: str, detail_type: str, detail: str) -> None:
        self.kept[event_id] = (detail_type, detail)

    def take(self, event_id: str) -> tuple[str, str] | None:
        return self.kept.get(event_id)

    def forget(self, event_id: str) -> None:
        self.kept.pop(event_id, None)


class InMemoryClaims:
    """The Powertools idempotency semantics the pipeline relies on, in a dict."""

    def __init__(self) -> None:
        self.done: dict[str, Outcome] = {}
        self.in_progress: set[str] = set()

    def register_lambda_context(self, context: Any) -> None:
        pass

    def run_once(self, identity: dict[str, Any], work: Callable[[], Outcome]) -> Outcome:
        key = json.dumps(identity, sort_keys=True)
        if key in self.done:
            return self.done[key].as_duplicate()
        if key in self.in_progress:
            raise ClaimInProgress("in progress")
        self.in_progress.add(key)
        try:
            result = work()
        finally:
            self.in_progress.discard(key)
        self.done[key] = result
        return result


class InMemoryLedger:
    """The purchase ledger's conditional counter, in a dict."""

    def __init__(self) -> None:
        self.counts: dict[str, Purchases] = {}

    def reserve(self, purchase_id: str, *, limit: int) -> Purchases:
        now = self.counts.get(purchase_id, Purchases(paid=0, lost=0))
        if now.paid >= limit or now.verdict is not None:
            return dataclasses.replace(now, granted=False)
        self.counts[purchase_id] = dataclasses.replace(now, paid=now.paid + 1)
        return self.counts[purchase_id]

    def release(self, purchase_id: str) -> None:
        now = self.counts[purchase_id]
        self.counts[purchase_id] = dataclasses.replace(now, paid=now.paid - 1)

    def count_lost(self, purchase_id: str, lost: int) -> None:
        self.counts[purchase_id] = dataclasses.replace(self.counts[purchase_id], lost=lost)

    def keep_verdict(self, purchase_id: str, record: str) -> None:
        now = self.counts.get(purchase_id, Purchases(paid=0, lost=0))
        self.counts[purchase_id] = dataclasses.replace(now, verdict=record)

    def counted(self, purchase_id: str) -> Purchases | None:
        return self.counts.get(purchase_id, Purchases(paid=0, lost=0))

    def paid(self) -> int:
        return sum(purchases.paid for purchases in self.counts.values())


class InMemorySpendGuard:
    """The spend guard with one cap, in a list of what is reserved."""

    def __init__(self, cap_usd: float | None = None) -> None:
        self.cap_usd = cap_usd
        self.reserved: list[SpendReservation] = []

    def reserve(self, rendering_speed: str) -> SpendReservation:
        price = round(price_of(rendering_speed) * 1_000_000)
        spent = sum(reservation.micro_usd for reservation in self.reserved)
        if self.cap_usd is not None and spent + price > self.cap_usd * 1_000_000:
            raise BudgetExceeded(
                f"the daily budget is spent: ${spent / 1_000_000:.2f} of ${self.cap_usd:.2f}"
            )
        reservation = SpendReservation(
            "2026-12", 1, price, rendering_speed, spent + price, spent + price, None
        )
        self.reserved.append(reservation)
        return reservation

    def release(self, reservation: SpendReservation) -> None:
        self.reserved.remove(reservation)

    @property
    def spent_usd(self) -> float:
        return sum(reservation.usd for reservation in self.reserved)


class InMemoryOwners:
    """The output-owners port's conditional write, in a dict."""

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}

    def claim(self, output_stem: str, image: str, *, replacing: str | None = None) -> str | None:
        current = self.owners.get(output_stem)
        if current in (None, image, replacing):
            self.owners[output_stem] = image
            return None
        return current


@dataclass
class RecordingMetrics:
    values: list[tuple[str, float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, metric: Metric, value: float) -> None:
        self.values.append((metric.value, value, metric.unit.value))

    def add_failure(self, error_class: ErrorClass) -> None:
        self.failures.append(error_class.value)

    def total(self, name: str) -> float:
        return sum(value for metric, value, _ in self.values if metric == name)


class FakeClock:
    """A monotonic clock that only sleeping moves: waits cost a test no time."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
