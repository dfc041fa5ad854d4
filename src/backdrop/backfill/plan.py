"""The plan: every image judged (assess.py), counted by outcome and speed, the pairs to send spooled
to the ledger in order. Only counts and a few examples stay in memory.

Images are judged by a pool of threads (S3 reads are network waits), at most a few per thread
in flight, and their verdicts are taken back in the order they were handed out: memory stays
flat however long the listing or the manifest, and the plan's order is the listing's.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from backdrop.backfill.assess import Outcome, Verdict
from backdrop.backfill.ledger import Ledger
from backdrop.backfill.walk import WalkCounts
from backdrop.pricing import PRICE_PER_CALL_USD, price_of

# Problems kept to show, per outcome; the rest are counted.
EXAMPLES = 10
# Verdicts in flight per thread: enough to keep every thread busy while the oldest is taken.
_IN_FLIGHT_PER_WORKER = 4
PROBLEMS = (Outcome.INVALID, Outcome.CONFLICT, Outcome.MISSING_IMAGE, Outcome.UNREADABLE)

_Item = TypeVar("_Item")


@dataclass
class Plan:
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    # Pairs by rendering speed, and by outcome within a speed (to send, processed, sent earlier).
    by_speed: dict[str, Counter[Outcome]] = field(
        default_factory=lambda: {speed: Counter() for speed in PRICE_PER_CALL_USD}
    )
    examples: dict[Outcome, list[Verdict]] = field(default_factory=dict)
    walk: WalkCounts | None = None  # a bucket's listing; None for a manifest
    rows: int = 0  # a manifest's rows
    results_skipped: int = 0  # a stack's results listed beside its inputs (OutputToInputBucket)
    complete: bool = False  # False when planning was interrupted
    seconds: float = 0.0  # how long planning took

    def add(self, verdict: Verdict) -> None:
        self.outcomes[verdict.outcome] += 1
        if verdict.speed is not None:
            self.by_speed.setdefault(verdict.speed, Counter())[verdict.outcome] += 1
        if verdict.outcome in PROBLEMS:
            shown = self.examples.setdefault(verdict.outcome, [])
            if len(shown) < EXAMPLES:
                shown.append(verdict)

    @property
    def to_send(self) -> int:
        return self.outcomes[Outcome.TO_SEND]

    @property
    def pairs(self) -> int:
        """Images that make a pair the function would process (a valid one or not)."""
        return sum(self.outcomes[outcome] for outcome in _PAIRS)

    def cost_usd(self, speed: str | None = None) -> float:
        """The estimated price of the pairs to send (of one speed)."""
        speeds = [speed] if speed else list(self.by_speed)
        return sum(self.by_speed[s][Outcome.TO_SEND] * price_of(s) for s in speeds)


_PAIRS = (Outcome.TO_SEND, Outcome.PROCESSED, Outcome.SENT_EARLIER, Outcome.INVALID, Outcome.CONFLICT)


def make_plan(
    items: Iterable[_Item],
    judge: Callable[[_Item], Verdict],
    ledger: Ledger,
    plan: Plan,
    *,
    workers: int,
    stop: threading.Event,
    progress: Callable[[Plan], None] = lambda plan: None,
) -> Plan:
    """Judge every item, add each verdict to ``plan`` and spool the pairs to send, until ``stop``."""
    for verdict in _judged(items, judge, workers, stop):
        plan.add(verdict)
        if verdict.work is not None:
            ledger.plan(verdict.work)
        progress(plan)
    plan.complete = not stop.is_set()
    return plan


def _judged(
    items: Iterable[_Item], judge: Callable[[_Item], Verdict], workers: int, stop: threading.Event
) -> Iterator[Verdict]:
    """The verdicts, in the items' order, with at most a few per worker in flight."""
    in_flight: deque[Future[Verdict]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill-plan") as pool:
        try:
            for item in items:
                if stop.is_set():
                    break
                in_flight.append(pool.submit(judge, item))
                if len(in_flight) >= workers * _IN_FLIGHT_PER_WORKER:
                    yield in_flight.popleft().result()
            while in_flight and not stop.is_set():
                yield in_flight.popleft().result()
        finally:
            for pending in in_flight:
                pending.cancel()
