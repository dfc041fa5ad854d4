"""`backdrop demo`: the whole pipeline, offline, on real sample photos; results in ./out/.

Sample photos and their sidecars are uploaded to the local input bucket (some sidecars first,
some after), plus one sidecar with a typo, one file that only pretends to be a JPEG, and one
duplicate upload, to show the DLQ and the de-duplication at work. One product asks for two
variants (two paid calls) and two renditions of each (no call); one photo comes from a phone held
upright (turned in EXIF, Display P3, with GPS and a serial number). The real handler processes
them through the local work queue and the emulated API; every object it writes comes back.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from backdrop import completion_events, figures
from backdrop.console import function_output_to
from backdrop.dead_letters import read_all, release
from backdrop.demo.contact_sheet import (
    PictureFacts,
    RenditionShot,
    SheetEntry,
    VariantShot,
    write_contact_sheet,
)
from backdrop.demo.picture_facts import as_stored_png, carried, facts_of, orientation_of
from backdrop.emulator import EmulatorSettings
from backdrop.local.sandbox import Sandbox, sandbox
from backdrop.local.stack import LOCAL_API_KEY

SAMPLES = Path(__file__).parent / "samples"
PREFIX = "shop/"


@dataclass(frozen=True)
class Upload:
    key: str
    body: bytes


@dataclass(frozen=True)
class Plan:
    uploads: list[Upload]
    pairs: dict[str, dict[str, Any]]  # image key -> its sidecar
    expected_results: int  # one a variant, each a paid call
    expected_renditions: int  # never a paid call
    expected_failures: dict[str, str]  # image key -> error class


@dataclass(frozen=True)
class OutputFile:
    """An object the function wrote, as its metadata names it."""

    key: str
    source_key: str
    variant: int
    rendition: str | None  # None for the result itself
    facts: PictureFacts | None
    carried: tuple[str, ...]


def plan_uploads(manifest: list[dict[str, Any]]) -> Plan:
    uploads: list[Upload] = []
    pairs: dict[str, dict[str, Any]] = {}
    results = renditions = 0
    for number, sample in enumerate(manifest, start=1):
        image_key = PREFIX + sample["file"]
        sidecar = {k: v for k, v in sample.items() if k != "file"}
        sidecar["metadata"] = {"sku": f"DEMO-{number:03d}"}
        halves = [
            Upload(image_key, (SAMPLES / sample["file"]).read_bytes()),
            _json(image_key + ".json", sidecar),
        ]
        uploads.extend(reversed(halves) if number % 2 == 0 else halves)  # both orders work
        pairs[image_key] = sidecar
        calls = len(sample.get("variants") or [{}])
        results += calls
        renditions += calls * len(sample.get("renditions") or [])
    first = manifest[0]
    typo_key = f"{PREFIX}typo-{first['file']}"
    pairs[typo_key] = {"prompt": first["prompt"], "sead": 1234}
    uploads.append(Upload(typo_key, (SAMPLES / first["file"]).read_bytes()))
    uploads.append(_json(typo_key + ".json", pairs[typo_key]))
    fake_key = f"{PREFIX}not-a-photo.jpg"
    pairs[fake_key] = {"prompt": "a sunny beach"}
    uploads.append(Upload(fake_key, b"%PDF-1.7\nthis is a price list, not a photograph\n"))
    uploads.append(_json(fake_key + ".json", pairs[fake_key]))
    # The same bytes again: S3 sends a new event, the pair's ETags are the same, no second call.
    uploads.append(Upload(PREFIX + first["file"], (SAMPLES / first["file"]).read_bytes()))
    return Plan(
        uploads=uploads,
        pairs=pairs,
        expected_results=results,
        expected_renditions=renditions,
        expected_failures={typo_key: "invalid_sidecar", fake_key: "invalid_image"},
    )


# What a run writes into its folder: only these are removed before the next run, so that
# ``--out .`` or a folder of the user's own loses nothing else.
_RESULT_ENTRIES = (
    "inputs",
    "as-stored",
    "outputs",
    "failures.json",
    "events.json",
    "index.html",
    "function.log",
)


def _clear_earlier_results(out: Path) -> None:
    for name in _RESULT_ENTRIES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _json(key: str, document: dict[str, Any]) -> Upload:
    return Upload(key, json.dumps(document, indent=2).encode("utf-8"))


def run_demo(out: Path, *, latency: float = 0.5, settle_seconds: int = 2, timeout: float = 300) -> int:
    manifest = json.loads((SAMPLES / "manifest.json").read_text(encoding="utf-8"))
    plan = plan_uploads(manifest)
    _clear_earlier_results(out)
    started = time.monotonic()
    with function_output_to(out / "function.log") as console:
        console.print(
            "[bold]Backdrop demo[/]: the real handler on a local stack (moto) and the [italic]offline "
            "Segmind emulator[/] (classical image processing, not the real model). "
            "Nothing leaves this machine."
        )
        settings = EmulatorSettings(api_keys={LOCAL_API_KEY}, latency_seconds=latency, credits=25.0)
        with sandbox(
            parameters={"PairSettleSeconds": str(settle_seconds)}, emulator_settings=settings
        ) as box:
            _upload(box, plan)
            finished = _wait_with_progress(box, plan, console, timeout)
            report = _collect(box, plan, out)
        elapsed = time.monotonic() - started
        report["figures"] = figures.read(out / "function.log")
        _print_summary(console, report, elapsed, finished, out)
        _write_sheet(out, plan, report, elapsed)
    made = (report["processed"], report["renditions"])
    return 0 if finished and made == (plan.expected_results, plan.expected_renditions) else 1


def _upload(box: Sandbox, plan: Plan) -> None:
    s3 = box.stack.client("s3")
    for upload in plan.uploads:
        s3.put_object(Bucket=box.stack.input_bucket, Key=upload.key, Body=upload.body)


def _wait_with_progress(box: Sandbox, plan: Plan, console: Console, timeout: float) -> bool:
    s3, sqs = box.stack.client("s3"), box.stack.client("sqs")
    total = plan.expected_results + plan.expected_renditions + len(plan.expected_failures)

    def done_count() -> int:
        outputs = s3.list_objects_v2(Bucket=box.stack.output_bucket).get("KeyCount", 0)
        failures = int(_queue_depth(sqs, box.stack.dlq_url))
        return outputs + failures

    def queue_idle() -> bool:
        return _queue_depth(sqs, box.stack.work_queue_url) == 0 and not box.mapping.busy

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("results, renditions and failures", total=total)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = done_count()
            progress.update(task, completed=min(count, total))
            if count >= total and queue_idle():
                return True
            time.sleep(0.25)
    return False


def _queue_depth(sqs: Any, url: str) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def _collect(box: Sandbox, plan: Plan, out: Path) -> dict[str, Any]:
    s3, sqs = box.stack.client("s3"), box.stack.client("sqs")
    for upload in plan.uploads:
        if not upload.key.endswith(".json"):
            _write(out / "inputs" / upload.key, upload.body)
    outputs = [_download(s3, box.stack.output_bucket, key, out) for key in _keys(s3, box.stack.output_bucket)]
    letters = read_all(sqs, box.stack.dlq_url)
    release(sqs, box.stack.dlq_url, letters)
    failures = {letter.key: letter.record or {"error": {"class": letter.error_class}} for letter in letters}
    (out / "failures.json").write_text(json.dumps(list(failures.values()), indent=2, ensure_ascii=False))
    events = completion_events.take(sqs, box.stack.events_queue_url)
    told = [{"detail-type": event.detail_type, "detail": event.detail} for event in events]
    (out / "events.json").write_text(json.dumps(told, indent=2, ensure_ascii=False))
    return {
        "outputs": outputs,
        "failures": failures,
        "processed": sum(file.rendition is None for file in outputs),
        "renditions": sum(file.rendition is not None for file in outputs),
        "pairs": len({file.source_key for file in outputs}),
        # A failure after a paid call (its result not stored) tells its cost too.
        "events_usd": sum((event.detail.get("cost") or {}).get("estimated_usd") or 0.0 for event in events),
        "failed_by_class": Counter(letter.error_class for letter in letters),
        "events": Counter(event.detail_type for event in events),
        "api_calls": len(box.emulator.requests),
        "billed_calls": box.emulator.billed_calls,
        "cost": box.emulator.spent_usd,
        "uploads": len(plan.uploads),
    }


def _keys(s3: Any, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _download(s3: Any, bucket: str, key: str, out: Path) -> OutputFile:
    obj = s3.get_object(Bucket=bucket, Key=key)
    data = obj["Body"].read()
    _write(out / "outputs" / key, data)
    metadata = obj["Metadata"]
    return OutputFile(
        key=key,
        source_key=unquote(metadata["source-key"]),
        variant=int(metadata.get("variant", "1")),
        rendition=metadata.get("rendition"),
        facts=facts_of(data),
        carried=carried(data),
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _summary_rows(report: dict[str, Any], elapsed: float) -> list[tuple[str, str]]:
    failed = ", ".join(f"{cls}: {n}" for cls, n in sorted(report["failed_by_class"].items())) or "none"
    return [
        ("Uploads (images, sidecars, one repeat)", str(report["uploads"])),
        ("Pairs processed", str(report["pairs"])),
        ("Results (a paid call each, variants included)", str(report["processed"])),
        ("Renditions written (no paid call)", str(report["renditions"])),
        ("Files written to outputs/", str(len(report["outputs"]))),
        ("Failed, by class (in the DLQ)", failed),
        ("Duplicate events skipped", str(report["figures"].duplicates_skipped)),
        ("Completion events (events.json)", _events_told(report["events"])),
        ("API calls (billed)", f"{report['api_calls']} ({report['billed_calls']})"),
        ("Estimated cost at Segmind's prices", f"${report['cost']:.3f}"),
        ("Estimated cost in the completion events", f"${report['events_usd']:.3f}"),
        *report["figures"].api_rows(),
        ("Wall time", f"{elapsed:.1f} s"),
    ]


def _events_told(events: Counter[str]) -> str:
    processed, failed = events[completion_events.PROCESSED], events[completion_events.FAILED]
    return f"{processed} processed, {failed} failed"


def _print_summary(
    console: Console, report: dict[str, Any], elapsed: float, finished: bool, out: Path
) -> None:
    table = Table(title="Backdrop demo", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in _summary_rows(report, elapsed):
        table.add_row(label, value)
    console.print(table)
    for key, record in sorted(report["failures"].items()):
        error = record.get("error", {})
        console.print(f"  [red]✗[/] {key}: [bold]{error.get('class')}[/] — {error.get('message', '')}")
    if not finished:
        console.print("[red]The pipeline did not finish in time; see out/function.log.[/]")
    console.print(
        f"Results: [bold]{out}/index.html[/] (contact sheet), outputs in {out}/outputs/, "
        f"logs in {out}/function.log"
    )


def _write_sheet(out: Path, plan: Plan, report: dict[str, Any], elapsed: float) -> None:
    entries: list[SheetEntry] = []
    for upload in plan.uploads:
        if upload.key.endswith(".json") or any(e.name == upload.key for e in entries):
            continue
        as_stored = _as_stored_copy(out, upload)
        entries.append(_sheet_entry(upload, plan.pairs.get(upload.key) or {}, report, as_stored))
    write_contact_sheet(
        out,
        entries,
        title="Backdrop demo",
        summary=_summary_rows(report, elapsed),
        timeline=report["figures"].timeline,
    )


def _as_stored_copy(out: Path, upload: Upload) -> str | None:
    """For an input turned by its EXIF orientation: its pixels as stored, in a PNG without EXIF,
    at ``as-stored/<key>.png``; the path relative to ``out``. None for every other input."""
    if orientation_of(upload.body) == 1:
        return None
    relative = f"as-stored/{upload.key}.png"
    _write(out / relative, as_stored_png(upload.body))
    return relative


def _sheet_entry(
    upload: Upload, sidecar: dict[str, Any], report: dict[str, Any], as_stored: str | None
) -> SheetEntry:
    """An input with every variant's result and renditions the function wrote for it."""
    files: list[OutputFile] = [file for file in report["outputs"] if file.source_key == upload.key]
    results = {file.variant: file for file in files if file.rendition is None}
    failure = report["failures"].get(upload.key, {}).get("error", {})
    input_facts = facts_of(upload.body)
    first = results.get(1)
    asked = sidecar.get("variants") or []
    variants = tuple(
        VariantShot(
            number=number,
            prompt=asked[number - 1].get("prompt") or sidecar.get("prompt"),
            output_path=_path(results.get(number)),
            facts=_facts(results.get(number)),
            renditions=_rendition_shots(files, number),
        )
        for number in range(2, len(asked) + 1)
    )
    noticed = carried(upload.body)
    kept_by_outputs = {note for file in files for note in file.carried}
    return SheetEntry(
        name=upload.key,
        input_path=f"inputs/{upload.key}" if input_facts else None,
        output_path=_path(first),
        prompt=sidecar.get("prompt"),
        error_class=failure.get("class"),
        error_message=failure.get("message"),
        input_facts=input_facts,
        output_facts=_facts(first),
        input_notes=noticed,
        output_notes=tuple(note for note in noticed if note in kept_by_outputs),
        input_as_stored_path=as_stored,
        renditions=_rendition_shots(files, 1),
        variants=variants,
    )


def _path(file: OutputFile | None) -> str | None:
    return f"outputs/{file.key}" if file else None


def _facts(file: OutputFile | None) -> PictureFacts | None:
    return file.facts if file else None


def _rendition_shots(files: list[OutputFile], variant: int) -> tuple[RenditionShot, ...]:
    return tuple(
        RenditionShot(name=file.rendition, path=f"outputs/{file.key}", facts=file.facts)
        for file in sorted(files, key=lambda file: file.key)
        if file.variant == variant and file.rendition is not None and file.facts is not None
    )
