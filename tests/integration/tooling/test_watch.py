"""`backdrop watch`: files dropped into a folder come back processed, failures as .error.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from backdrop.local.sandbox import sandbox
from backdrop.watch import FolderSync
from tests.integration.conftest import photo


def sync_until(sync: FolderSync, done, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sync.sync()
        if done():
            return True
        time.sleep(0.3)
    return False


def test_dropped_pairs_come_back_processed_and_failures_explained(aws: str, tmp_path: Path):
    folder, out = tmp_path / "drop", tmp_path / "drop" / "out"
    (folder / "shop").mkdir(parents=True)
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)  # noqa: SIM115
    with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws) as box:
        sync = FolderSync(box, folder, out, console)
        (folder / "shop" / "red shoe.jpg").write_bytes(photo("JPEG"))
        (folder / "shop" / "red shoe.jpg.json").write_text(json.dumps({"prompt": "a beach"}))
        (folder / "bad.png").write_bytes(photo())
        (folder / "bad.png.json").write_text(json.dumps({"prompt": "x", "seed": 3}))
        (folder / "notes.txt").write_text("not for us")
        assert sync_until(
            sync, lambda: (out / "shop" / "red shoe.png").exists() and sync.counts["failed"] == 1
        )
        record = json.loads((out / "failed" / "bad.png.error.json").read_text())
        assert record["error"]["class"] == "invalid_sidecar"
        assert sync.counts["uploaded"] == 4  # notes.txt is not an image or a sidecar
        assert not (out / "out").exists()  # results are never uploaded again


def test_a_file_still_being_written_waits_until_it_settles(aws: str, tmp_path: Path):
    folder = tmp_path / "drop"
    folder.mkdir()
    console = Console(file=open(tmp_path / "console.txt", "w"))  # noqa: SIM115
    with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws) as box:
        sync = FolderSync(box, folder, folder / "out", console)
        growing = folder / "big.png"
        growing.write_bytes(photo()[:100])
        sync.sync()
        assert sync.counts["uploaded"] == 0  # seen once: not yet known to be complete
        growing.write_bytes(photo())
        sync.sync()
        assert sync.counts["uploaded"] == 0  # it changed since: still being written
        sync.sync()
        assert sync.counts["uploaded"] == 1
        sync.sync()
        assert sync.counts["uploaded"] == 1  # unchanged: not uploaded twice
