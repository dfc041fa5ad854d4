"""The work done under a pair's claim: buy the answer once, store it, or record why not.

An answer already paid for and kept (an earlier attempt whose write failed) is stored without a
new call. A pair is bought at most twice, across every container: a second time only when the
first answer was lost (it broke off, stalled, passed the deadline or could not be kept), and
each loss is counted (``PaidAnswersLost``). A failure either comes back on a later delivery or
becomes one DLQ record.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from backdrop_fn.api_request import ApiRequest
from backdrop_fn.completion import CompletionEvents, processed_detail
from backdrop_fn.dead_lettering import DeadLetters
from backdrop_fn.delivery import Delivery
from backdrop_fn.errors import BackdropError, InternalError, KeptAnswerGone, OutputWriteFailed, ServerError
from backdrop_fn.events import WorkItem
from backdrop_fn.failures import FailureCost, FailureRecord
from backdrop_fn.outcome import Outcome, Status
from backdrop_fn.output import Output, StoredOutput, output_metadata
from backdrop_fn.pairing import Pair, PairFinder, sha256
from backdrop_fn.ports import (
    ApiImage,
    BackgroundApi,
    KeptAnswer,
    KeptAnswers,
    Metrics,
    PurchaseLedger,
    SpendGuard,
    SpendReservation,
)
from backdrop_fn.pricing import price_of
from backdrop_fn.rendition_output import RenditionOutputs
from backdrop_fn.sidecar import Sidecar
from backdrop_fn.timing import Deadline, TimeBudget
from backdrop_fn.vocabulary import Metric

logger = logging.getLogger(__name__)

# The first purchase, and one more only if its answer was lost.
MAX_PURCHASES = 2


class Purchase:
    def __init__(
        self,
        request: ApiRequest,
        output: Output,
        renditions: RenditionOutputs,
        pairs: PairFinder,
        *,
        api: BackgroundApi,
        kept: KeptAnswers,
        ledger: PurchaseLedger,
        spend: SpendGuard,
        dead_letters: DeadLetters,
        events: CompletionEvents,
        metrics: Metrics,
        random_seed: Callable[[], int],
        budget: TimeBudget,
        sleep: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._request = request
        self._output = output
        self._renditions = renditions
        self._pairs = pairs
        self._api = api
        self._kept = kept
        self._ledger = ledger
        self._spend = spend
        self._dead_letters = dead_letters
        self._events = events
        self._metrics = metrics
        self._random_seed = random_seed
        self._budget = budget
        self._sleep = sleep
        self._clock = clock

    def run(self, pair: Pair, item: WorkItem, delivery: Delivery) -> Outcome:
        """Everything done under the claim. Returns the outcome to remember for duplicates."""
        # A redrive is the user asking again: it may buy the pair anew.
        pair_id = pair.pair_id()
        purchase_id = pair_id if item.replay_of is None else f"{pair_id}#{sha256(item.replay_of)}"
        try:
            return self._replace_background(pair, pair_id, purchase_id, delivery)
        except _VerdictWaiting as waiting:
            # Paid for, failed, and its record could not be sent then: send it, pay nothing.
            return self._dead_letters.send_record(FailureRecord.model_validate_json(waiting.record))
        except BackdropError as error:
            if delivery.comes_back(error):
                logger.warning(
                    "transient failure, the message will come back",
                    extra={
                        "key": pair.image.key,
                        "error_class": error.error_class,
                        "attempt": delivery.attempt,
                    },
                )
                raise
            record = self._record(error, pair, item, delivery, cost=self._cost(pair, purchase_id))
            if error.http_status == 200:
                # Charged: should the DLQ fail now, the next attempt sends this, and buys nothing.
                self._ledger.keep_verdict(purchase_id, record.to_json())
            return self._dead_letters.send_record(record)
        except Exception as exc:  # a bug must still end in exactly one DLQ record
            logger.exception("unexpected failure", extra={"key": pair.image.key})
            bug = InternalError(f"unexpected {type(exc).__name__}: {exc}")
            return self._dead_letters.send_record(self._record(bug, pair, item, delivery))

    def _record(
        self,
        error: BackdropError,
        pair: Pair,
        item: WorkItem,
        delivery: Delivery,
        *,
        cost: FailureCost | None = None,
    ) -> FailureRecord:
        record = self._dead_letters.record(error, pair.failure_source(), item.event, delivery)
        return record.model_copy(update={"cost": cost, "variant": pair.variant})

    def _cost(self, pair: Pair, purchase_id: str) -> FailureCost | None:
        """What the pair was charged: the purchases the ledger counts (every call that may have
        been charged), at the estimated price of its rendering speed."""
        counted = self._ledger.counted(purchase_id)
        if counted is None:
            return None
        speed = None
        if counted.paid:
            with contextlib.suppress(BackdropError):  # paid for, so its sidecar was valid
                speed = self._request.sidecar_of(pair).rendering_speed.value
        return FailureCost(paid_calls=counted.paid, estimated_usd=round(counted.paid * price_of(speed), 3))

    def _replace_background(self, pair: Pair, pair_id: str, purchase_id: str, delivery: Delivery) -> Outcome:
        answer, paid, latency_ms = self._kept.find(pair_id), 0, None
        if answer is None:
            try:
                answer, paid, latency_ms = self._buy_answer(pair, pair_id, purchase_id, delivery)
            except _AlreadyStored as already:
                return self._stored_earlier(pair, already, purchase_id, delivery)
        else:
            logger.info("storing the answer paid for by an earlier attempt", extra={"key": pair.image.key})
            self._metrics.add(Metric.KEPT_ANSWERS_REUSED, 1)
        try:
            stored = self._store(pair, answer, delivery.deadline)
        except OutputWriteFailed as error:
            # Retried like any passing trouble; a kept answer makes the retry free.
            raise self._not_stored(error, answer, pair.image.key, purchase_id, paid) from None
        self._metrics.add(Metric.IMAGES_PROCESSED, 1)
        self._metrics.add(Metric.OUTPUT_BYTES, stored.bytes)
        if not self._still_current(pair):
            self._kept.forget(pair_id)
            # No event: the newer version's own event tells of the result that stands.
            return self._superseded(pair, stored.key, answer)
        # Made from the kept answer, which is let go only once they are written: a failed one is
        # retried from it, never by buying the picture again.
        renditions = self._renditions_of(pair, stored, answer.open, answer.metadata)
        self._kept.forget(pair_id)
        logger.info(
            "processed", extra={"key": pair.image.key, "output_key": stored.key, "output_bytes": stored.bytes}
        )
        stored = self._output.version_of(stored)
        return self._processed(pair, stored, renditions, answer.metadata, purchase_id, latency_ms, delivery)

    def _stored_earlier(
        self, pair: Pair, already: _AlreadyStored, purchase_id: str, delivery: Delivery
    ) -> Outcome:
        """A result an earlier attempt stored, its container ended before it could tell: this one
        does, with its renditions made from the stored result."""
        logger.info(
            "processed: stored by an earlier attempt whose container ended before it was done",
            extra={"key": pair.image.key, "output_key": already.stored.key},
        )
        renditions = self._renditions_of(
            pair, already.stored, self._output.opener(already.stored), already.metadata
        )
        return self._processed(
            pair, already.stored, renditions, already.metadata, purchase_id, None, delivery
        )

    def _renditions_of(
        self, pair: Pair, result: StoredOutput, open_result: Callable[[], BinaryIO], metadata: dict[str, str]
    ) -> list[StoredOutput]:
        sidecar = self._sidecar_of(pair)
        return self._renditions.write(
            result,
            open_result,
            self._renditions.asked(sidecar),
            metadata=metadata,
            variant=pair.variant,
            tags=None if sidecar is None else sidecar.tags,
        )

    def _processed(
        self,
        pair: Pair,
        stored: StoredOutput,
        renditions: list[StoredOutput],
        written_metadata: dict[str, str],
        purchase_id: str,
        latency_ms: float | None,
        delivery: Delivery,
    ) -> Outcome:
        """The outcome of a stored result, its completion event published (or kept, if refused)."""
        sidecar = self._sidecar_of(pair)
        detail = processed_detail(
            pair,
            stored,
            renditions,
            written_metadata=written_metadata,
            sidecar_metadata=None if sidecar is None else sidecar.metadata,
            pair_estimated_usd=self._pair_estimated_usd(pair),
            cost=self._cost(pair, purchase_id),
            api_latency_ms=latency_ms,
            delivery=delivery,
        )
        return Outcome(
            status=Status.PROCESSED,
            image_key=pair.image.key,
            variant=pair.variant,
            output_key=stored.key,
            event_pending=self._events.processed(detail),
        )

    def _sidecar_of(self, pair: Pair) -> Sidecar | None:
        """What the pair's call asked for; None if it cannot be read now. It was valid when the
        answer was bought, and storing and telling of that answer must not fail on it."""
        try:
            return self._request.sidecar_of(pair)
        except BackdropError:
            return None

    def _pair_estimated_usd(self, pair: Pair) -> float | None:
        try:
            return self._request.estimated_usd(pair)
        except BackdropError:
            return None

    def _tags_of(self, pair: Pair) -> dict[str, str] | None:
        sidecar = self._sidecar_of(pair)
        return None if sidecar is None else sidecar.tags

    def _store(self, pair: Pair, answer: KeptAnswer, deadline: Deadline) -> StoredOutput:
        """Write the paid answer, again after a wait while the call has time for it: the message's
        own retry may reach a container that has no copy of the answer, and buy it again."""
        key, tags = pair.image.key, self._tags_of(pair)
        wait = self._budget.first_write_retry_wait_seconds
        while True:
            try:
                return self._output.write(key, answer, variant=pair.variant, tags=tags)
            except OutputWriteFailed as error:
                if (
                    not error.retryable
                    or isinstance(error, KeptAnswerGone)
                    or deadline.remaining() - wait < self._budget.write_retry_reserve_seconds
                ):
                    raise
                logger.warning(
                    "the paid answer's write failed: written again in this call",
                    extra={"key": key, "error": error.message, "wait_seconds": wait},
                )
            self._sleep(wait)
            wait = min(wait * 2, self._budget.max_write_retry_wait_seconds)

    def _not_stored(
        self, error: OutputWriteFailed, answer: KeptAnswer, key: str, purchase_id: str, paid: int
    ) -> OutputWriteFailed:
        if answer.durable:
            where = (
                "it is kept in this container, where a retry within the hour stores it without another "
                "call; a retry elsewhere or later buys it once more"
            )
        else:
            # Held in memory only, it ends with this invocation: a loss, and the retry's purchase.
            self._metrics.add(Metric.PAID_ANSWERS_LOST, 1)
            self._ledger.count_lost(purchase_id, paid)
            logger.warning(
                "paid answer lost: it could not be kept on local disk, and its write failed",
                extra={"key": key},
            )
            where = (
                "it could not be kept on local disk (no room, or the disk failed), "
                "so the retry buys it once more"
            )
        return OutputWriteFailed(
            f"the API's answer was paid for but could not be stored: {error.message}; {where}",
            retryable=error.retryable,
        )

    def _still_current(self, pair: Pair) -> bool:
        try:
            return self._pairs.is_current(pair)
        except BackdropError as error:  # stored and paid for: a failed look must not undo that
            logger.warning("could not check for a newer version of the pair", extra={"error": error.message})
            return True

    def _superseded(self, pair: Pair, out_key: str, answer: KeptAnswer) -> Outcome:
        """A newer version of the image or sidecar arrived while this one was bought: the newest
        wins, whichever call finishes last. Its own event brings (or brought) its result."""
        try:
            withdrawn = self._output.withdraw(out_key, answer.metadata)
        except BackdropError as error:  # the result stays; the newer one still replaces it when written
            logger.warning("a superseded result could not be withdrawn", extra={"error": error.message})
            withdrawn = False
        self._metrics.add(Metric.RESULTS_SUPERSEDED, 1)
        logger.warning(
            "superseded: a newer version of the image or its sidecar arrived while this one was processed",
            extra={"key": pair.image.key, "output_key": out_key, "withdrawn": withdrawn},
        )
        return Outcome(
            status=Status.SUPERSEDED, image_key=pair.image.key, variant=pair.variant, output_key=out_key
        )

    def _buy_answer(
        self, pair: Pair, pair_id: str, purchase_id: str, delivery: Delivery
    ) -> tuple[KeptAnswer, int, float]:
        """Check everything, make the paid call, and keep its answer until it is stored:
        (the answer, the purchases the ledger counts with it, the call's milliseconds)."""
        sidecar = self._request.sidecar_of(pair)
        seed = sidecar.seed if sidecar.seed is not None else self._random_seed()
        metadata = output_metadata(pair, sidecar, seed)
        payload = self._request.payload(pair, sidecar, seed)
        self._output.claim_key(pair.image.bucket, pair.image.key, pair.variant)
        self._renditions.check_keys(
            self._output.key(pair.image.key, "png", pair.variant), self._renditions.asked(sidecar)
        )
        answer, paid, latency_ms = self._pay(purchase_id, payload, delivery, pair=pair, metadata=metadata)
        try:
            with contextlib.closing(answer.body):
                kept = self._kept.keep(pair_id, answer, metadata)
        except BackdropError:
            # Charged, and gone: broken off, stalled, past the deadline, or not keepable here.
            self._metrics.add(Metric.PAID_ANSWERS_LOST, 1)
            self._ledger.count_lost(purchase_id, paid)
            raise
        return kept, paid, latency_ms

    def _pay(
        self,
        purchase_id: str,
        payload: dict[str, Any],
        delivery: Delivery,
        *,
        pair: Pair,
        metadata: dict[str, str],
    ) -> tuple[ApiImage, int, float]:
        """The paid call, counted in the ledger: (its answer, the purchases counted with it, the
        call's milliseconds until its answer began, its retries included).

        When an earlier purchase is unaccounted for (its container ended before its claim was
        completed), the output bucket is asked first: its result may be stored already.
        """
        counted = self._ledger.reserve(purchase_id, limit=MAX_PURCHASES)
        if counted.verdict is not None:
            raise _VerdictWaiting(counted.verdict)
        if counted.paid - int(counted.granted) > counted.lost:
            stored = self._output.stored_result(pair.image.key, metadata, pair.variant)
            if stored is not None:
                if counted.granted:
                    self._ledger.release(purchase_id)
                raise _AlreadyStored(stored)
        if not counted.granted:
            raise ServerError(
                f"this pair was bought {MAX_PURCHASES} times and each answer was lost before it could be "
                "stored: Backdrop will not buy it again; redrive this record to try once more",
                retryable=False,
            )
        unseen = counted.paid - 1 - counted.lost
        if unseen > 0:  # an earlier purchase ended with its container, its answer never stored
            self._metrics.add(Metric.PAID_ANSWERS_LOST, unseen)
            self._ledger.count_lost(purchase_id, counted.paid - 1)
        reservation = self._reserve_spend(purchase_id, str(payload["rendering_speed"]))
        started = self._clock()
        try:
            answer = self._api.replace_background(payload, delivery.deadline)
        except BackdropError as error:
            if error.http_status != 200:  # the API charged nothing for this one
                self._ledger.release(purchase_id)
                self._spend.release(reservation)
                self._metrics.add(Metric.ESTIMATED_SPEND_USD, -reservation.usd)
            raise
        return answer, counted.paid, (self._clock() - started) * 1000.0

    def _reserve_spend(self, purchase_id: str, rendering_speed: str) -> SpendReservation:
        """The call's estimated price, reserved against the caps before it is made."""
        try:
            reservation = self._spend.reserve(rendering_speed)
        except BackdropError:
            self._ledger.release(purchase_id)  # no call is made: no purchase to count
            raise
        self._metrics.add(Metric.ESTIMATED_SPEND_USD, reservation.usd)
        if reservation.used_percent is not None:
            self._metrics.add(Metric.BUDGET_USED_PERCENT, reservation.used_percent)
        return reservation


class _AlreadyStored(Exception):
    """An earlier purchase of this pair was stored; its container ended before it could say so."""

    def __init__(self, found: tuple[StoredOutput, dict[str, str]]) -> None:
        super().__init__(f"already stored at {found[0].key}")
        self.stored, self.metadata = found


class _VerdictWaiting(Exception):
    """An earlier attempt paid, failed, and could not send its DLQ record: here it is."""

    def __init__(self, record: str) -> None:
        super().__init__("a DLQ record waits to be sent")
        self.record = record
