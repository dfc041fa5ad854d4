"""A drop folder on a stack: pairs of the folder sent to its input bucket, their outcomes brought
back into DIR/out, what both `backdrop watch DIR --stack` and `backdrop run DIR --stack` do.

A pair is sent sidecar first, so that the image's own event finds it whole. It stays pending
until an outcome names these very versions (their MD5s, which are their ETags); then every
object that outcome names (the output, and each rendition when there are some) is downloaded,
or the DLQ record is written as DIR/out/failed/<key>.error.json. DIR/out/.backdrop-watch.json
records which versions each result came from, as the offline watch's does: a pair whose files
made a result still in DIR/out is not sent again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from backdrop.drop.outcomes import Outcome, OutcomeSource, Pending
from backdrop.drop.target import DropTarget
from backdrop.folder import (
    STATE_FILE,
    OutFolder,
    WatchState,
    content_md5,
    failed_line,
    pair_stem,
    processed_line,
    uploaded_line,
    watched_files,
)
from backdrop.pricing import price_of


@dataclass(frozen=True)
class FolderPair:
    """An image of the folder and its sidecar (``K.json``, else ``<stem>.json``), by their paths
    relative to the folder; a sidecar alone has no image yet."""

    image: str | None
    sidecar: str | None

    @property
    def name(self) -> str:
        return str(self.image or self.sidecar)


def folder_pairs(folder: Path, out: Path, only: Iterable[Path] | None = None) -> list[FolderPair]:
    """The folder's pairs, or only those that ``only``'s files belong to, as the function pairs keys."""
    names = {path.relative_to(folder).as_posix() for path in watched_files(folder, out)}
    wanted = None if only is None else {pair_stem(path.relative_to(folder).as_posix()) for path in only}
    images = sorted(name for name in names if not name.lower().endswith(".json"))
    paired: set[str] = set()
    pairs = []
    for image in images:
        candidates = (image + ".json", pair_stem(image) + ".json")
        sidecar = next((candidate for candidate in candidates if candidate in names), None)
        paired.update(candidates)  # an outranked stem sidecar is its image's, not one waiting for an image
        if wanted is None or pair_stem(image) in wanted:
            pairs.append(FolderPair(image, sidecar))
    for sidecar in sorted(names - set(images) - paired):
        if wanted is None or pair_stem(sidecar) in wanted:
            pairs.append(FolderPair(None, sidecar))
    return pairs


def estimated_cost(sidecar: bytes | None) -> float:
    """What a pair's sidecar will cost: one call at its speed, or one per variant. A sidecar that
    cannot be read is priced at the default speed: the function will refuse it for nothing."""
    fields, calls = _calls(sidecar)
    speed = fields.get("rendering_speed")
    return sum((price_of(call.get("rendering_speed", speed)) for call in calls), 0.0)


def _calls(sidecar: bytes | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sidecar's fields (none when it cannot be read), and the calls it asks for: one per
    variant, or one."""
    try:
        fields = json.loads(sidecar or b"{}")
    except ValueError:
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    variants = fields.get("variants")
    calls: list[dict[str, Any]] = []
    if isinstance(variants, list):
        calls = [variant for variant in variants if isinstance(variant, dict)]
    return fields, calls or [{}]


