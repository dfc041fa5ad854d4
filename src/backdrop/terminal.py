"""What the commands that spend money share with the person at the terminal: a progress bar,
Ctrl-C as a request to stop cleanly, and the questions asked before spending (`backdrop backfill`,
`backdrop run`)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

OVER_MAX_COST = 3
NOT_CONFIRMED = 4
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
CONFIRM_ABOVE = 50  # pairs sent without asking

Ask = Callable[[str], "bool | None"]  # the question's answer; None when no one can be asked


def over_max_cost(cost: float, max_cost_usd: float | None, send_less: str) -> tuple[int, str] | None:
    """The refusal (exit code 3 and what to say) of an estimate above --max-cost; None to go on.
    ``send_less``: how to ask for less with this command."""
    if max_cost_usd is None or cost <= max_cost_usd:
        return None
    return OVER_MAX_COST, (
        f"[red]Refused: the estimated cost ${cost:,.3f} is over --max-cost ${max_cost_usd:,.2f}.[/] "
        f"Nothing was sent. {send_less} or raise --max-cost."
    )


def confirmation(count: int, cost: float, *, yes: bool, ask: Ask, where: str) -> tuple[int, str] | None:
    """Above 50 pairs, the person's yes (or --yes); the refusal when there is none, else None."""
    if count <= CONFIRM_ABOVE or yes:
        return None
    answer = ask(f"Send {count:,} pairs (estimated ${cost:,.3f}) to {where}?")
    if answer is None:
        return NOT_CONFIRMED, (
            f"[red]Not sent: {count:,} pairs is more than {CONFIRM_ABOVE}, and there is no terminal "
            "to ask.[/] Pass --yes to send them (and --max-cost USD to cap what that may cost)."
        )
    return None if answer else (NOT_CONFIRMED, "Not sent.")


def progress(console: Console, *, bar: bool = False) -> Progress:
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if bar:
        columns += [
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeRemainingColumn(),
        ]
    # Piped into a file, a live bar would print nothing useful: the summary says it all.
    return Progress(*columns, console=console, disable=not console.is_terminal, transient=not bar)


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.speed or 0.0
        # A backfill sends hundreds a second; a run waits on the API, a pair a second or less.
        return Text(f"{speed:,.{0 if speed >= 10 else 1}f} pairs/s", style="progress.data.speed")


@contextlib.contextmanager
def stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set ``stop``; a second one raises KeyboardInterrupt, to stop at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread: whoever runs us there decides
        return

    def handle(number: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
