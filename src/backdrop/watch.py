"""`backdrop watch DIR`: the drop-a-file automation without AWS.

An image and its sidecar saved into DIR are uploaded to the local input bucket; results come
back into DIR/out (failures as ``<key>.error.json`` in DIR/out/failed). The local stack listens
on 127.0.0.1:5000 and the emulator on :8080 while it runs (``--moto-port``, ``--api-port``), as
events/env.json expects, so `backdrop dlq --local` and `sam local invoke --env-vars
events/env.json` work against it.

The local stack lives in memory and starts empty each run. So that a restart does not upload,
and pay for, every file again, DIR/out/.backdrop-watch.json remembers what was uploaded (each
file's MD5, which is also its S3 ETag) and which versions each result came from: a file whose
content produced a result still in DIR/out is not uploaded again, until a file of its pair
changes.

``--existing-bucket NAME`` runs the template's existing-bucket mode: the local stack creates no
input bucket, so a stand-in for yours is made first, and its EventBridge delivery turned on with
`backdrop enable-eventbridge`'s own helper, as you would on AWS. Files are uploaded under
``--input-prefix``; with ``--outputs-in-bucket`` the results come back from that same bucket,
under ``--output-prefix``. In DIR/out they are laid out as DIR is, without the prefixes.

With ``--stack NAME`` or ``--local``, the same folder is run against a stack instead (backdrop/drop/).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
from rich.console import Console
from rich.markup import escape

from backdrop import completion_events
from backdrop.bucket_events import enable_eventbridge
from backdrop.dead_letters import DeadLetter, read_all, release
from backdrop.emulator import EmulatorSettings
from backdrop.folder import (
    STATE_FILE,
    OutFolder,
    SettledFiles,
    WatchState,
    content_md5,
    duplicate_line,
    failed_line,
    pair_stem,
    processed_line,
    uploaded_line,
    waiting_for_image_line,
    waiting_for_sidecar_line,
)
from backdrop.local.moto_server import moto_server
from backdrop.local.sandbox import Sandbox, sandbox
from backdrop.local.stack import LOCAL_API_KEY, REGION

# What the console repeats from the function's own log (DIR/out/function.log, one JSON object a
# line, as CloudWatch has it): these message texts of backdrop_fn/pipeline.py and their key field.
# That is the whole coupling to the function: were a text to change, its notice would go quiet.
WAITING_FOR_SIDECAR = "image waits for its sidecar"
WAITING_FOR_IMAGE = "sidecar waits for its image"
HANDLED_BEFORE = "duplicate: this pair was handled before"
NOTICES: dict[str, tuple[str, Callable[[str], str]]] = {
    WAITING_FOR_SIDECAR: ("key", waiting_for_sidecar_line),
    WAITING_FOR_IMAGE: ("key", waiting_for_image_line),
    HANDLED_BEFORE: ("image_key", duplicate_line),
}


class FunctionLog:
    """The function's JSON log lines, read as they are appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def new_entries(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # a line still being written
        return [entry for entry in map(_json_object, lines) if entry is not None]


