"""One object named by an event → its pair → checks → one paid call → output, or one DLQ record.

Pure orchestration over the ports in ``ports.py``: no boto3, no HTTP, no environment here. This
module routes an event to its pairs and claims each pair once; each job has its own module:
``pairing`` finds the pair, ``purchase`` does the claimed work (``api_request`` checks and builds
the paid request, ``output`` names and writes the result), ``dead_lettering`` records a failure,
and ``delivery`` decides whether a failure comes back later.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from backdrop_fn import keys
from backdrop_fn.api_request import ApiRequest
from backdrop_fn.completion import CompletionEvents
from backdrop_fn.config import Settings
from backdrop_fn.dead_lettering import DeadLetters
from backdrop_fn.delivery import Delivery
from backdrop_fn.errors import (
    BackdropError,
    ClaimInProgress,
    ClaimNotReleased,
    EventNotPublished,
    MissingObject,
    NotEnoughTime,
    PairSettling,
)
from backdrop_fn.events import UnrecognisedEvent, WorkItem
from backdrop_fn.failures import FailureSource
from backdrop_fn.outcome import Outcome, Status
from backdrop_fn.output import Output
from backdrop_fn.pairing import NoRoomForSidecar, Pair, PairFinder
from backdrop_fn.ports import (
    BackgroundApi,
    Claims,
    EventBus,
    FailureSink,
    KeptAnswers,
    Metrics,
    ObjectStore,
    OutputOwners,
    PendingEvents,
    PurchaseLedger,
    SpendGuard,
)
from backdrop_fn.purchase import Purchase
from backdrop_fn.rendition_output import RenditionOutputs
from backdrop_fn.sidecar import SEED_MAX, SEED_MIN
from backdrop_fn.timing import TimeBudget
from backdrop_fn.vocabulary import Metric

logger = logging.getLogger(__name__)


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
        kept: KeptAnswers,
        owners: OutputOwners,
        ledger: PurchaseLedger,
        spend: SpendGuard,
        bus: EventBus,
        pending_events: PendingEvents,
        random_seed: Callable[[], int] = lambda: random.randint(SEED_MIN, SEED_MAX),
        budget: TimeBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._output_bucket = settings.output_bucket
        self._output_prefix = settings.output_prefix
        self._outputs_among_inputs = settings.outputs_share_an_input_bucket
        self._settle_seconds = settings.pair_settle_seconds
        self._wall_clock = wall_clock
        self._budget = budget or TimeBudget()
        self._pairs = PairFinder(store, settings.default_prompt)
        self._events = CompletionEvents(bus, pending_events, metrics)
        self._dead_letters = DeadLetters(failures, metrics, self._events)
        self._request = ApiRequest(settings, store, self._budget)
        self._purchase = Purchase(
            self._request,
            Output(settings, store, owners),
            RenditionOutputs(settings, store),
            self._pairs,
            api=api,
            kept=kept,
            ledger=ledger,
            spend=spend,
            dead_letters=self._dead_letters,
            events=self._events,
            metrics=metrics,
            random_seed=random_seed,
            budget=self._budget,
            sleep=sleep,
        )
        self._claims = claims
        self._metrics = metrics

    def process(self, item: WorkItem, delivery: Delivery) -> list[Outcome]:
        """Handle one object named by an event.

        Returns what became of each image it concerns. Raises a transient BackdropError when the
        delivery should come back later (``Delivery.comes_back``).
        """
        if self._is_own_output(item):
            # Answering it would call the API on every result, forever.
            self._metrics.add(Metric.OUTPUT_EVENTS_IGNORED, 1)
            return [Outcome(status=Status.IGNORED)]
        kind = keys.classify(item.key)
        if kind is keys.KeyKind.IGNORED:
            logger.info("ignored: not an image or a sidecar", extra={"key": item.key})
            return [Outcome(status=Status.IGNORED)]
        if kind is keys.KeyKind.IMAGE:
            return self._image_event(item, delivery)
        return self._sidecar_event(item, delivery)

    def _is_own_output(self, item: WorkItem) -> bool:
        """Whether the event is about one of our results: in the output bucket, and, when that
        bucket holds inputs too (OUTPUT_BUCKET in INPUT_BUCKETS), under OUTPUT_PREFIX."""
        if item.bucket != self._output_bucket:
            return False
        if not self._outputs_among_inputs:
            # Seen only because the buckets were wired wrong: nothing here can be right.
            logger.error("ignored: an event from the OUTPUT bucket", extra={"key": item.key})
            return True
        if item.key.startswith(self._output_prefix):
            # Expected now and then: the input rule cannot keep out outputs under InputPrefix.
            logger.info("ignored: one of our own outputs", extra={"key": item.key})
            return True
        return False

    def reject(self, error: UnrecognisedEvent, raw: str, delivery: Delivery) -> Outcome:
        """An event that is not work: dead-lettered once, as ``invalid_event``."""
        return self._dead_letters.reject(error, raw, delivery)

    def _image_event(self, item: WorkItem, delivery: Delivery) -> list[Outcome]:
        try:
            return self._process_image(item, item.key, delivery) or [self._missing_image(item, delivery)]
        except BackdropError as error:
            return [self._fail_unclaimed(error, item, delivery)]

    def _sidecar_event(self, item: WorkItem, delivery: Delivery) -> list[Outcome]:
        try:
            image_keys = self._pairs.images_owning(item.bucket, item.key)
        except BackdropError as error:
            return [self._fail_unclaimed(error, item, delivery)]
        outcomes: list[Outcome] = []
        for image_key in image_keys:
            try:
                found = self._process_image(item, image_key, delivery)
            except BackdropError as error:
                found = [self._fail_unclaimed(error, item, delivery, image_key=image_key)]
            outcomes.extend(found or ())
        if not outcomes:
            logger.info("sidecar waits for its image", extra={"key": item.key})
            self._metrics.add(Metric.AWAITING_IMAGE, 1)
            return [Outcome(status=Status.AWAITING_IMAGE)]
        return outcomes

    def _process_image(self, item: WorkItem, image_key: str, delivery: Delivery) -> list[Outcome] | None:
        """The pair of ``image_key``, each of its calls made once; None when there is no such image."""
        found = self._pairs.image(item.bucket, image_key)
        if found is None:
            return None
        try:
            pair = self._pairs.pair_of(*found)
        except NoRoomForSidecar as error:
            return [self._never_paired(error, item, delivery)]
        if pair is None:
            logger.info("image waits for its sidecar", extra={"key": image_key})
            self._metrics.add(Metric.AWAITING_SIDECAR, 1)
            return [Outcome(status=Status.AWAITING_SIDECAR, image_key=image_key)]
        self._settle(pair, item, delivery)
        calls = self._request.calls_of(pair)
        self._announce(pair, len(calls))
        outcomes: list[Outcome] = []
        comes_back: BackdropError | None = None
        for call in calls:
            try:
                outcomes.append(self._call_once(call, item, delivery))
            except BackdropError as error:
                # The message comes back for this variant; the others are not held up by it.
                comes_back = comes_back or error
        if comes_back is not None:
            raise comes_back
        return outcomes

    def _announce(self, pair: Pair, calls: int) -> None:
        """What the pair will cost, said before any of its calls is made."""
        try:
            estimated_usd = self._request.estimated_usd(pair)
        except BackdropError:
            return  # its one failure is recorded before any call
        logger.info(
            "pair found", extra={"key": pair.image.key, "calls": calls, "estimated_usd": estimated_usd}
        )

    def _call_once(self, call: Pair, item: WorkItem, delivery: Delivery) -> Outcome:
        """One paid call of the pair (the pair itself, or one of its variants), made once."""
        if delivery.deadline.remaining() < self._budget.min_seconds_to_start:
            # Not an attempt: nothing is claimed or called, and the message comes back whole.
            raise NotEnoughTime(f"{delivery.deadline.remaining():.0f} s left: too little to call the API")
        identity = call.identity()
        outcome = self._once(identity, lambda: self._purchase.run(call, item, delivery), delivery)
        if (
            item.replay_of
            and outcome.status is Status.DUPLICATE
            and outcome.error_class is not None
            and item.replay_variant in (None, call.variant)
        ):
            # A redrive of a failure of these very versions: the user asks for it again, once per
            # DLQ record. Had the pair been fixed and processed since, it stays a duplicate. A
            # variant's record runs that variant alone.
            replay = {**identity, "replay_of": item.replay_of}
            outcome = self._once(replay, lambda: self._purchase.run(call, item, delivery), delivery)
        return outcome

    def _settle(self, pair: Pair, item: WorkItem, delivery: Delivery) -> None:
        """Send back, uncounted, an image that would be paid with DEFAULT_PROMPT while its sidecar
        may still come: until it is PAIR_SETTLE_SECONDS old. A pair with its sidecar never waits;
        a direct invocation cannot come back, so it goes on at once.

        Its age counts from its event too: S3 dates a multipart upload from when it began.
        """
        if pair.sidecar is not None or delivery.message_id is None or not self._settle_seconds:
            return
        times = [pair.image.last_modified, _event_time(item.event) if item.key == pair.image.key else None]
        uploaded = max((_latest_within(time) for time in times if time is not None), default=None)
        if uploaded is None:
            return
        wait = self._settle_seconds - (self._wall_clock() - uploaded).total_seconds()
        if wait > 0:
            raise PairSettling(
                f"no sidecar yet, {wait:.0f} s before DEFAULT_PROMPT is used",
                come_back_after_seconds=math.ceil(wait),
            )

    def _missing_image(self, item: WorkItem, delivery: Delivery) -> Outcome:
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
            identity, lambda: self._dead_letters.send(error, source, item.event, delivery), delivery
        )

    def _never_paired(self, error: NoRoomForSidecar, item: WorkItem, delivery: Delivery) -> Outcome:
        # No sidecar can ever be uploaded for it: one DLQ record however often the event comes.
        return self._once(
            error.identity(item.replay_of),
            lambda: self._dead_letters.send(error, error.failure_source(), item.event, delivery),
            delivery,
        )

    def _once(self, identity: dict[str, Any], work: Callable[[], Outcome], delivery: Delivery) -> Outcome:
        """The work done once per identity; its completion event published, at least once."""
        try:
            outcome = self._claims.run_once(identity, work)
        except ClaimInProgress:
            # Another invocation holds this very pair (same versions) right now. Its message stays
            # on the queue until it finishes, and comes back if it crashes: ours adds nothing.
            logger.info("duplicate: this pair is being processed by another invocation")
            self._metrics.add(Metric.DUPLICATES_SKIPPED, 1)
            return Outcome(status=Status.DUPLICATE)
        if outcome.status is Status.DUPLICATE:
            logger.info("duplicate: this pair was handled before", extra={"image_key": outcome.image_key})
            self._metrics.add(Metric.DUPLICATES_SKIPPED, 1)
        if outcome.event_pending is not None:
            # Done and remembered, its event not yet on the bus: only the event is tried again.
            self._events.settle(outcome.event_pending, delivery)
        return outcome

    def _fail_unclaimed(
        self, error: BackdropError, item: WorkItem, delivery: Delivery, *, image_key: str | None = None
    ) -> Outcome:
        """A failure before the pair is known (an S3 read failing): retry it, or dead-letter it."""
        if delivery.comes_back(error):
            raise error
        # The event's ETag is the image's only when the event is the image's.
        etag = item.etag if image_key in (None, item.key) else None
        source = FailureSource(bucket=item.bucket, key=image_key or item.key, etag=etag)
        # The image's event, its sidecar's and their duplicates all meet the same failure: one
        # record for it, whatever the number of events.
        identity = {
            "bucket": item.bucket,
            "failed_key": source.key,
            "error_class": error.error_class.value,
            "error": error.message,
            "replay_of": item.replay_of,
        }

        tried = False

        def send() -> Outcome:
            nonlocal tried
            tried = True
            return self._dead_letters.send(error, source, item.event, delivery)

        try:
            return self._once(identity, send, delivery)
        except (ClaimNotReleased, EventNotPublished):
            # Recorded and sent: the claim stays, or only its event is missing. Either way the
            # message comes back later, and sends no second record.
            raise
        except BackdropError:
            if tried:
                raise  # the DLQ itself failed: trying it again at once would only wait twice
            outcome = send()  # the claims themselves fail: a record may repeat, but is never lost
            if outcome.event_pending is not None:
                self._events.settle(outcome.event_pending, delivery)
            return outcome


def _latest_within(moment: datetime) -> datetime:
    """The latest instant a time may stand for. S3's LastModified and EventBridge's ``time`` are
    given to the whole second, so ``12:00:05`` may be any instant before ``12:00:06``: an image is
    taken to be as young as it may be, and never settles for less than PAIR_SETTLE_SECONDS."""
    return moment if moment.microsecond else moment + timedelta(seconds=1)


def _event_time(event: dict[str, Any]) -> datetime | None:
    """When S3 (``eventTime``) or EventBridge (``time``) says the object was created."""
    try:
        return datetime.fromisoformat(str(event.get("eventTime") or event.get("time")))
    except ValueError:
        return None
