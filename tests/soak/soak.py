"""The fault soak: many uploads through the local stack while the API misbehaves; then account for each.

    python -m tests.soak.soak --pairs 1000        (make soak)

Every upload must end in exactly one output or exactly one DLQ record of the right class (or be
knowingly waiting for a sidecar that never comes); no pair may be paid for twice, and no invalid
or duplicate input paid for at all; the API key must appear in no log line, DLQ body or metadata.
The run prints an accounting table and writes it as JSON; its exit code says whether it held.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote, urlsplit

from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from backdrop.console import function_output_to
from backdrop.dead_letters import DeadLetter, read_all
from backdrop.emulator import EmulatorSettings
from backdrop.local.sandbox import Sandbox, sandbox

API_KEY = "sk-soak-7d2f9c41e8b3"
TRANSIENT = {"rate_limited", "server_error", "timeout"}
EXPECTED_CLASS = {"invalid_sidecar": {"invalid_sidecar"}, "non_image": {"invalid_image"}, "valid": TRANSIENT}
# Injected by the emulator on every request: the mix of faults.
FAULTS = {"429": 0.20, "500": 0.03, "503": 0.02, "timeout": 0.02}


@dataclass
class Pair:
    kind: str  # valid, invalid_sidecar, non_image, no_sidecar
    image_key: str
    image: bytes
    sidecar: bytes | None
    sidecar_first: bool
    duplicate_events: int = 0


@dataclass
class Accounting:
    pairs: int = 0
    objects_uploaded: int = 0
    duplicate_events: int = 0
    seconds: float = 0.0
    api_requests: int = 0
    api_retries: int = 0
    billed_calls: int = 0
    estimated_cost_usd: float = 0.0
    outage_seconds: float = 0.0
    slowest_answer_seconds: float = 0.0
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.problems


def plan(pairs: int, seed: int) -> list[Pair]:
    rng = random.Random(seed)
    plans = []
    for number in range(pairs):
        roll = rng.random()
        kind = (
            "invalid_sidecar"
            if roll < 0.05
            else "non_image"
            if roll < 0.08
            else "no_sidecar"
            if roll < 0.10
            else "valid"
        )
        key = f"soak/{number // 100:02d}/item {number:05d}.{rng.choice(['png', 'jpg', 'webp'])}"
        image = (
            b"%PDF-1.4 not a picture " + bytes([number % 256]) * 40
            if kind == "non_image"
            else _picture(rng, key)
        )
        sidecar: dict[str, Any] | None = {
            "prompt": f"soak backdrop {number}",
            "seed": 100 + number,
            "rendering_speed": rng.choice(["TURBO", "DEFAULT", "QUALITY"]),
        }
        if kind == "invalid_sidecar":
            sidecar = rng.choice([{"prompt": "x", "seed": 5}, {"prompt": "x", "sead": 1}, {"prompt": ""}])
        if kind == "no_sidecar":
            sidecar = None
        plans.append(
            Pair(
                kind=kind,
                image_key=key,
                image=image,
                sidecar=None if sidecar is None else json.dumps(sidecar).encode(),
                sidecar_first=rng.random() < 0.5,
                duplicate_events=1 if rng.random() < 0.10 else 0,
            )
        )
    return plans


def _picture(rng: random.Random, key: str) -> bytes:
    image = Image.new("RGB", (48, 36), (235, 235, 235))
    image.paste(tuple(rng.randrange(256) for _ in range(3)), (12, 9, 36, 27))
    out = io.BytesIO()
    image.save(out, format={"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[key.rsplit(".", 1)[1]])
    return out.getvalue()


def _duplicate_event(box: Sandbox, key: str) -> None:
    """What S3's at-least-once delivery sometimes does: the same notification a second time."""
    s3, sqs = box.stack.client("s3"), box.stack.client("sqs")
    head = s3.head_object(Bucket=box.stack.input_bucket, Key=key)
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": box.stack.input_bucket},
            "object": {
                "key": quote_plus(key, safe="/"),
                "eTag": head["ETag"].strip('"'),
                "size": head["ContentLength"],
            },
        },
    }
    sqs.send_message(QueueUrl=box.stack.work_queue_url, MessageBody=json.dumps({"Records": [record]}))


def upload(box: Sandbox, pair: Pair) -> int:
    s3 = box.stack.client("s3")
    halves = [(pair.image_key, pair.image)]
    if pair.sidecar is not None:
        halves.append((pair.image_key + ".json", pair.sidecar))
    if pair.sidecar_first:
        halves.reverse()
    for key, body in halves:
        s3.put_object(Bucket=box.stack.input_bucket, Key=key, Body=body)
    for _ in range(pair.duplicate_events):
        _duplicate_event(box, random.choice(halves)[0])
    return len(halves)