class StackFolder:
    """The folder ``folder`` against ``target``: send pairs, learn their outcomes, bring them back."""

    def __init__(
        self,
        target: DropTarget,
        folder: Path,
        out: Path,
        console: Console,
        outcomes: OutcomeSource,
        *,
        prefix: str = "",
    ) -> None:
        self.target, self.folder, self.out, self.console = target, folder, out, console
        self.outcomes = outcomes
        self.key_prefix = target.input_prefix + prefix
        self.state = WatchState.load(out / STATE_FILE)
        self.results = OutFolder(out, (target.output_prefix, self.key_prefix))
        self.pending: dict[str, Pending] = {}
        self.counts: Counter[str] = Counter()  # sent, processed, failed, skipped, and by error class
        self.failed_classes: Counter[str] = Counter()
        # The outcomes told so far of pairs with variants not all told: where each went in out/.
        self.told: dict[str, dict[int | None, tuple[Path, bool]]] = {}
        self.cost_usd = 0.0

    def key(self, name: str) -> str:
        return self.key_prefix + name

    def body(self, name: str | None) -> bytes | None:
        return (self.folder / name).read_bytes() if name else None

    def versions(self, pair: FolderPair) -> dict[str, str]:
        """The pair's keys in the bucket, each with the MD5 (ETag) of the file as it is now."""
        files = [name for name in (pair.image, pair.sidecar) if name]
        return {self.key(name): content_md5((self.folder / name).read_bytes()) for name in files}

    def done_before(self, pair: FolderPair) -> str | None:
        """The result (or failure) in out/ that these very files made; None if there is none."""
        return self.state.result_of(self.versions(pair)) if pair.image else None

    def is_pending(self, pair: FolderPair) -> bool:
        waiting = self.pending.get(self.key(pair.image or ""))
        return waiting is not None and self.versions(pair) == _versions_of(waiting)

    def pending_of(self, pair: FolderPair) -> Pending:
        versions = self.versions(pair)
        sidecar = self.key(pair.sidecar) if pair.sidecar else None
        image = self.key(str(pair.image))
        _, calls = _calls(self.body(pair.sidecar))
        return Pending(image, versions[image], sidecar, versions.get(sidecar or ""), calls=len(calls))

    def send(self, pair: FolderPair) -> None:
        """Upload the pair, sidecar first, and wait for its outcome."""
        for name in (pair.sidecar, pair.image):
            if name:
                body = (self.folder / name).read_bytes()
                self.target.s3.put_object(Bucket=self.target.input_bucket, Key=self.key(name), Body=body)
                self.state.uploaded[self.key(name)] = content_md5(body)
                self.console.print(uploaded_line(self.key(name)))
        waiting = self.pending_of(pair)
        self.pending[waiting.image_key] = waiting
        self.counts["sent"] += 1

    def learn(self) -> int:
        """Take what the stack says; bring back each outcome of a pending pair. How many came."""
        answered = 0
        for outcome in self.outcomes.take(self.pending):
            waiting = self.pending.get(outcome.image_key)
            if waiting is None or not outcome.answers(waiting) or (outcome.processed and not outcome.outputs):
                continue  # another upload's, or an earlier version's (or an event naming no output)
            if self.tell(outcome, waiting):
                del self.pending[outcome.image_key]
                answered += 1
        if answered:
            self.state.save()
        return answered

    def tell(self, outcome: Outcome, waiting: Pending) -> bool:
        """Bring back one outcome of a waiting pair: the pair's, or one of its variants'. Whether
        the pair is answered whole now (each variant is told of on its own)."""
        told = self.told.setdefault(waiting.image_key, {})
        if outcome.variant in told:
            return False  # told twice: by its event, and by a look at the bucket
        told[outcome.variant] = (self.settle(outcome, waiting), outcome.processed)
        if outcome.variant is not None and len(told) < waiting.calls:
            return False
        del self.told[waiting.image_key]
        failed = not all(processed for _, processed in told.values())
        self.counts["failed" if failed else "processed"] += 1
        first_kept, _ = next(iter(told.values()))
        self.state.record_result(waiting.image_key, first_kept, _versions_of(waiting))
        return True

    def settle(self, outcome: Outcome, waiting: Pending) -> Path:
        """Bring back the result, or keep the failure; where it went in out/."""
        self.cost_usd += outcome.cost_usd
        seconds = time.monotonic() - waiting.sent_at
        if outcome.processed:
            return self._bring_back(outcome, waiting, seconds)
        return self._keep_failure(outcome, waiting)

    def _bring_back(self, outcome: Outcome, waiting: Pending, seconds: float) -> Path:
        s3, bucket = self.target.s3, self.target.output_bucket
        kept = [
            self.results.keep_result(key, s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            for key in outcome.outputs
        ]
        more = f", and {len(kept) - 1} more" if len(kept) > 1 else ""
        note = f" ({seconds:.1f} s, ${outcome.cost_usd:.3f}{more})"
        self.console.print(processed_line(waiting.image_key, str(kept[0].relative_to(self.folder)), note))
        stale = self.results.drop_stale_failure(waiting.image_key)
        if stale is not None:
            self.console.print(f"  (its earlier failure, {stale.relative_to(self.folder)}, is removed)")
        return kept[0]

    def _keep_failure(self, outcome: Outcome, waiting: Pending) -> Path:
        kept = self.results.keep_failure(waiting.image_key, outcome.record)
        self.console.print(failed_line(waiting.image_key, outcome.error_class, outcome.message))
        self.failed_classes[outcome.error_class] += 1
        return kept


def _versions_of(waiting: Pending) -> dict[str, str]:
    versions = {waiting.image_key: waiting.image_etag}
    if waiting.sidecar_key and waiting.sidecar_etag:
        versions[waiting.sidecar_key] = waiting.sidecar_etag
    return versions
