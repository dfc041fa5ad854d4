"""A local run's figures, read from the function's own metrics in its log: what the deployed
stack's dashboard shows (processed and failed by class, API latency, spend, credits), for
`backdrop demo` and `backdrop watch`."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Moment:
    """What one flush of the function's metrics added: API calls answered, pairs failed, spend."""

    at: float  # Unix seconds
    calls: int
    failed: int
    spend_usd: float


@dataclass
class RunFigures:
    processed: int = 0
    duplicates_skipped: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by error class
    latencies_ms: list[float] = field(default_factory=list)
    spend_usd: float = 0.0
    credits: float | None = None  # the last the API reported
    timeline: list[Moment] = field(default_factory=list)  # in the order the log has them

    def rows(self) -> list[tuple[str, str]]:
        """One line a figure, as the summary tables print them."""
        failed = ", ".join(f"{name}: {count}" for name, count in sorted(self.failed.items())) or "none"
        return [
            ("Processed (the function's count)", str(self.processed)),
            ("Failed, by class (the function's count)", failed),
            *self.api_rows(),
        ]

    def api_rows(self) -> list[tuple[str, str]]:
        """Latency, spend and credits: what a run's own counts of outputs and failures do not say."""
        rows = [
            ("API latency, p50 / p90", self._latency()),
            ("Estimated spend (the function's count)", f"${self.spend_usd:.3f}"),
        ]
        if self.credits is not None:
            rows.append(("Credits left (as the API said last)", f"{self.credits:,.2f}"))
        return rows

    def _latency(self) -> str:
        if not self.latencies_ms:
            return "no call answered"
        if len(self.latencies_ms) == 1:
            return f"{self.latencies_ms[0]:.0f} ms (one call)"
        deciles = statistics.quantiles(self.latencies_ms, n=10, method="inclusive")
        return f"{statistics.median(self.latencies_ms):.0f} ms / {deciles[-1]:.0f} ms"


def read(log: Path) -> RunFigures:
    figures = RunFigures()
    if not log.exists():
        return figures
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if '"_aws"' in line:
                try:
                    _add(figures, json.loads(line))
                except (ValueError, TypeError, AttributeError, KeyError):
                    continue  # a line cut short, or not ours
    return figures


def _add(figures: RunFigures, document: dict[str, Any]) -> None:
    if "ErrorClass" in document:  # by class; the same failure is also counted in total
        figures.failed[str(document["ErrorClass"])] += int(_total(document.get("ImagesFailed")))
        return
    at = float(document["_aws"]["Timestamp"]) / 1000.0
    figures.processed += int(_total(document.get("ImagesProcessed")))
    figures.duplicates_skipped += int(_total(document.get("DuplicatesSkipped")))
    latencies = _values(document.get("ApiLatency"))
    figures.latencies_ms += latencies
    spend = _total(document.get("EstimatedSpendUsd"))
    figures.spend_usd += spend
    credits = _values(document.get("RemainingCredits"))
    if credits:
        figures.credits = credits[-1]
    moment = Moment(
        at=at,
        calls=len(latencies),
        failed=int(_total(document.get("ImagesFailed"))),
        spend_usd=spend,
    )
    if moment.calls or moment.failed or moment.spend_usd:
        figures.timeline.append(moment)


def _values(value: Any) -> list[float]:
    if value is None:
        return []
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


def _total(value: Any) -> float:
    return sum(_values(value))
