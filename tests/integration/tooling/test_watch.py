"""`backdrop watch`: files dropped into a folder come back processed, failures as .error.json."""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path
from typing import ClassVar

import requests
from rich.console import Console

from backdrop.local.sandbox import sandbox
from backdrop.watch import ExistingBucket, FolderSync
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


def test_a_fixed_pair_takes_away_its_stale_failure(aws: str, tmp_path: Path):
    folder, out = tmp_path / "drop", tmp_path / "drop" / "out"
    folder.mkdir()
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)  # noqa: SIM115
    with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws) as box:
        sync = FolderSync(box, folder, out, console)
        (folder / "bad.png").write_bytes(photo())
        (folder / "bad.png.json").write_text(json.dumps({"prompt": "x", "seed": 3}))
        failure = out / "failed" / "bad.png.error.json"
        assert sync_until(sync, failure.exists)
        (folder / "bad.png.json").write_text(json.dumps({"prompt": "x", "seed": 300}))
        assert sync_until(sync, lambda: (out / "bad.png").exists() and not failure.exists())


def run_watch_steps(aws: str, folder: Path, console: Console, *, steps: int = 3, until=None):
    """One `backdrop watch` run on ``folder`` (a fresh, empty local stack, as after a restart)."""
    requests.post(f"{aws}/moto-api/reset", timeout=10).raise_for_status()
    with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws) as box:
        sync = FolderSync(box, folder, folder / "out", console)
        for _ in range(steps):
            sync.sync()
        if until is not None:
            assert sync_until(sync, lambda: until(sync)), sync.counts
        return sync.counts, len(box.emulator.requests)


def test_a_restart_does_not_upload_or_pay_again_for_what_is_done(aws: str, tmp_path: Path):
    folder = tmp_path / "drop"
    folder.mkdir()
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)  # noqa: SIM115
    (folder / "shoe.png").write_bytes(photo())
    (folder / "shoe.png.json").write_text(json.dumps({"prompt": "a beach"}))
    (folder / "bad.png").write_bytes(photo())
    (folder / "bad.png.json").write_text(json.dumps({"prompt": "x", "seed": 3}))
    counts, calls = run_watch_steps(
        aws, folder, console, until=lambda s: s.counts["processed"] and s.counts["failed"]
    )
    assert (counts["uploaded"], calls) == (4, 1)

    counts, calls = run_watch_steps(aws, folder, console)  # restarted: nothing changed
    assert (counts["uploaded"], counts["skipped"], calls) == (0, 4, 0)

    (folder / "shoe.png.json").write_text(json.dumps({"prompt": "a forest"}))  # restarted, one change
    counts, calls = run_watch_steps(aws, folder, console, until=lambda s: s.counts["processed"])
    # The changed sidecar, and its image again (the new stack has not got it): one new call.
    assert (counts["uploaded"], counts["skipped"], calls) == (2, 3, 1)


def test_a_restart_uploads_again_what_has_no_result(aws: str, tmp_path: Path):
    folder = tmp_path / "drop"
    folder.mkdir()
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)  # noqa: SIM115
    (folder / "lonely.png").write_bytes(photo())  # no sidecar: waits, no result
    counts, _ = run_watch_steps(aws, folder, console)
    assert counts["uploaded"] == 1
    counts, _ = run_watch_steps(aws, folder, console)
    assert (counts["uploaded"], counts["skipped"]) == (1, 0)


def test_with_an_existing_bucket_files_go_under_the_prefix_and_results_come_back_from_beside_them(
    aws: str, tmp_path: Path
):
    folder, out = tmp_path / "drop", tmp_path / "drop" / "out"
    (folder / "shoes").mkdir(parents=True)
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)  # noqa: SIM115
    existing = ExistingBucket("shop-assets", "backdrop/in/", "backdrop/out/", outputs_in_bucket=True)
    existing.stand_in(aws, console)
    with sandbox(parameters={"PairSettleSeconds": "0", **existing.parameters()}, moto_endpoint=aws) as box:
        sync = FolderSync(box, folder, out, console)
        (folder / "shoes" / "red.jPg").write_bytes(photo("JPEG"))
        (folder / "shoes" / "red.jPg.json").write_text(json.dumps({"prompt": "a beach"}))
        assert sync_until(sync, (out / "shoes" / "red.png").exists)  # laid out as the folder is
        listed = box.stack.client("s3").list_objects_v2(Bucket="shop-assets")["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        "backdrop/in/shoes/red.jPg",
        "backdrop/in/shoes/red.jPg.json",
        "backdrop/out/backdrop/in/shoes/red.png",
    ]
    assert (sync.counts["uploaded"], sync.counts["processed"]) == (2, 1)  # the inputs are not results


class Receiver(http.server.BaseHTTPRequestHandler):
    """A shop's webhook endpoint: it keeps what it was sent."""

    received: ClassVar[list[tuple[dict[str, str], dict]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), json.loads(body)))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_each_completion_event_is_printed_and_posted_to_the_webhook(aws: str, tmp_path: Path):
    Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hooks/backdrop"
    folder, out = tmp_path / "drop", tmp_path / "drop" / "out"
    folder.mkdir()
    log = tmp_path / "console.txt"
    console = Console(file=open(log, "w"), width=300)  # noqa: SIM115
    try:
        with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws) as box:
            sync = FolderSync(box, folder, out, console, webhook=hook, webhook_authorization="Bearer s3cret")
            (folder / "cup.png").write_bytes(photo())
            (folder / "cup.png.json").write_text(
                json.dumps({"prompt": "a cafe", "metadata": {"sku": "CUP-1"}})
            )
            (folder / "bad.png").write_bytes(photo())
            (folder / "bad.png.json").write_text(json.dumps({"prompt": "x", "seed": 3}))
            assert sync_until(sync, lambda: sync.counts["events"] == 2)
    finally:
        server.shutdown()
    console.file.close()
    printed = log.read_text()
    assert (
        "event Backdrop Image Processed: cup.png → s3://backdrop-out-local/cup.png ($0.075) → webhook: 202"
        in printed
    )
    assert "event Backdrop Image Failed: bad.png: invalid_sidecar → webhook: 202" in printed
    by_key = {
        body.get("input", body.get("source", {}))["key"]: (headers, body)
        for headers, body in Receiver.received
    }
    headers, processed = by_key["cup.png"]
    assert processed["metadata"] == {"sku": "CUP-1"}
    assert processed["output"]["key"] == "cup.png"
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["User-Agent"] == "Amazon/EventBridge/ApiDestinations"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert by_key["bad.png"][1]["error"]["class"] == "invalid_sidecar"
