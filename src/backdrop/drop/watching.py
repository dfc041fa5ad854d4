"""`backdrop watch DIR --stack NAME` (or ``--local``): the drop folder on a stack, until Ctrl-C.

Settled pairs are sent; an image whose sidecar is not there yet waits for it (unless the stack
has a DefaultPrompt), as the function itself would. A pair saved again unchanged is not sent:
the stack would only count a duplicate, at no charge, and sending it is a request for nothing.
"""

from __future__ import annotations

import threading

from rich.markup import escape

from backdrop.drop.stack_folder import FolderPair, StackFolder, folder_pairs
from backdrop.folder import (
    SettledFiles,
    duplicate_line,
    waiting_for_image_line,
    waiting_for_sidecar_line,
)


class StackWatch:
    """One step per ``step()``: send the pairs whose files settled, then bring back outcomes."""

    def __init__(self, drop: StackFolder) -> None:
        self.drop = drop
        self._settled = SettledFiles(drop.folder, drop.out)
        self._said: set[str] = set()  # lines about waiting, said once for each version

    def step(self) -> None:
        changed = list(self._settled.changes())
        if changed:
            for pair in folder_pairs(self.drop.folder, self.drop.out, only=changed):
                self._offer(pair)
        self.drop.learn()

    def _offer(self, pair: FolderPair) -> None:
        drop = self.drop
        if pair.image is None:
            self._say_once(waiting_for_image_line(drop.key(str(pair.sidecar))), pair)
        elif pair.sidecar is None and not drop.target.default_prompt:
            self._say_once(waiting_for_sidecar_line(drop.key(pair.image)), pair)
        elif drop.is_pending(pair):
            drop.console.print(
                duplicate_line(drop.key(pair.image), "sent already: its outcome is on its way")
            )
            drop.counts["skipped"] += 1
        elif drop.done_before(pair):
            why = f"unchanged since its result in {drop.out.name}/: not sent again"
            drop.console.print(duplicate_line(drop.key(pair.image), why))
            drop.counts["skipped"] += 1
        else:
            drop.send(pair)

    def _say_once(self, line: str, pair: FolderPair) -> None:
        said = f"{line} {sorted(self.drop.versions(pair).items())}"
        if said not in self._said:
            self._said.add(said)
            self.drop.console.print(line)


def watch_stack(drop: StackFolder, *, stop: threading.Event, interval: float = 1.0) -> dict[str, int]:
    console = drop.console
    where = f"s3://{drop.target.input_bucket}/{drop.key_prefix}"
    console.print(
        f"Watching [bold]{escape(str(drop.folder))}[/]: drop an image and its .json sidecar; each pair "
        f"goes to {escape(where)} ({escape(drop.target.name)}), its result comes back to "
        f"[bold]{escape(str(drop.out))}[/]."
    )
    console.print(f"Outcomes: {escape(drop.outcomes.how)}.")
    console.print("Ctrl-C to stop.")
    watching = StackWatch(drop)
    while not stop.wait(interval):
        watching.step()
    watching.step()
    return dict(drop.counts, unfinished=len(drop.pending))


def summary_line(drop: StackFolder, counts: dict[str, int]) -> str:
    counted = (
        f"stopped: {counts.get('sent', 0)} sent, {counts.get('processed', 0)} processed, "
        f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} unchanged not sent again; "
        f"estimated ${drop.cost_usd:.3f}"
    )
    unfinished = counts.get("unfinished", 0)
    if not unfinished:
        return counted
    if drop.target.ends_with_command:
        lost = "lost with the stack started for this command: sent next time"
        return f"{counted}. {unfinished} unfinished, {lost}"
    return (
        f"{counted}. {unfinished} still on their way: they finish on the stack, and "
        f"`backdrop run {drop.folder}` brings them back"
    )
