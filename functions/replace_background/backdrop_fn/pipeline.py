"""One object named by an event → its pair → checks → one paid call → output, or one DLQ record.

Pure orchestration over the ports in ``ports.py``: no boto3, no HTTP, no environment here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from backdrop_fn import images, keys
from backdrop_fn.config import Settings
from backdrop_fn.errors import (
    BackdropError,
    ClaimInProgress,
    InternalError,
    InvalidImage,
    InvalidSidecar,
    MissingObject,
    NotEnoughTime,
    OutputWriteFailed,
)
from backdrop_fn.events import WorkItem
from backdrop_fn.failures import FailureRecord, FailureSource
from backdrop_fn.ports import (
    BackgroundApi,
    Claims,
    Deadline,
    FailureSink,
    InlineImage,
    KeptResult,
    Metrics,
    ObjectInfo,
    ObjectStore,
    PaidResults,
    StoredObject,
)
from backdrop_fn.sidecar import MAX_SIDECAR_BYTES, SEED_MAX, SEED_MIN, Sidecar, is_url, parse_sidecar

logger = logging.getLogger(__name__)

# S3 refuses a PUT whose user metadata (names and values, in bytes) is larger than this,
# and keys longer than this many bytes.
S3_METADATA_LIMIT = 2048
S3_KEY_LIMIT = 1024
# A presigned input URL must outlive the API call, and no more (CONTRACT.md §4: at most 15 min).
PRESIGNED_URL_SECONDS = 600
# An unrecognised message is kept in its DLQ record up to this many characters: even escaped
# (6 bytes a character at worst) the record stays under the 256 KiB of an SQS message.
UNRECOGNISED_EVENT_CHARS = 30_000


class Status(StrEnum):
    PROCESSED = "processed"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    AWAITING_SIDECAR = "awaiting_sidecar"
    AWAITING_IMAGE = "awaiting_image"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Outcome:
    status: Status
    image_key: str | None = None
    output_key: str | None = None
    error_class: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "image_key": self.image_key,
            "output_key": self.output_key,
            "error_class": self.error_class,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            status=Status(data["status"]),
            image_key=data.get("image_key"),
            output_key=data.get("output_key"),
            error_class=data.get("error_class"),
        )


@dataclass(frozen=True)
class Invocation:
    """What the pipeline needs to know of the Lambda invocation it runs in."""

    deadline: Deadline
    request_id: str | None


@dataclass(frozen=True)
class _Pair:
    image: ObjectInfo
    image_head: bytes = field(repr=False)  # its first bytes, read with its version
    sidecar: StoredObject | None = None  # None: the image is processed with DEFAULT_PROMPT

    def identity(self, default_prompt: str | None) -> dict[str, Any]:
        """What makes a result: both halves' versions (ETags), not the message that carried them."""
        return {
            "bucket": self.image.bucket,
            "image_key": self.image.key,
            "image_etag": self.image.etag,
            "sidecar_key": self.sidecar.info.key if self.sidecar else None,
            "sidecar_etag": self.sidecar.info.etag if self.sidecar else None,
            "default_prompt_sha256": None if self.sidecar else _sha256(default_prompt or ""),
        }

    def failure_source(self) -> FailureSource:
        return FailureSource(
            bucket=self.image.bucket,
            key=self.image.key,
            etag=self.image.etag,
            sidecar_key=self.sidecar.info.key if self.sidecar else None,
        )


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore,
        api: BackgroundApi,
        failures: FailureSink,
        claims: Claims,
        metrics: Metrics,
        paid: PaidResults,
        random_seed: Callable[[], int] = lambda: random.randint(SEED_MIN, SEED_MAX),
        min_seconds_to_start: float = 30.0,
    ) -> None:
        self._settings = settings
        self._store = store
        self._api = api
        self._failures = failures
        self._claims = claims
        self._metrics = metrics
        self._paid = paid
        self._random_seed = random_seed
        # An API call takes ~15 s and the output write needs some more: less than this left, and a
        # pair is not started (its message comes back for a fresh invocation).
        self._min_seconds_to_start = min_seconds_to_start

    def process(self, item: WorkItem, invocation: Invocation) -> list[Outcome]:
        """Handle one object named by an event.

        Returns what became of each image it concerns. Raises a transient BackdropError, on an
        attempt that is not the last, when the item must be tried again later.
        """
        if item.bucket == self._settings.output_bucket:
            # Our own output, seen because the buckets were wired wrong: answering it would call
            # the API on every result, forever. Nothing here can be right, so nothing is done.
            logger.error("ignored: an event from the OUTPUT bucket", extra={"key": item.key})
            return [Outcome(Status.IGNORED)]
        kind = keys.classify(item.key)
        if kind is keys.KeyKind.IGNORED:
            logger.info("ignored: not an image or a sidecar", extra={"key": item.key})
            return [Outcome(Status.IGNORED)]
        try:
            if kind is keys.KeyKind.IMAGE:
                outcome = self._process_image(item, item.key, invocation)
                return [outcome or self._missing_image(item, invocation)]
            image_keys = self._images_owning(item.bucket, item.key)
        except BackdropError as error:
            return [self._fail_unclaimed(error, item, invocation)]
        outcomes = []
        for image_key in image_keys:
            try:
                found = self._process_image(item, image_key, invocation)
            except BackdropError as error:
                found = self._fail_unclaimed(error, item, invocation, image_key=image_key)
            if found is not None:
                outcomes.append(found)
        if not outcomes:
            logger.info("sidecar waits for its image", extra={"key": item.key})
            self._metrics.add("AwaitingImage", 1)
            return [Outcome(Status.AWAITING_IMAGE)]
        return outcomes

    # -- resolving the pair -------------------------------------------------------------------

    def _images_owning(self, bucket: str, sidecar_key: str) -> list[str]:
        """The images that may own this sidecar: the exact one is not looked up here (its own read
        tells whether it exists), the stem ones are found by listing."""
        exact, stem_prefix = keys.image_places_for_sidecar(sidecar_key)
        found = [exact] if exact else []
        found.extend(
            key
            for key in self._store.list_keys(bucket, stem_prefix)
            if key != exact and keys.may_own_sidecar(key, sidecar_key)
        )
        return found

    def _find_sidecar(self, bucket: str, image_key: str) -> StoredObject | None:
        for candidate in keys.sidecar_candidates(image_key):
            found = self._store.read_small(bucket, candidate, limit=MAX_SIDECAR_BYTES)
            if found is not None:
                return found
        return None

    def _process_image(self, item: WorkItem, image_key: str, invocation: Invocation) -> Outcome | None:
        """The pair of ``image_key``, processed once; None when there is no such image."""
        peeked = self._store.peek(item.bucket, image_key, first_bytes=images.HEAD_BYTES)
        if peeked is None:
            return None
        image, image_head = peeked
        sidecar = self._find_sidecar(item.bucket, image_key)
        if sidecar is None and self._settings.default_prompt is None:
            logger.info("image waits for its sidecar", extra={"key": image_key})
            self._metrics.add("AwaitingSidecar", 1)
            return Outcome(Status.AWAITING_SIDECAR, image_key=image_key)
        if invocation.deadline.remaining() < self._min_seconds_to_start:
            # Not an attempt: nothing is claimed or called, and the message comes back whole.
            raise NotEnoughTime(f"{invocation.deadline.remaining():.0f} s left: too little to call the API")
        pair = _Pair(image=image, image_head=image_head, sidecar=sidecar)
        identity = pair.identity(self._settings.default_prompt)
        outcome = self._once(identity, lambda: self._run(pair, item, invocation))
        if item.replay_of and outcome.status is Status.DUPLICATE and outcome.error_class is not None:
            # A redrive of a failure of these very versions: the user asks for it again, once per
            # DLQ record. Had the pair been fixed and processed since, it stays a duplicate.
            replay = {**identity, "replay_of": item.replay_of}
            outcome = self._once(replay, lambda: self._run(pair, item, invocation))
        return outcome

    def _missing_image(self, item: WorkItem, invocation: Invocation) -> Outcome:
        # Deleted between upload and processing: one DLQ record however often the event comes.
        identity = {
            "bucket": item.bucket,
            "missing_key": item.key,
            "event_etag": item.etag,
            "replay_of": item.replay_of,
        }
        error = MissingObject(f"the image {item.key!r} is no longer in bucket {item.bucket!r}")
        source = FailureSource(bucket=item.bucket, key=item.key, etag=item.etag)
        return self._once(
            identity, lambda: self._dead_letter(error, source, item.event, item.attempt, invocation)
        )

    def _once(self, identity: dict[str, Any], work: Callable[[], dict[str, Any]]) -> Outcome:
        try:
            result, stored_before = self._claims.run_once(identity, work)
        except ClaimInProgress:
            # Another invocation holds this very pair (same versions) right now. Its message stays
            # on the queue until it finishes, and comes back if it crashes: ours adds nothing.
            logger.info("duplicate: this pair is being processed by another invocation")
            self._metrics.add("DuplicatesSkipped", 1)
            return Outcome(Status.DUPLICATE)
        outcome = Outcome.from_dict(result)
        if stored_before:
            logger.info("duplicate: this pair was handled before", extra={"image_key": outcome.image_key})
            self._metrics.add("DuplicatesSkipped", 1)
            return Outcome(
                Status.DUPLICATE,
                image_key=outcome.image_key,
                output_key=outcome.output_key,
                error_class=outcome.error_class,
            )
        return outcome

    # -- the claimed work -----------------------------------------------------------------------

    def _run(self, pair: _Pair, item: WorkItem, invocation: Invocation) -> dict[str, Any]:
        """Everything done under the claim. Returns the outcome to remember for duplicates."""
        try:
            return self._replace_background(pair, invocation)
        except BackdropError as error:
            if _comes_back_later(error, item):
                logger.warning(
                    "transient failure, the message will come back",
                    extra={"key": pair.image.key, "error_class": error.error_class, "attempt": item.attempt},
                )
                raise
            return self._dead_letter(error, pair.failure_source(), item.event, item.attempt, invocation)
        except Exception as exc:  # a bug must still end in exactly one DLQ record
            logger.exception("unexpected failure", extra={"key": pair.image.key})
            error = InternalError(f"unexpected {type(exc).__name__}: {exc}")
            return self._dead_letter(error, pair.failure_source(), item.event, item.attempt, invocation)

    def _replace_background(self, pair: _Pair, invocation: Invocation) -> dict[str, Any]:
        pair_id = _sha256(json.dumps(pair.identity(self._settings.default_prompt), sort_keys=True))
        answer = self._paid.find(pair_id)
        if answer is None:
            answer = self._buy_answer(pair, pair_id, invocation)
        else:
            logger.info("storing the answer paid for by an earlier attempt", extra={"key": pair.image.key})
            self._metrics.add("PaidResultsReused", 1)
        out_key = keys.output_key(self._settings.output_prefix, pair.image.key, answer.image_type.extension)
        try:
            with answer.open() as body:
                written = self._store.write_output(
                    self._settings.output_bucket,
                    out_key,
                    body,
                    content_type=answer.image_type.content_type,
                    metadata=answer.metadata,
                )
        except OutputWriteFailed as error:
            # Retried like any passing trouble (CONTRACT.md §3); the kept answer makes the retry free.
            raise OutputWriteFailed(
                f"the API's answer was paid for but could not be stored: {error.message}; "
                "it is kept in this container, where a retry or a redrive stores it without another call",
                retryable=error.retryable,
            ) from None
        self._paid.forget(pair_id)
        self._metrics.add("ImagesProcessed", 1)
        self._metrics.add("OutputBytes", written, "Bytes")
        logger.info(
            "processed", extra={"key": pair.image.key, "output_key": out_key, "output_bytes": written}
        )
        return Outcome(Status.PROCESSED, image_key=pair.image.key, output_key=out_key).as_dict()

    def _buy_answer(self, pair: _Pair, pair_id: str, invocation: Invocation) -> KeptResult:
        """Check everything, make the paid call, and keep its answer until it is stored."""
        sidecar = self._sidecar_of(pair)
        seed = sidecar.seed if sidecar.seed is not None else self._random_seed()
        metadata = self._output_metadata(pair, sidecar, seed)
        payload = {
            "image": self._image_field(pair.image, "image", head=pair.image_head),
            "prompt": sidecar.prompt,
            "rendering_speed": sidecar.rendering_speed,
            "magic_prompt": sidecar.magic_prompt,
            "seed": seed,
            "style_codes": list(sidecar.style_codes or []),
            "style_reference_images": [
                self._style_reference(pair.image.bucket, reference, index)
                for index, reference in enumerate(sidecar.style_reference_images or [])
            ],
        }
        if sidecar.color_palette is not None:
            payload["color_palette"] = sidecar.color_palette.model_dump(exclude_none=True)

        self._check_output_key(pair.image.key)

        result = self._api.replace_background(payload, invocation.deadline)
        with result.body:
            return self._paid.keep(pair_id, result, metadata)

    def _sidecar_of(self, pair: _Pair) -> Sidecar:
        if pair.sidecar is None:
            sidecar = Sidecar(prompt=self._settings.default_prompt or "")
        elif pair.sidecar.info.size > MAX_SIDECAR_BYTES:
            size = pair.sidecar.info.size
            raise InvalidSidecar(f"the sidecar is {size:,} bytes; the limit is {MAX_SIDECAR_BYTES:,}")
        else:
            sidecar = parse_sidecar(pair.sidecar.body)
        if "rendering_speed" not in sidecar.model_fields_set:
            sidecar = sidecar.model_copy(update={"rendering_speed": self._settings.default_rendering_speed})
        return sidecar

    def _check_image(self, obj: ObjectInfo, what: str, head: bytes | None = None) -> None:
        """Check size, type, dimensions and completeness from the image's first and last bytes.

        ``head``: its first bytes when they were read already (with its version, in one request).
        """
        if obj.size == 0:
            raise InvalidImage(f"{what} {obj.key!r} is empty")
        if obj.size > self._settings.max_image_bytes:
            raise InvalidImage(
                f"{what} {obj.key!r} is {obj.size:,} bytes; the limit (MAX_IMAGE_BYTES) is "
                f"{self._settings.max_image_bytes:,}"
            )
        if head is not None and len(head) >= obj.size:
            tail = head[-images.TAIL_BYTES :]  # the head is the whole image
        elif head is None and obj.size <= images.HEAD_BYTES + images.TAIL_BYTES:
            whole = self._store.read(obj)
            head, tail = whole[: images.HEAD_BYTES], whole[-images.TAIL_BYTES :]
        else:
            head = head if head is not None else self._store.read(obj, first_bytes=images.HEAD_BYTES)
            tail = self._store.read(obj, last_bytes=images.TAIL_BYTES)
        why = images.problem(head, tail, obj.size)
        if why:
            raise InvalidImage(f"{what} {obj.key!r} is {why}")

    def _image_field(self, obj: ObjectInfo, what: str, head: bytes | None = None) -> str | InlineImage:
        """A presigned URL the API fetches (url mode), or the bytes, streamed into the request."""
        self._check_image(obj, what, head)
        if self._settings.image_transfer == "base64":
            return InlineImage(size=obj.size, open=lambda: self._store.open(obj))
        return self._store.presigned_url(obj, expires_in=PRESIGNED_URL_SECONDS)

    def _style_reference(self, bucket: str, reference: str, index: int) -> str | InlineImage:
        if is_url(reference):
            return reference
        obj = self._store.head(bucket, reference)
        if obj is None:
            raise MissingObject(
                f"style_reference_images[{index}]: no object {reference!r} in bucket {bucket!r}"
            )
        return self._image_field(obj, f"style_reference_images[{index}]")

    def _check_output_key(self, image_key: str) -> None:
        # The longest output extension, so that whatever type the API returns, the key fits.
        longest = keys.output_key(self._settings.output_prefix, image_key, "webp")
        if len(longest.encode("utf-8")) > S3_KEY_LIMIT:
            raise OutputWriteFailed(
                f"the output key would be {len(longest.encode('utf-8')):,} bytes, over S3's "
                f"{S3_KEY_LIMIT:,}: shorten the image key or OUTPUT_PREFIX",
                retryable=False,
            )

    def _output_metadata(self, pair: _Pair, sidecar: Sidecar, seed: int) -> dict[str, str]:
        """The contract's metadata first, then ours while there is room, then the sidecar's.

        S3 takes 2 KB of user metadata. A long non-ASCII key grows threefold when encoded, so the
        nice-to-have entries give way before the sidecar's own metadata is blamed.
        """
        metadata = {
            "source-bucket": pair.image.bucket,
            "source-key": keys.metadata_value(pair.image.key),
            "source-etag": pair.image.etag,
            "prompt-sha256": _sha256(sidecar.prompt),
            "rendering-speed": sidecar.rendering_speed,
            "seed": str(seed),
        }
        if _metadata_size(metadata) > S3_METADATA_LIMIT:
            raise InvalidImage(
                f"the image key is too long to record as S3 metadata once percent-encoded "
                f"({_metadata_size(metadata):,} of {S3_METADATA_LIMIT:,} bytes): shorten it"
            )
        extras = {"magic-prompt": sidecar.magic_prompt}
        if pair.sidecar is not None:
            extras["sidecar-etag"] = pair.sidecar.info.etag
            extras["sidecar-key"] = keys.metadata_value(pair.sidecar.info.key)
        for name, value in extras.items():
            if _metadata_size(metadata) + len(name) + len(value) <= S3_METADATA_LIMIT:
                metadata[name] = value
        own = {name.lower(): keys.metadata_value(value) for name, value in (sidecar.metadata or {}).items()}
        if _metadata_size(metadata) + _metadata_size(own) > S3_METADATA_LIMIT:
            raise InvalidSidecar(
                f"metadata: {_metadata_size(own):,} bytes once encoded, but only "
                f"{S3_METADATA_LIMIT - _metadata_size(metadata):,} of S3's {S3_METADATA_LIMIT:,} "
                "are left after the image's own; shorten the sidecar's metadata"
            )
        return {**metadata, **own}

    # -- failures -------------------------------------------------------------------------------

    def reject(self, reason: str, raw: str, *, attempt: int, invocation: Invocation) -> Outcome:
        """An event of no shape we accept: dead-lettered as it came, since no retry can fix it."""
        error = InternalError(f"unrecognised event: {reason}")
        event = {"unrecognised": raw[:UNRECOGNISED_EVENT_CHARS]}
        return Outcome.from_dict(self._dead_letter(error, FailureSource(), event, attempt, invocation))

    def _dead_letter(
        self,
        error: BackdropError,
        source: FailureSource,
        event: dict[str, Any],
        attempts: int,
        invocation: Invocation,
    ) -> dict[str, Any]:
        record = FailureRecord.from_error(
            error, source=source, attempts=attempts, request_id=invocation.request_id, event=event
        )
        self._failures.send(record.to_json(), error_class=error.error_class)
        self._metrics.add_failure(error.error_class)
        logger.warning(
            "failed: sent to the DLQ",
            extra={"key": source.key, "error_class": error.error_class, "error": error.message},
        )
        return Outcome(Status.FAILED, image_key=source.key, error_class=error.error_class).as_dict()

    def _fail_unclaimed(
        self, error: BackdropError, item: WorkItem, invocation: Invocation, *, image_key: str | None = None
    ) -> Outcome:
        """A failure before the pair is known (an S3 read failing): retry it, or dead-letter it."""
        if _comes_back_later(error, item):
            raise error
        # The event's ETag is the image's only when the event is the image's.
        etag = item.etag if image_key in (None, item.key) else None
        source = FailureSource(bucket=item.bucket, key=image_key or item.key, etag=etag)
        return Outcome.from_dict(self._dead_letter(error, source, item.event, item.attempt, invocation))


def _comes_back_later(error: BackdropError, item: WorkItem) -> bool:
    """Whether the message should be retried rather than dead-lettered now."""
    if isinstance(error, NotEnoughTime):
        # Not an attempt at all, so a queued message always comes back; a direct event has no
        # later attempt to wait for, and is dead-lettered (CONTRACT.md §3).
        return item.message_id is not None
    return error.retryable and not item.final_attempt


def _metadata_size(metadata: dict[str, str]) -> int:
    return sum(len(name.encode("utf-8")) + len(value.encode("utf-8")) for name, value in metadata.items())


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