def _json_object(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class FolderSync:
    """Uploads settled files of ``folder`` and brings results back; one step per ``sync()`` call."""

    box: Sandbox
    folder: Path
    out: Path
    console: Console
    function_log: Path | None = None
    # A developer's own endpoint: each completion event's detail is POSTed to it.
    webhook: str | None = None
    webhook_authorization: str = completion_events.DEFAULT_AUTHORIZATION
    _in_bucket: dict[str, set[str]] = field(default_factory=dict)  # key → every MD5 uploaded this run
    _held: dict[str, dict[str, bytes]] = field(default_factory=dict)  # pair stem → unchanged files
    _redropped: set[str] = field(default_factory=set)  # pair stems saved again unchanged
    _downloaded: dict[str, str] = field(default_factory=dict)
    _failures_seen: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(
        default_factory=lambda: {"uploaded": 0, "processed": 0, "failed": 0, "skipped": 0, "events": 0}
    )

    def __post_init__(self) -> None:
        self.state = WatchState.load(self.out / STATE_FILE)
        self._log = FunctionLog(self.function_log) if self.function_log else None
        self._settled = SettledFiles(self.folder, self.out)
        self._results = OutFolder(self.out, (self.box.stack.output_prefix, self.box.stack.input_prefix))

    def sync(self) -> None:
        self._upload_settled_files()
        self._download_results()
        self._record_failures()
        self._report_function_log()
        self._report_events()
        self.state.save()

    # -- uploads ----------------------------------------------------------------------------------

    def _upload_settled_files(self) -> None:
        skipped: list[str] = []
        for path in self._settled.changes():
            key = self.box.stack.input_prefix + path.relative_to(self.folder).as_posix()
            body = path.read_bytes()
            md5 = content_md5(body)
            if key not in self._in_bucket and self.state.result_from(key, md5):
                # Done by an earlier run: the fresh stack would pay again. Held back, unless its pair changes.
                self._held.setdefault(pair_stem(key), {})[key] = body
                skipped.append(key)
                continue
            if md5 in self._in_bucket.get(key, ()):
                self._redropped.add(pair_stem(key))
            for partner, partner_body in self._held.pop(pair_stem(key), {}).items():
                self._upload(partner, partner_body, note=" (unchanged, sent again: its pair changed)")
            self._upload(key, body)
        if skipped:
            self.counts["skipped"] += len(skipped)
            names = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
            self.console.print(
                f"[blue]=[/] {escape(names)}: unchanged since an earlier run, whose results are in "
                f"{self.out.name}/: not uploaded again, no charge"
            )

    def _upload(self, key: str, body: bytes, note: str = "") -> None:
        s3 = self.box.stack.client("s3")
        s3.put_object(Bucket=self.box.stack.input_bucket, Key=key, Body=body)
        md5 = content_md5(body)
        self._in_bucket.setdefault(key, set()).add(md5)
        self.state.uploaded[key] = md5
        self.counts["uploaded"] += 1
        self.console.print(uploaded_line(key, note))

    # -- results ----------------------------------------------------------------------------------

    def _download_results(self) -> None:
        s3 = self.box.stack.client("s3")
        bucket = self.box.stack.output_bucket
        # Results only: the bucket may be the inputs' too (--outputs-in-bucket).
        listing = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=self.box.stack.output_prefix
        )
        for item in listing.search("Contents[]"):
            if item is None or self._downloaded.get(item["Key"]) == item["ETag"]:
                continue
            obj = s3.get_object(Bucket=bucket, Key=item["Key"])
            target = self._results.keep_result(item["Key"], obj["Body"].read())
            self._downloaded[item["Key"]] = item["ETag"]
            metadata = {name: unquote(value) for name, value in obj["Metadata"].items()}
            # A result a paid call made (each variant's); its renditions come with it, free.
            self.counts["processed"] += "rendition" not in metadata
            source = metadata.get("source-key", "?")
            self.state.record_result(
                source,
                target,
                {
                    source: metadata.get("source-etag"),
                    metadata.get("sidecar-key", ""): metadata.get("sidecar-etag"),
                },
            )
            self.console.print(processed_line(source, str(target.relative_to(self.folder))))
            stale = self._results.drop_stale_failure(source)
            if stale is not None:
                self.console.print(f"  (its earlier failure, {stale.relative_to(self.folder)}, is removed)")

    def _record_failures(self) -> None:
        sqs = self.box.stack.client("sqs")
        # Polled at every step: the local queue (moto) has one store, so a short poll sees it all.
        letters = read_all(sqs, self.box.stack.dlq_url, hide_seconds=5, wait_seconds=0)
        release(sqs, self.box.stack.dlq_url, letters)  # left in the DLQ, for `backdrop redrive --local`
        for letter in letters:
            if letter.message_id in self._failures_seen:
                continue
            self._failures_seen.add(letter.message_id)
            target = self._results.keep_failure(letter.key, letter.record or {"body": letter.body})
            self.state.record_result(letter.key, target, self._inputs_of(letter))
            self.counts["failed"] += 1
            self.console.print(failed_line(letter.key, letter.error_class, letter.message))

    def _inputs_of(self, letter: DeadLetter) -> dict[str, str | None]:
        source = (letter.record or {}).get("source") or {}
        sidecar = str(source.get("sidecar_key") or "")
        etag = str(source.get("etag") or "").strip('"') or self.state.uploaded.get(letter.key)
        return {letter.key: etag, sidecar: self.state.uploaded.get(sidecar)}

    # -- what the function said -------------------------------------------------------------------

    def _report_function_log(self) -> None:
        said: set[str] = set()
        for entry in self._log.new_entries() if self._log else []:
            field_name, notice = NOTICES.get(str(entry.get("message")), ("", _silent))
            key = str(entry.get(field_name) or "")
            if not key or (entry["message"] == HANDLED_BEFORE and not self._was_redropped(key)):
                continue  # the other half's event of a new pair is a duplicate too: no news to the user
            line = notice(key)
            if line not in said:
                said.add(line)
                self.console.print(line)

    def _report_events(self) -> None:
        for event in completion_events.take(self.box.stack.client("sqs"), self.box.stack.events_queue_url):
            self.counts["events"] += 1
            line = event.line()
            if self.webhook:
                delivered = completion_events.post(
                    self.webhook, event, authorization=self.webhook_authorization
                )
                line += f" → webhook: {escape(delivered)}"
            self.console.print(line)

    def _was_redropped(self, image_key: str) -> bool:
        stem = pair_stem(image_key)
        if stem in self._redropped:
            self._redropped.discard(stem)
            return True
        return False