def queue_depth(box: Sandbox) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = box.stack.client("sqs").get_queue_attributes(
        QueueUrl=box.stack.work_queue_url, AttributeNames=names
    )["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def run(
    pairs: int, out: Path, *, seed: int, concurrency: int, outage_seconds: float, timeout: float
) -> Accounting:
    plans = plan(pairs, seed)
    out.mkdir(parents=True, exist_ok=True)
    accounting = Accounting(pairs=pairs, outage_seconds=outage_seconds)
    # Injected timeouts stall past the client's read timeout and are never billed. The read timeout
    # itself stays far above the emulator's answer time under load: a call the API finished (and
    # billed) after the client gave up would be paid again when retried, as it would be for real.
    # With a 1-s read timeout, early runs of this soak billed 2 to 13 pairs twice in this way.
    settings = EmulatorSettings(
        api_keys={API_KEY},
        latency_seconds=0.02,
        faults=dict(FAULTS),
        timeout_stall_seconds=11,
        random_seed=seed,
    )
    function_env = {"API_TIMEOUT_SECONDS": "10", "API_BACKOFF_SECONDS": "0.05", "RETRY_BACKOFF_SECONDS": "2"}
    started = time.monotonic()
    with (
        function_output_to(out / "function.log") as console,
        sandbox(
            parameters={"PairSettleSeconds": "1", "MaximumConcurrency": str(concurrency)},
            emulator_settings=settings,
            function_environment=function_env,
        ) as box,
    ):
        console.print(
            f"[bold]Soak[/]: {pairs} pairs, faults {FAULTS}, a {outage_seconds:.0f}-s API outage, "
            f"concurrency {concurrency}"
        )
        outage = threading.Thread(target=_outage, args=(box, outage_seconds, plans, console), daemon=True)
        with ThreadPoolExecutor(4) as pool:
            uploads = list(pool.map(lambda p: upload(box, p), plans))
        outage.start()
        accounting.objects_uploaded = sum(uploads)
        accounting.duplicate_events = sum(p.duplicate_events for p in plans)
        _wait_until_settled(box, console, timeout)
        outage.join()
        accounting.seconds = time.monotonic() - started
        letters = read_all(box.stack.client("sqs"), box.stack.dlq_url, hide_seconds=600)
        _account(box, plans, letters, accounting, out)
        _scan_for_key(box, letters, out / "function.log", accounting)
        _print(console, accounting)
    (out / "soak.json").write_text(json.dumps(asdict(accounting), indent=2))
    return accounting


def _outage(box: Sandbox, seconds: float, plans: list[Pair], console: Console) -> None:
    """Mid-run, the API goes away for a while: every call fails, then it comes back."""
    target, give_up = len(plans) // 3, time.monotonic() + 300
    while box.emulator.billed_calls < target and time.monotonic() < give_up:
        time.sleep(0.2)
    console.print(f"[red]API outage[/] for {seconds:.0f} s after {box.emulator.billed_calls} billed calls")
    box.emulator.settings.faults = {"503": 1.0}
    time.sleep(seconds)
    box.emulator.settings.faults = dict(FAULTS)
    console.print("[green]API back[/]")


def _wait_until_settled(box: Sandbox, console: Console, timeout: float) -> None:
    deadline, quiet_since = time.monotonic() + timeout, None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("messages left on the work queue", total=None)
        while time.monotonic() < deadline:
            depth = queue_depth(box)
            progress.update(
                task,
                description=f"messages left on the work queue: {depth}",
                completed=box.mapping.stats.deleted,
            )
            if depth == 0 and not box.mapping.busy:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 3:
                    return
            else:
                quiet_since = None
            time.sleep(0.5)


def _image_key(body: Any) -> str:
    """The input key an API request was about: the path of its presigned image URL."""
    try:
        return unquote(urlsplit(body["image"]).path.split("/", 2)[2])
    except (TypeError, KeyError, IndexError):
        return "?"


