"""`backdrop watch DIR`: the drop-a-file automation without AWS.

An image and its sidecar saved into DIR are uploaded to the local input bucket; results come
back into DIR/out (failures as ``<key>.error.json`` in DIR/out/failed). The local stack listens
on 127.0.0.1:5000 and the emulator on :8080 while it runs, as events/env.json expects, so
`backdrop dlq --local` and `sam local invoke --env-vars events/env.json` work against it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from rich.console import Console

from backdrop.dead_letters import read_all, release
from backdrop.emulator import EmulatorSettings
from backdrop.local.sandbox import Sandbox, sandbox
from backdrop.local.stack import LOCAL_API_KEY

WATCHED_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".json")


@dataclass
class FolderSync:
    """Uploads settled files of ``folder`` and brings results back; one step per ``sync()`` call."""

    box: Sandbox
    folder: Path
    out: Path
    console: Console
    _seen_sizes: dict[Path, tuple[int, int]] = field(default_factory=dict)
    _uploaded: dict[Path, tuple[int, int]] = field(default_factory=dict)
    _downloaded: dict[str, str] = field(default_factory=dict)
    _failures_seen: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: {"uploaded": 0, "processed": 0, "failed": 0})

    def sync(self) -> None:
        self._upload_settled_files()
        self._download_results()
        self._record_failures()

    def _upload_settled_files(self) -> None:
        s3 = self.box.stack.client("s3")
        for path in sorted(self.folder.rglob("*")):
            if (
                not path.is_file()
                or self.out in path.parents
                or not path.name.lower().endswith(WATCHED_SUFFIXES)
            ):
                continue
            stat = path.stat()
            signature = (stat.st_size, stat.st_mtime_ns)
            # Upload only what has not changed since the last look: a file still being written waits.
            settled = self._seen_sizes.get(path) == signature
            self._seen_sizes[path] = signature
            if not settled or self._uploaded.get(path) == signature:
                continue
            key = path.relative_to(self.folder).as_posix()
            s3.put_object(Bucket=self.box.stack.input_bucket, Key=key, Body=path.read_bytes())
            self._uploaded[path] = signature
            self.counts["uploaded"] += 1
            self.console.print(f"[cyan]↑[/] {key}")

    def _download_results(self) -> None:
        s3 = self.box.stack.client("s3")
        bucket = self.box.stack.output_bucket
        for item in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket).search("Contents[]"):
            if item is None or self._downloaded.get(item["Key"]) == item["ETag"]:
                continue
            obj = s3.get_object(Bucket=bucket, Key=item["Key"])
            target = self.out / item["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(obj["Body"].read())
            self._downloaded[item["Key"]] = item["ETag"]
            self.counts["processed"] += 1
            source = unquote(obj["Metadata"].get("source-key", "?"))
            self.console.print(f"[green]✓[/] {source} → {target.relative_to(self.folder)}")

    def _record_failures(self) -> None:
        sqs = self.box.stack.client("sqs")
        # Polled at every step: the local queue (moto) has one store, so a short poll sees it all.
        letters = read_all(sqs, self.box.stack.dlq_url, hide_seconds=5, wait_seconds=0)
        release(sqs, self.box.stack.dlq_url, letters)  # left in the DLQ, for `backdrop redrive --local`
        for letter in letters:
            if letter.message_id in self._failures_seen:
                continue
            self._failures_seen.add(letter.message_id)
            target = self.out / "failed" / f"{letter.key}.error.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(
                json.dumps(letter.record or {"body": letter.body}, indent=2, ensure_ascii=False)
            )
            self.counts["failed"] += 1
            self.console.print(f"[red]✗[/] {letter.key}: [bold]{letter.error_class}[/] — {letter.message}")


def watch(
    folder: Path,
    out: Path,
    console: Console,
    *,
    stop: threading.Event,
    moto_port: int = 5000,
    api_port: int = 8080,
    settle_seconds: int = 2,
    interval: float = 0.5,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    settings = EmulatorSettings(api_keys={LOCAL_API_KEY})
    with sandbox(
        parameters={"PairSettleSeconds": str(settle_seconds)},
        emulator_settings=settings,
        moto_port=moto_port,
        emulator_port=api_port,
    ) as box:
        console.print(
            f"Watching [bold]{folder}[/]: drop an image and its .json sidecar; results in [bold]{out}[/]. "
            f"Local stack on {box.stack.endpoint}, offline Segmind emulator on {box.emulator.url}. "
            "Ctrl-C to stop."
        )
        sync = FolderSync(box, folder, out, console)
        while not stop.wait(interval):
            sync.sync()
        sync.sync()
        return dict(sync.counts, api_calls=len(box.emulator.requests))
