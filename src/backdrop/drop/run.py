"""`backdrop run DIR --stack NAME` (or ``--local``): the folder once, for a script or a CI job.

Every pair of the folder is judged first: done already (its result in DIR/out was made from these
very files), waiting for a sidecar (not sent, unless the stack has a DefaultPrompt), known to the
stack already (a result or a DLQ record of these versions, brought back without sending), or to
send. Then the cost is estimated and, above 50 pairs or --max-cost, the run asks or refuses, as
`backdrop backfill` does. The pairs are sent and their outcomes waited for, with a progress bar,
until all are in, --timeout passes, or Ctrl-C. Nothing is lost by stopping early: what was sent
finishes on the stack, and running the command again brings it back without paying twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from backdrop import terminal
from backdrop.drop.outcomes import PolledOutcomes
from backdrop.drop.stack_folder import FolderPair, StackFolder, estimated_cost, folder_pairs
from backdrop.terminal import Ask

OK = 0
FAILED = 1
TIMED_OUT = 5  # the wait ended with pairs unfinished: they finish on the stack
UNFINISHED_SHOWN = 20


@dataclass(frozen=True)
class RunRequest:
    yes: bool = False
    max_cost_usd: float | None = None
    timeout_seconds: float = 3600.0
    interval_seconds: float = 1.0


@dataclass
class RunPlan:
    to_send: list[FolderPair] = field(default_factory=list)
    done: int = 0  # its result in DIR/out, from these very files
    failed_before: int = 0  # its failure in DIR/out/failed, from these very files
    on_stack: int = 0  # answered by the stack before sending: brought back at no charge
    waiting: list[str] = field(default_factory=list)  # images without a sidecar
    lonely_sidecars: list[str] = field(default_factory=list)
    cost_usd: float = 0.0


@dataclass
class RunSummary:
    plan: RunPlan
    seconds: float = 0.0
    not_sent: int = 0
    interrupted: bool = False
    timed_out: bool = False
    unfinished: list[str] = field(default_factory=list)


def run_folder(drop: StackFolder, request: RunRequest, console: Console, *, ask: Ask) -> int:
    started = time.monotonic()
    plan = _plan(drop)
    console.print(_plan_line(drop, plan))
    refusal = terminal.over_max_cost(
        plan.cost_usd, request.max_cost_usd, "Send fewer (a smaller folder, or a subfolder)"
    ) or terminal.confirmation(
        len(plan.to_send), plan.cost_usd, yes=request.yes, ask=ask, where=drop.target.name
    )
    if refusal is not None:
        code, message = refusal
        console.print(message)
        return code
    summary = _send_and_wait(drop, plan, request, console)
    summary.seconds = time.monotonic() - started
    console.print(summary_view(drop, summary))
    return _exit_code(drop, summary)


def _plan(drop: StackFolder) -> RunPlan:
    plan = RunPlan()
    candidates = []
    for pair in folder_pairs(drop.folder, drop.out):
        kept = drop.done_before(pair)
        if pair.image is None:
            plan.lonely_sidecars.append(str(pair.sidecar))
        elif pair.sidecar is None and not drop.target.default_prompt:
            plan.waiting.append(pair.image)
        elif kept is not None:
            plan.failed_before += kept.startswith("failed/")
            plan.done += not kept.startswith("failed/")
        else:
            candidates.append(pair)
    plan.on_stack = _known_to_the_stack(drop, candidates)
    plan.to_send = [pair for pair in candidates if drop.done_before(pair) is None]
    plan.cost_usd = sum(estimated_cost(drop.body(pair.sidecar)) for pair in plan.to_send)
    return plan


def _known_to_the_stack(drop: StackFolder, pairs: list[FolderPair]) -> int:
    """Bring back the outcomes the stack has of these very versions already (an earlier run cut
    short, a watch stopped): sent again, they would be duplicates, of which no event tells."""
    if not pairs:
        return 0
    asked = {waiting.image_key: waiting for waiting in map(drop.pending_of, pairs)}
    known, spent_before = 0, drop.cost_usd  # paid for by the run that sent them, not this one
    for outcome in PolledOutcomes(drop.target).take(asked):
        waiting = asked.get(outcome.image_key)
        if waiting is not None and outcome.answers(waiting) and drop.tell(outcome, waiting):
            del asked[outcome.image_key]
            known += 1
    drop.cost_usd = spent_before
    drop.state.save()
    return known


def _plan_line(drop: StackFolder, plan: RunPlan) -> str:
    parts = [f"{len(plan.to_send)} to send (estimated ${plan.cost_usd:.3f})"]
    if plan.done:
        parts.append(f"{plan.done} done before, unchanged (skipped, no charge)")
    if plan.failed_before:
        parts.append(f"{plan.failed_before} failed before, unchanged (not sent again)")
    if plan.on_stack:
        parts.append(f"{plan.on_stack} answered by the stack already (brought back, no charge)")
    if plan.waiting:
        parts.append(f"{len(plan.waiting)} waiting for a sidecar (not sent)")
    return (
        f"[bold]{escape(str(drop.folder))}[/] → {escape(drop.target.name)}: " + ", ".join(parts) + "."
        f"\nOutcomes: {escape(drop.outcomes.how)}."
    )


def _send_and_wait(drop: StackFolder, plan: RunPlan, request: RunRequest, console: Console) -> RunSummary:
    summary = RunSummary(plan)
    stop = threading.Event()
    try:
        with terminal.stopped_by_signals(stop), terminal.progress(console, bar=True) as shown:
            line = shown.add_task("Processing", total=len(plan.to_send))
            summary.not_sent = _send_all(drop, plan.to_send, stop, shown, line)
            deadline = time.monotonic() + request.timeout_seconds
            while drop.pending and not stop.is_set() and time.monotonic() < deadline:
                stop.wait(request.interval_seconds)
                _learn(drop, shown, line)
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting at all
        stop.set()
    summary.interrupted = stop.is_set()
    summary.timed_out = bool(drop.pending) and not summary.interrupted
    summary.unfinished = sorted(drop.pending)
    return summary


def _send_all(
    drop: StackFolder, pairs: list[FolderPair], stop: threading.Event, shown: Progress, line: TaskID
) -> int:
    """Send the pairs, learning outcomes as they come; how many were left unsent by a Ctrl-C."""
    for number, pair in enumerate(pairs):
        if stop.is_set():
            return len(pairs) - number
        drop.send(pair)
        shown.update(line, description=f"Sending {number + 1}/{len(pairs)}")
        _learn(drop, shown, line)
    shown.update(line, description="Processed")
    return 0


def _learn(drop: StackFolder, shown: Progress, line: TaskID) -> None:
    answered = drop.learn()
    if answered:
        shown.advance(line, answered)


def _exit_code(drop: StackFolder, summary: RunSummary) -> int:
    if summary.interrupted:
        return terminal.INTERRUPTED
    if drop.counts["failed"] or summary.plan.failed_before:
        return FAILED  # the folder is not all processed, whichever run saw the failure
    return TIMED_OUT if summary.unfinished else OK


def summary_view(drop: StackFolder, summary: RunSummary) -> RenderableType:
    plan = summary.plan
    table = Table(title="Run summary", title_justify="left")
    table.add_column("")
    table.add_column("pairs", justify="right")
    table.add_column("", style="dim")
    table.add_row("processed", str(drop.counts["processed"]), f"into {drop.out}", style="bold")
    table.add_row("failed", str(drop.counts["failed"]), _by_class(drop.failed_classes))
    table.add_row("skipped: done before", str(plan.done), "same source and sidecar ETags: no charge")
    if plan.failed_before:
        table.add_row(
            "failed before, unchanged",
            str(plan.failed_before),
            f"not sent again: see {drop.out.name}/failed/, fix the pair (or `backdrop redrive`)",
            style="red",
        )
    if plan.on_stack:
        table.add_row("answered by the stack already", str(plan.on_stack), "brought back, not sent again")
    if plan.waiting:
        table.add_row("waiting for a sidecar", str(len(plan.waiting)), "not sent: add K.json beside it")
    if plan.lonely_sidecars:
        table.add_row("sidecar without an image", str(len(plan.lonely_sidecars)), "not sent")
    if summary.unfinished:
        fate = (
            "sent to the stack started for this run, which stops with it: a run again sends them"
            if drop.target.ends_with_command
            else "sent: they finish on the stack"
        )
        table.add_row("unfinished", str(len(summary.unfinished)), fate)
    if summary.not_sent:
        table.add_row("not sent", str(summary.not_sent), "interrupted before sending them")
    parts: list[RenderableType] = [table]
    if summary.unfinished:
        parts.append(_unfinished(summary))
    parts.append(Text(_closing_line(drop, summary)))
    return Group(*parts)


def _by_class(classes: Counter[str]) -> str:
    return ", ".join(f"{error_class} {count}" for error_class, count in classes.most_common())


def _unfinished(summary: RunSummary) -> Text:
    text = Text("Still on their way (`backdrop status KEY`; a run again brings them back):\n", style="yellow")
    for key in summary.unfinished[:UNFINISHED_SHOWN]:
        text.append(f"  {key}\n")
    if len(summary.unfinished) > UNFINISHED_SHOWN:
        text.append(f"  … and {len(summary.unfinished) - UNFINISHED_SHOWN} more\n")
    return text


def _closing_line(drop: StackFolder, summary: RunSummary) -> str:
    how = "Interrupted (Ctrl-C). " if summary.interrupted else "Timed out. " if summary.timed_out else ""
    return f"{how}Estimated cost ${drop.cost_usd:.3f}; wall time {summary.seconds:.1f} s."