def _silent(key: str) -> str:
    return ""


def dlq_commands(endpoint: str) -> str:
    """The `backdrop dlq` and `backdrop redrive` lines that reach the local stack at ``endpoint``."""
    where = f"--local --moto-port {urlparse(endpoint).port}"
    return f"backdrop dlq {where}   ·   backdrop redrive {where} [--error-class CLASS]"


@dataclass(frozen=True)
class ExistingBucket:
    """`backdrop watch --existing-bucket NAME`: the template's existing-bucket mode, locally."""

    name: str
    input_prefix: str = ""
    output_prefix: str = ""
    outputs_in_bucket: bool = False

    def parameters(self) -> dict[str, str]:
        return {
            "ExistingInputBucket": self.name,
            "InputPrefix": self.input_prefix,
            "OutputPrefix": self.output_prefix,
            "OutputToInputBucket": "true" if self.outputs_in_bucket else "false",
        }

    def stand_in(self, endpoint: str, console: Console) -> None:
        """Yours, as far as the local stack can tell: a bucket with EventBridge delivery on."""
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 (moto takes any credentials)
        )
        s3.create_bucket(Bucket=self.name)
        enable_eventbridge(s3, self.name)
        console.print(
            f"A local stand-in for your bucket [bold]{escape(self.name)}[/], its EventBridge delivery "
            f"turned on as `backdrop enable-eventbridge {escape(self.name)}` does on AWS."
        )


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
    function_log: Path | None = None,
    webhook: str | None = None,
    webhook_authorization: str = completion_events.DEFAULT_AUTHORIZATION,
    existing: ExistingBucket | None = None,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    settings = EmulatorSettings(api_keys={LOCAL_API_KEY})
    parameters = {"PairSettleSeconds": str(settle_seconds), **(existing.parameters() if existing else {})}
    with moto_server(moto_port) as endpoint:
        if existing is not None:
            existing.stand_in(endpoint, console)
        with sandbox(
            parameters=parameters, emulator_settings=settings, moto_endpoint=endpoint, emulator_port=api_port
        ) as box:
            sync = FolderSync(box, folder, out, console, function_log, webhook, webhook_authorization)
            return _watch_folder(sync, stop=stop, interval=interval)


def _watch_folder(sync: FolderSync, *, stop: threading.Event, interval: float) -> dict[str, Any]:
    box, console = sync.box, sync.console
    console.print(
        f"Watching [bold]{sync.folder}[/]: drop an image and its .json sidecar; results in "
        f"[bold]{sync.out}[/]. Local stack on {box.stack.endpoint}, offline Segmind emulator on "
        f"{box.emulator.url}."
    )
    console.print(f"Failures: {dlq_commands(box.stack.endpoint)}", soft_wrap=True)
    console.print("Ctrl-C to stop.")
    if sync.webhook:
        console.print(f"Each completion event's detail is POSTed to [bold]{escape(sync.webhook)}[/].")
    while not stop.wait(interval):
        sync.sync()
    sync.sync()
    return dict(sync.counts, api_calls=len(box.emulator.requests))
