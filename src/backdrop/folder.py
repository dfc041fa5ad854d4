"""A drop folder on this machine: what `backdrop watch` and `backdrop run` share.

Which files are images and sidecars, which pair they belong to, when a file has settled (is no
longer being written), what earlier runs did with the folder (``DIR/out/.backdrop-watch.json``),
where results and failures land under ``DIR/out``, and the console line of each happening, so
that the offline watch and the drop folder on a stack speak alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
WATCHED_SUFFIXES = (*IMAGE_SUFFIXES, ".json")
STATE_FILE = ".backdrop-watch.json"


def pair_stem(key: str) -> str:
    """What an image and its sidecars share: ``shop/shoe.jpg``, ``shop/shoe.jpg.json`` and
    ``shop/shoe.json`` all give ``shop/shoe``."""
    if key.lower().endswith(".json"):
        key = key[: -len(".json")]
    stem, dot, suffix = key.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in IMAGE_SUFFIXES else key


def content_md5(body: bytes) -> str:
    """The S3 ETag of a single-part upload: the fingerprint the output's metadata carries."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


@dataclass
class WatchState:
    """What earlier runs did with this folder, kept at ``path`` (DIR/out/.backdrop-watch.json)."""

    path: Path
    uploaded: dict[str, str] = field(default_factory=dict)  # key → MD5 of what was uploaded last
    # image key → {"result": its file, relative to out/, "inputs": {key: MD5 it was made from}}
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> WatchState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(path, dict(data["uploaded"]), dict(data["results"]))
        except (OSError, ValueError, KeyError, TypeError):
            return cls(path)  # the first run here, or a state file that cannot be read: start afresh

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        state = {"version": 1, "uploaded": self.uploaded, "results": self.results}
        temporary.write_text(json.dumps(state, indent=1, ensure_ascii=False), encoding="utf-8")
        temporary.replace(self.path)

    def record_result(self, image_key: str, result: Path, inputs: Mapping[str, str | None]) -> None:
        known = {key: md5.strip('"') for key, md5 in inputs.items() if key and md5}
        self.results[image_key] = {"result": result.relative_to(self.path.parent).as_posix(), "inputs": known}

    def result_from(self, key: str, md5: str) -> str | None:
        """The result, still in out/, made from this very version of ``key``; None if there is none."""
        return self.result_of({key: md5})

    def result_of(self, inputs: dict[str, str]) -> str | None:
        """The result (or failure), still in out/, made from every one of these versions; None if none."""
        for entry in self.results.values():
            made_from = entry.get("inputs", {})
            if (
                all(made_from.get(key) == md5 for key, md5 in inputs.items())
                and (self.path.parent / entry["result"]).exists()
            ):
                return str(entry["result"])
        return None


class SettledFiles:
    """Images and sidecars of ``folder`` (never under ``out``) changed since they were last given,
    and unchanged since the last look: a file still being written waits for the next one."""

    def __init__(self, folder: Path, out: Path) -> None:
        self.folder, self.out = folder, out
        self._seen: dict[Path, tuple[int, int]] = {}
        self._given: dict[Path, tuple[int, int]] = {}

    def changes(self) -> Iterator[Path]:
        for path in watched_files(self.folder, self.out):
            stat = path.stat()
            signature = (stat.st_size, stat.st_mtime_ns)
            settled = self._seen.get(path) == signature
            self._seen[path] = signature
            if settled and self._given.get(path) != signature:
                self._given[path] = signature
                yield path


def watched_files(folder: Path, out: Path) -> Iterator[Path]:
    """The images and sidecars under ``folder``, in a stable order; results (``out``) excluded."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and out not in path.parents and path.name.lower().endswith(WATCHED_SUFFIXES):
            yield path


@dataclass(frozen=True)
class OutFolder:
    """Where results and failures land under ``out``, laid out as the folder is: without the
    stack's input and output prefixes, and without a run's own ``--prefix``."""

    out: Path
    prefixes: tuple[str, ...] = ()

    def local(self, key: str) -> str:
        for prefix in self.prefixes:
            if prefix and key.startswith(prefix):
                key = key[len(prefix) :]
        return key

    def result_file(self, key: str) -> Path:
        return self.out / self.local(key)

    def failure_file(self, image_key: str) -> Path:
        return self.out / "failed" / f"{self.local(image_key)}.error.json"

    def keep_result(self, key: str, body: bytes) -> Path:
        target = self.result_file(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        return target

    def keep_failure(self, image_key: str, record: dict[str, Any]) -> Path:
        target = self.failure_file(image_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(record, indent=2, ensure_ascii=False))
        return target

    def drop_stale_failure(self, image_key: str) -> Path | None:
        """An earlier failure of this image, fixed since: removed; its path, or None."""
        stale = self.failure_file(image_key)
        if not stale.exists():
            return None
        stale.unlink()
        return stale


# -- the console's lines, in rich markup ------------------------------------------------------------


def uploaded_line(key: str, note: str = "") -> str:
    return f"[cyan]↑[/] {escape(key)}{note}"


def waiting_for_sidecar_line(key: str) -> str:
    return f"[yellow]…[/] {escape(key)}: waiting for its sidecar ({escape(key)}.json)"


def waiting_for_image_line(key: str) -> str:
    return f"[yellow]…[/] {escape(key)}: waiting for its image"


def duplicate_line(key: str, why: str = "this image and sidecar were done before") -> str:
    return f"[blue]=[/] {escape(key)}: duplicate, no charge ({why})"


def processed_line(source: str, result: str, note: str = "") -> str:
    return f"[green]✓[/] {escape(source)} → {escape(result)}{note}"


def failed_line(key: str, error_class: str, message: str) -> str:
    return f"[red]✗[/] {escape(key)}: [bold]{escape(error_class)}[/] — {escape(message)}"