def _account(
    box: Sandbox, plans: list[Pair], letters: list[DeadLetter], accounting: Accounting, out: Path
) -> None:
    s3 = box.stack.client("s3")
    outputs: dict[str, list[dict[str, str]]] = defaultdict(list)
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=box.stack.output_bucket):
        for item in page.get("Contents", []):
            metadata = s3.head_object(Bucket=box.stack.output_bucket, Key=item["Key"])["Metadata"]
            outputs[unquote(metadata["source-key"])].append(metadata)
    dead: dict[str, list[str]] = defaultdict(list)
    for letter in letters:
        dead[letter.key].append(letter.error_class)
    billed: Counter[str] = Counter()
    with (out / "api-requests.jsonl").open("w") as trail:
        for request in box.emulator.requests:
            key = _image_key(request.body)
            if request.billed:
                billed[key] += 1
            trail.write(
                json.dumps(
                    {
                        "key": key,
                        "status": request.status,
                        "billed": request.billed,
                        "seconds": round(request.seconds, 3),
                        "at": request.at,
                    }
                )
                + "\n"
            )

    accounting.api_requests = len(box.emulator.requests)
    accounting.billed_calls = box.emulator.billed_calls
    accounting.api_retries = accounting.api_requests - accounting.billed_calls
    accounting.estimated_cost_usd = round(box.emulator.spent_usd, 3)
    accounting.slowest_answer_seconds = round(
        max((r.seconds for r in box.emulator.requests if r.billed), default=0), 2
    )
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for pair in plans:
        row = rows[pair.kind]
        row["pairs"] += 1
        outs, deaths, paid = (
            outputs.get(pair.image_key, []),
            dead.get(pair.image_key, []),
            billed[pair.image_key],
        )
        row["outputs"] += len(outs)
        row["billed"] += paid
        for error_class in deaths:
            row[f"dlq:{error_class}"] += 1
        problem = _judge(pair, outs, deaths, paid)
        if problem:
            accounting.problems.append(f"{pair.image_key} ({pair.kind}): {problem}")
        elif not outs and not deaths:
            row["waiting"] += 1
    unknown = set(dead) - {p.image_key for p in plans}
    accounting.problems.extend(f"a DLQ record for no upload: {key}" for key in sorted(unknown))
    accounting.rows = {kind: dict(row) for kind, row in sorted(rows.items())}


def _judge(pair: Pair, outs: list[dict[str, str]], deaths: list[str], paid: int) -> str | None:
    if pair.kind == "no_sidecar":
        return None if not outs and not deaths and not paid else "processed although it has no sidecar"
    if len(outs) + len(deaths) != 1:
        return f"{len(outs)} outputs and {len(deaths)} DLQ records (exactly one of either expected)"
    if paid > 1:
        return f"paid for {paid} times"
    if outs:
        return None if paid == 1 else f"an output, but {paid} billed calls"
    if paid:
        return f"paid for, yet dead-lettered as {deaths[0]}"
    if deaths[0] not in EXPECTED_CLASS[pair.kind]:
        return f"DLQ record of class {deaths[0]}, expected {sorted(EXPECTED_CLASS[pair.kind])}"
    return None


def _scan_for_key(box: Sandbox, letters: list[DeadLetter], log: Path, accounting: Accounting) -> None:
    places = {"function log and metrics": log.read_text(encoding="utf-8", errors="replace")}
    s3 = box.stack.client("s3")
    places["DLQ bodies"] = "".join(letter.body for letter in letters)
    metadata = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=box.stack.output_bucket):
        for item in page.get("Contents", []):
            metadata.append(
                json.dumps(s3.head_object(Bucket=box.stack.output_bucket, Key=item["Key"])["Metadata"])
            )
    places["output metadata"] = "".join(metadata)
    for place, text in places.items():
        if API_KEY in text:
            accounting.problems.append(f"the API key appears in the {place}")


def _print(console: Console, accounting: Accounting) -> None:
    table = Table(title="Soak accounting", title_justify="left")
    columns = ["pairs", "outputs", "waiting", "billed"]
    classes = sorted({name for row in accounting.rows.values() for name in row if name.startswith("dlq:")})
    for column in ["kind", *columns, *classes]:
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, row in accounting.rows.items():
        table.add_row(kind, *(str(row.get(name, 0)) for name in columns + classes))
    console.print(table)
    console.print(
        f"{accounting.objects_uploaded} objects uploaded for {accounting.pairs} pairs, "
        f"{accounting.duplicate_events} duplicate S3 events; {accounting.api_requests} API requests, "
        f"{accounting.api_retries} of them failed and retried, {accounting.billed_calls} billed "
        f"(${accounting.estimated_cost_usd:.2f}); slowest answer {accounting.slowest_answer_seconds} s; "
        f"{accounting.seconds:.0f} s"
    )
    if accounting.held:
        console.print("[bold green]Every upload accounted for; nothing paid twice; the key never leaked.[/]")
    else:
        console.print(f"[bold red]{len(accounting.problems)} problems:[/]")
        for problem in accounting.problems[:30]:
            console.print(f"  {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--out", default="out/soak")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--outage", type=float, default=8.0, help="seconds of API outage mid-run")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    accounting = run(
        args.pairs,
        Path(args.out),
        seed=args.seed,
        concurrency=args.concurrency,
        outage_seconds=args.outage,
        timeout=args.timeout,
    )
    return 0 if accounting.held else 1


if __name__ == "__main__":
    sys.exit(main())
