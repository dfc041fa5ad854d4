"""What the backfill shows: the plan before anything is sent, and the summary at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from backdrop.backfill.assess import Outcome
from backdrop.backfill.ledger import Work
from backdrop.backfill.plan import PROBLEMS, Plan
from backdrop.pricing import PRICE_PER_CALL_USD, price_of

# What to do about each kind of image that is not sent.
_ADVICE = {
    Outcome.INVALID: "not sent: fix the sidecar (its upload then processes the pair)",
    Outcome.WAITING: "not sent: upload K.json or <stem>.json beside it, or set DefaultPrompt",
    Outcome.CONFLICT: "not sent: the bucket's sidecar wins; make the row match it, or delete it",
    Outcome.MISSING_IMAGE: "not sent: no such image in the bucket",
    Outcome.UNREADABLE: "not sent: S3 refused or failed the read; run again",
}
_SKIPPED = (Outcome.PROCESSED, Outcome.SENT_EARLIER)
# Pairs that are not sent for what their sidecar says: they have no speed to be counted under.
_NO_SPEED = (Outcome.INVALID, Outcome.CONFLICT)
FAILURES_SHOWN = 10


def plan_view(plan: Plan, source: str, ledger: Path) -> RenderableType:
    title = f"Backfill plan: {source}" + ("" if plan.complete else " (interrupted: incomplete)")
    parts: list[RenderableType] = [_speed_table(plan, title), _others_table(plan)]
    examples = _examples(plan)
    if examples.plain:
        parts.append(examples)
    prices = ", ".join(f"{speed} ${price:.3f}" for speed, price in PRICE_PER_CALL_USD.items())
    parts.append(
        Text(
            f"Prices a call: {prices} (estimates: Segmind's own bill is the truth). Already processed: "
            "an output records these very image and sidecar versions.\n"
            f"Ledger of what was sent: {ledger}",
            style="dim",
        )
    )
    return Group(*parts)


def _speed_table(plan: Plan, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in (
        "rendering speed",
        "pairs found",
        *(o.value for o in _SKIPPED),
        "to send",
        "estimated cost",
    ):
        table.add_column(column, justify="left" if column == "rendering speed" else "right")
    for speed, counts in plan.by_speed.items():
        found = sum(counts[outcome] for outcome in (*_SKIPPED, Outcome.TO_SEND))
        table.add_row(
            f"{speed} (${price_of(speed):.3f})",
            f"{found:,}",
            *(f"{counts[outcome]:,}" for outcome in _SKIPPED),
            f"{counts[Outcome.TO_SEND]:,}",
            f"${plan.cost_usd(speed):,.3f}",
        )
    for outcome in _NO_SPEED:
        if plan.outcomes[outcome]:
            table.add_row(outcome.value, f"{plan.outcomes[outcome]:,}", "—", "—", "0", "—", style="yellow")
    table.add_section()
    table.add_row(
        "all",
        f"{plan.pairs:,}",
        *(f"{plan.outcomes[outcome]:,}" for outcome in _SKIPPED),
        f"{plan.to_send:,}",
        f"${plan.cost_usd():,.3f}",
        style="bold",
    )
    return table


def _others_table(plan: Plan) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column()
    table.add_column(justify="right")
    table.add_column(style="dim")
    if plan.walk is not None:
        table.add_row("objects listed", f"{plan.walk.objects:,}", "")
    else:
        table.add_row("manifest rows", f"{plan.rows:,}", "")
    for outcome in (Outcome.WAITING, Outcome.MISSING_IMAGE, Outcome.UNREADABLE):
        if plan.outcomes[outcome] or (outcome is Outcome.WAITING and plan.walk is not None):
            table.add_row(outcome.value, f"{plan.outcomes[outcome]:,}", _ADVICE[outcome])
    if plan.walk is not None:
        table.add_row("sidecars without an image", f"{plan.walk.sidecars_without_image:,}", "ignored")
        table.add_row("other objects", f"{plan.walk.ignored:,}", "ignored: not an image or a .json")
    if plan.results_skipped:
        table.add_row("results under OutputPrefix", f"{plan.results_skipped:,}", "ignored: never inputs")
    return table


def _examples(plan: Plan) -> Text:
    text = Text()
    for outcome in PROBLEMS:
        shown = plan.examples.get(outcome, [])
        if shown:
            text.append(f"{outcome.value}, {_ADVICE[outcome]}:\n", style="yellow")
        for verdict in shown:
            text.append(f"  {verdict.key}" + (f": {verdict.detail}" if verdict.detail else "") + "\n")
        more = plan.outcomes[outcome] - len(shown)
        if shown and more > 0:
            text.append(f"  … and {more:,} more\n")
    return text


@dataclass
class Summary:
    plan: Plan
    sent: Counter[str] = field(default_factory=Counter)  # by speed
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # the first few: key, reason
    stopped: str | None = None  # why sending stopped before the end
    interrupted: bool = False
    seconds: float = 0.0  # how long sending took

    def add(self, sent: list[Work], failed: list[tuple[Work, str]]) -> None:
        for work in sent:
            self.sent[work.speed] += 1
        self.failed += len(failed)
        room = FAILURES_SHOWN - len(self.failures)
        self.failures += [(work.pair.image_key, reason) for work, reason in failed[: max(room, 0)]]

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

    @property
    def not_sent(self) -> int:
        return self.plan.to_send - self.sent_total - self.failed

    @property
    def sent_cost_usd(self) -> float:
        return sum(count * price_of(speed) for speed, count in self.sent.items())


def summary_view(summary: Summary) -> RenderableType:
    plan = summary.plan
    table = Table(title="Backfill summary", title_justify="left")
    table.add_column("")
    table.add_column("pairs", justify="right")
    table.add_column("", style="dim")
    speeds = sorted(summary.sent, key=lambda speed: price_of(speed))
    by_speed = ", ".join(f"{speed} {summary.sent[speed]:,}" for speed in speeds if summary.sent[speed])
    table.add_row(
        "sent to the work queue",
        f"{summary.sent_total:,}",
        f"estimated ${summary.sent_cost_usd:,.3f}" + (f" ({by_speed})" if by_speed else ""),
        style="bold",
    )
    table.add_row("failed to send", f"{summary.failed:,}", "a run again sends them" if summary.failed else "")
    if summary.not_sent:
        table.add_row("not sent yet", f"{summary.not_sent:,}", summary.stopped or "a run again sends them")
    for outcome in _SKIPPED:
        table.add_row(f"skipped: {outcome.value}", f"{plan.outcomes[outcome]:,}", "cost nothing")
    for outcome, advice in _ADVICE.items():
        if plan.outcomes[outcome]:
            table.add_row(outcome.value, f"{plan.outcomes[outcome]:,}", advice)
    parts: list[RenderableType] = [table]
    if summary.failures:
        text = Text()
        for key, reason in summary.failures:
            text.append("  failed: ", style="red")
            text.append(f"{key} — {reason}\n")
        parts.append(text)
    parts.append(Text(_closing_line(summary)))
    return Group(*parts)


def _closing_line(summary: Summary) -> str:
    rate = summary.sent_total / summary.seconds if summary.seconds else 0.0
    line = (
        f"Planned in {summary.plan.seconds:.1f} s; sent {summary.sent_total:,} in {summary.seconds:.1f} s "
        f"({rate:,.0f} a second). "
    )
    if summary.interrupted or summary.not_sent or summary.failed:
        line += "Run the same command again to send what is left: what was sent is not sent twice. "
    return line + "Follow the work with `backdrop spend` and `backdrop dlq`."
