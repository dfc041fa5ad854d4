"""The fault soak: many uploads through the local stack while the API misbehaves; then account for each.

    python -m tests.soak.soak --pairs 1000        (make soak)

Every upload must end in exactly one output or exactly one DLQ record of the right class (or be
knowingly waiting for a sidecar that never comes); no invalid or duplicate input may be paid for at
all; the API key must appear in no log line, DLQ body or metadata.

The faults: the emulator refuses (429, 5xx, timeouts, gzip bombs), echoes the key, and charges
answers it then loses (a hang-up, a stall, a drip past the deadline, an answer over
MAX_ANSWER_BYTES); a proxy in front of moto fails S3, DynamoDB, the DLQ's SendMessage and Secrets
Manager as AWS does, the output bucket refuses every write for a while, and then the event bus
refuses every completion event for a while; containers are
SIGKILLed mid-call; each container's /tmp is a tmpfs with room for only a few kept answers, so
that answers waiting for the output bucket fill it. A pair may be bought twice only when its
first answer was truly lost (in delivery, with a killed container, or held in memory for want of
room in /tmp when its write failed), never three times: the table says how many were paid twice,
and why. A failure may reach the DLQ twice only when the container that sent its record was
killed before it could record that it had. Every stored result and every DLQ record must be told
by at least one completion event, those the bus refused included.

The local stack's time is compressed: a 60-s function timeout and a 90-s visibility timeout (the
template's 180 s and 1,080 s), so that a killed container's batch comes back within the run.
The run prints an accounting table and writes it as JSON; its exit code says whether it held.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote, unquote_plus, urlsplit

from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from backdrop import completion_events
from backdrop.console import function_output_to
from backdrop.dead_letters import DeadLetter, read_all
from backdrop.emulator import EmulatorSettings
from backdrop.emulator.models import LOST_IN_DELIVERY
from backdrop.local.aws_faults import AwsRequest, FaultRule, queue_named
from backdrop.local.sandbox import Sandbox, sandbox
from backdrop.local.template import DEFAULT_TEMPLATE

API_KEY = "sk-soak-7d2f9c41e8b3"
TRANSIENT = {"rate_limited", "server_error", "timeout"}
EXPECTED_CLASS = {"invalid_sidecar": {"invalid_sidecar"}, "non_image": {"invalid_image"}, "valid": TRANSIENT}
# Injected by the emulator on every request: refusals, then answers charged and lost.
FAULTS = {
    "429": 0.20,
    "500": 0.03,
    "503": 0.02,
    "timeout": 0.02,
    "gzip_bomb": 0.004,
    "echo_key": 0.005,
    "hangup": 0.01,
    "stall": 0.004,
    "drip": 0.0005,
    "huge": 0.0005,
}


def _by_the_function(request: AwsRequest) -> bool:
    # Not the API's own fetch of a presigned image URL (signed in its query, not a header): what
    # the API answers when S3 fails it is not modelled here.
    return request.headers.get("Authorization") is not None


# Injected between the function and moto; boto3's own retries absorb most, as on AWS.
AWS_FAULTS = [
    FaultRule("s3", "PutObject", 0.03, "SlowDown", name="S3 PutObject SlowDown"),
    FaultRule("s3", "HeadObject", 0.02, "SlowDown", name="S3 HeadObject SlowDown"),
    FaultRule(
        "s3", "GetObject", 0.02, "InternalError", match=_by_the_function, name="S3 GetObject InternalError"
    ),
    FaultRule("dynamodb", None, 0.03, "ThrottlingException", name="DynamoDB throttled"),
    FaultRule("sqs", "SendMessage", 0.10, match=queue_named("backdrop-dlq"), name="DLQ SendMessage"),
    FaultRule("secretsmanager", None, 0.10, "InternalServiceError", name="Secrets Manager"),
]
# Uploads go in chunks of this many pairs, while the work queue holds at most BACKLOG messages.
UPLOAD_CHUNK = 50
BACKLOG = 300
# One container killed mid-call this often (seconds), as Lambda does at a deadline or an OOM.
KILL_EVERY_SECONDS = 15.0
# Each container's /tmp: the 32 MiB the keep leaves free for everything else (its
# DISK_RESERVE_BYTES), and room for a few of the soak's answers (a few KiB each, two 4-KiB pages
# for each one kept) besides.
CONTAINER_TMP_BYTES = 32 * 1024 * 1024 + 64 * 1024
# This often (seconds), one container's /tmp is filled to the last byte for as long: what a
# library's temporary files, or answers kept for a broken output bucket, can do.
FILL_TMP_EVERY_SECONDS = 10.0
# Mid-run, after the API's outage, the output bucket refuses every write for this long; then the
# event bus refuses every completion event for this long.
OUTPUT_OUTAGE_SECONDS = 20.0
EVENT_BUS_OUTAGE_SECONDS = 15.0
# What the function logs when a paid answer goes: held in memory, for want of room on disk,
# and then its write failed; and when it holds one in memory at all.
LOST_FOR_WANT_OF_ROOM = "paid answer lost: it could not be kept on local disk, and its write failed"
HELD_IN_MEMORY = "the answer is held in memory only"
COMES_BACK = "transient failure, the message will come back"
# The compressed time of the soak's stack: (template text, replacement).
COMPRESSED_TIME = [
    ("    Timeout: 180\n", "    Timeout: 60\n"),
    ("VisibilityTimeout: 1080", "VisibilityTimeout: 90"),
]


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
    containers_killed: int = 0
    api_faults: dict[str, int] = field(default_factory=dict)
    aws_faults: dict[str, int] = field(default_factory=dict)
    charged_then_lost: int = 0
    paid_twice: dict[str, int] = field(default_factory=dict)
    most_purchases_of_one_pair: int = 0
    paid_answers_lost_metric: int = 0
    answers_held_in_memory: int = 0
    tmp_filled: int = 0
    completion_events: dict[str, int] = field(default_factory=dict)  # by detail type
    events_unpublished_metric: int = 0
    dead_lettered_twice: dict[str, int] = field(default_factory=dict)
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
    """What at-least-once delivery sometimes does: the input rule's event a second time."""
    s3, sqs = box.stack.client("s3"), box.stack.client("sqs")
    head = s3.head_object(Bucket=box.stack.input_bucket, Key=key)
    event = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": head["LastModified"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{box.stack.input_bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": box.stack.input_bucket},
            "object": {
                "key": quote_plus(key, safe="/"),
                "etag": head["ETag"].strip('"'),
                "size": head["ContentLength"],
            },
            "reason": "PutObject",
        },
    }
    sqs.send_message(QueueUrl=box.stack.work_queue_url, MessageBody=json.dumps(event))


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
    kills: list[Kill] = []
    started = time.monotonic()
    with (
        function_output_to(out / "function.log") as console,
        _moto_in_its_own_process() as moto,
        sandbox(
            template=_compressed_template(out),
            parameters={"PairSettleSeconds": "1", "MaximumConcurrency": str(concurrency)},
            emulator_settings=settings,
            function_environment=function_env,
            moto_endpoint=moto,
            aws_faults=AWS_FAULTS,
            aws_faults_seed=seed,
            container_tmp_bytes=CONTAINER_TMP_BYTES,
        ) as box,
    ):
        console.print(
            f"[bold]Soak[/]: {pairs} pairs, API faults {FAULTS}, AWS faults on "
            f"{', '.join(rule.name or '' for rule in AWS_FAULTS)}, a container killed every "
            f"{KILL_EVERY_SECONDS:.0f} s, a {outage_seconds:.0f}-s API outage, a "
            f"{OUTPUT_OUTAGE_SECONDS:.0f}-s output bucket outage, a "
            f"{EVENT_BUS_OUTAGE_SECONDS:.0f}-s event bus outage, {CONTAINER_TMP_BYTES // 1024} KiB of /tmp "
            f"per container, one filled every {2 * FILL_TMP_EVERY_SECONDS:.0f} s, concurrency {concurrency}"
        )
        outage = threading.Thread(target=_outage, args=(box, outage_seconds, plans, console), daemon=True)
        stop_killing = threading.Event()
        killer = threading.Thread(target=_kill_containers, args=(box, kills, stop_killing), daemon=True)
        killer.start()
        filled: list[int] = []
        filler = threading.Thread(target=_fill_tmp, args=(box, filled, stop_killing), daemon=True)
        filler.start()
        outage.start()
        uploaded: list[int] = []
        uploader = threading.Thread(target=_upload_as_a_stream, args=(box, plans, uploaded), daemon=True)
        uploader.start()
        _wait_until_settled(box, console, timeout, pairs=pairs, uploaded=uploaded)
        uploader.join()
        accounting.objects_uploaded = sum(uploaded)
        accounting.duplicate_events = sum(p.duplicate_events for p in plans)
        stop_killing.set()
        outage.join()
        killer.join()
        filler.join()
        accounting.tmp_filled = len(filled)
        accounting.seconds = time.monotonic() - started
        accounting.containers_killed = len(kills)
        assert box.aws_faults is not None
        accounting.aws_faults = dict(box.aws_faults.stats()["faults_by_rule"])
        letters = read_all(box.stack.client("sqs"), box.stack.dlq_url, hide_seconds=600)
        outputs = _outputs_by_source(box)
        trail = _function_trail(out / "function.log")
        events = completion_events.take(box.stack.client("sqs"), box.stack.events_queue_url)
        _account(box, plans, outputs, letters, accounting, out, kills, trail)
        _account_for_events(plans, outputs, letters, events, accounting)
        accounting.events_unpublished_metric = trail.events_unpublished
        _scan_for_key(outputs, letters, out / "function.log", accounting)
        accounting.paid_answers_lost_metric = trail.paid_answers_lost
        accounting.answers_held_in_memory = trail.held_in_memory
        _print(console, accounting)
    (out / "soak.json").write_text(json.dumps(asdict(accounting), indent=2))
    return accounting


@contextlib.contextmanager
def _moto_in_its_own_process() -> Iterator[str]:
    """moto on a core of its own: in this process it would share one interpreter lock with the
    emulator, the proxy and the poller, and be the soak's bottleneck."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "backdrop.local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def _compressed_template(out: Path) -> Path:
    text = DEFAULT_TEMPLATE.read_text(encoding="utf-8")
    # Written elsewhere, the template must still find the function's code where it is.
    code = ("CodeUri: functions/", f"CodeUri: {DEFAULT_TEMPLATE.parent}/functions/")
    for old, new in [*COMPRESSED_TIME, code]:
        if text.count(old) != 1:
            raise SystemExit(f"template.yaml no longer has exactly one {old.strip()!r}: update the soak")
        text = text.replace(old, new)
    compressed = out / "template.yaml"
    compressed.write_text(text, encoding="utf-8")
    return compressed


@dataclass(frozen=True)
class Kill:
    at: float
    request_id: str | None  # the invocation it cut short
    keys: frozenset[str]  # the input keys of that invocation's batch


def _keys_of(event: dict[str, Any] | None) -> frozenset[str]:
    """The S3 keys an SQS batch is about: of EventBridge events (the input rule's), or of S3
    notifications (a message of an older stack)."""
    keys = set()
    for message in (event or {}).get("Records", []):
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            body = json.loads(message["body"])
            if "detail" in body:
                keys.add(unquote_plus(body["detail"]["object"]["key"]))
            for record in body.get("Records", []):
                keys.add(unquote_plus(record["s3"]["object"]["key"]))
    return frozenset(keys)


def _kill_containers(box: Sandbox, kills: list[Kill], stop: threading.Event) -> None:
    """Every so often, SIGKILL a container that is in the middle of an invocation."""
    while not stop.wait(KILL_EVERY_SECONDS):
        while not stop.is_set():
            killed = box.mapping.kill_one_busy()
            if killed is not None:
                kills.append(Kill(time.time(), killed.request_id, _keys_of(killed.event)))
                break
            time.sleep(0.2)


def _fill_tmp(box: Sandbox, filled: list[int], stop: threading.Event) -> None:
    """Every so often, fill one container's /tmp (its own tmpfs) for a while, then free it."""
    rng = random.Random(7)
    while not stop.wait(FILL_TMP_EVERY_SECONDS):
        # A container in the middle of a call: its answer is about to need the room.
        busy = [c for c in box.mapping.containers() if c.busy and c.init_seconds is not None]
        if not busy:
            continue
        container = rng.choice(busy)
        # The tmpfs is mounted in the container's own namespace: seen from here through its root.
        ballast = Path(f"/proc/{container.pid}/root") / container.tmpdir.relative_to("/") / "soak-ballast"
        try:
            with ballast.open("wb") as out:
                while out.write(bytes(64 * 1024)):
                    out.flush()
        except OSError:
            pass  # full (ENOSPC), as meant; or the container is gone
        filled.append(container.pid)
        stop.wait(FILL_TMP_EVERY_SECONDS)
        with contextlib.suppress(OSError):
            ballast.unlink()


@dataclass
class FunctionTrail:
    """What the function's log says about paid answers, read once."""

    paid_answers_lost: int = 0
    held_in_memory: int = 0
    lost_for_want_of_room: Counter[str] = field(default_factory=Counter)  # by image key
    write_failed: Counter[str] = field(default_factory=Counter)  # output_write, left for a retry
    events_unpublished: int = 0


def _function_trail(log: Path) -> FunctionTrail:
    trail = FunctionTrail()
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                entry = json.loads(line)
                trail.paid_answers_lost += _metric_value(entry.get("PaidAnswersLost", 0))
                trail.events_unpublished += _metric_value(entry.get("EventsUnpublished", 0))
                if entry.get("message") == HELD_IN_MEMORY:
                    trail.held_in_memory += 1
                if entry.get("message") == LOST_FOR_WANT_OF_ROOM:
                    trail.lost_for_want_of_room[entry["key"]] += 1
                if entry.get("message") == COMES_BACK and entry.get("error_class") == "output_write":
                    trail.write_failed[entry["key"]] += 1
    return trail


def _metric_value(value: Any) -> int:
    return int(sum(value) if isinstance(value, list) else value)


def _outage(box: Sandbox, seconds: float, plans: list[Pair], console: Console) -> None:
    """Mid-run, the API goes away for a while: every call fails, then it comes back. Later, the
    output bucket refuses every write for a while: paid answers wait in the containers' /tmp."""
    _wait_for_billed_calls(box, len(plans) // 3)
    console.print(f"[red]API outage[/] for {seconds:.0f} s after {box.emulator.billed_calls} billed calls")
    box.emulator.settings.faults = {"503": 1.0}
    time.sleep(seconds)
    box.emulator.settings.faults = dict(FAULTS)
    console.print("[green]API back[/]")
    _wait_for_billed_calls(box, 2 * len(plans) // 3)
    output_bucket = box.stack.output_bucket
    refused = FaultRule(
        "s3",
        "PutObject",
        1.0,
        "InternalError",
        match=lambda request: request.path.split("/")[1] == output_bucket,
        name="output bucket outage",
    )
    _aws_outage(box, refused, OUTPUT_OUTAGE_SECONDS, console)
    # Results are stored, and their events wait: kept, and published by a later delivery.
    _aws_outage(
        box, FaultRule("events", "PutEvents", 1.0, name="event bus outage"), EVENT_BUS_OUTAGE_SECONDS, console
    )


def _aws_outage(box: Sandbox, rule: FaultRule, seconds: float, console: Console) -> None:
    assert box.aws_faults is not None
    console.print(f"[red]{rule.name}[/] for {seconds:.0f} s")
    box.aws_faults.rules = [*AWS_FAULTS, rule]
    time.sleep(seconds)
    box.aws_faults.rules = AWS_FAULTS
    console.print(f"[green]{rule.name}: over[/]")


def _wait_for_billed_calls(box: Sandbox, target: int, give_up_seconds: float = 300) -> None:
    give_up = time.monotonic() + give_up_seconds
    while box.emulator.billed_calls < target and time.monotonic() < give_up:
        time.sleep(0.2)


def _upload_as_a_stream(box: Sandbox, plans: list[Pair], uploaded: list[int]) -> None:
    """Upload every pair, never more than BACKLOG messages ahead of the function: a steady stream.

    moto's SQS looks at every message of a queue on each request, so a burst of 20,000 would
    measure moto, not Backdrop.
    """
    with ThreadPoolExecutor(4) as pool:
        for start in range(0, len(plans), UPLOAD_CHUNK):
            while queue_depth(box) > BACKLOG:
                time.sleep(0.25)
            uploaded.extend(pool.map(lambda p: upload(box, p), plans[start : start + UPLOAD_CHUNK]))


def _wait_until_settled(
    box: Sandbox, console: Console, timeout: float, *, pairs: int, uploaded: list[int]
) -> None:
    deadline, quiet_since = time.monotonic() + timeout, None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("pairs uploaded", total=pairs)
        while time.monotonic() < deadline:
            depth = queue_depth(box)
            progress.update(
                task,
                description=f"pairs uploaded (work queue: {depth:>4} messages)",
                completed=len(uploaded),
            )
            if len(uploaded) == pairs and depth == 0 and not box.mapping.busy:
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


@dataclass
class Purchase:
    """One billed API request, as the emulator recorded it."""

    at: float
    lost: bool  # charged, then delivered so that no client could keep it
    fault: str | None


def _account(
    box: Sandbox,
    plans: list[Pair],
    outputs: dict[str, list[dict[str, str]]],
    letters: list[DeadLetter],
    accounting: Accounting,
    out: Path,
    kills: list[Kill],
    trail: FunctionTrail,
) -> None:
    dead: dict[str, list[DeadLetter]] = defaultdict(list)
    for letter in letters:
        dead[letter.key].append(letter)
    purchases, faults = _api_trail(box, out)
    cut_short = {kill.request_id for kill in kills if kill.request_id}

    accounting.api_requests = len(box.emulator.requests)
    accounting.billed_calls = box.emulator.billed_calls
    accounting.api_retries = accounting.api_requests - accounting.billed_calls
    accounting.estimated_cost_usd = round(box.emulator.spent_usd, 3)
    accounting.slowest_answer_seconds = round(
        max((r.seconds for r in box.emulator.requests if r.billed and not r.fault), default=0), 2
    )
    accounting.api_faults = dict(Counter(r.fault for r in box.emulator.requests if r.fault))
    accounting.charged_then_lost = sum(r.charged_then_lost for r in box.emulator.requests)
    accounting.most_purchases_of_one_pair = max((len(bought) for bought in purchases.values()), default=0)
    paid_twice: Counter[str] = Counter()
    dead_lettered_twice: Counter[str] = Counter()
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for pair in plans:
        row = rows[pair.kind]
        row["pairs"] += 1
        outs, letters_of_pair = outputs.get(pair.image_key, []), dead.get(pair.image_key, [])
        deaths = _one_per_failure(letters_of_pair, cut_short, dead_lettered_twice)
        bought = purchases.get(pair.image_key, [])
        row["outputs"] += len(outs)
        row["billed"] += len(bought)
        for error_class in deaths:
            row[f"dlq:{error_class}"] += 1
        killed = [
            kill for kill in kills if pair.image_key in kill.keys or pair.image_key + ".json" in kill.keys
        ]
        why = _why_paid_again(bought, killed, trail, pair.image_key)
        if why:
            paid_twice[why] += 1
        lost = bool(killed) or trail.lost_for_want_of_room[pair.image_key] > 0
        problem = _judge(pair, outs, deaths, bought, faults[pair.image_key], why, lost_otherwise=lost)
        if problem:
            accounting.problems.append(f"{pair.image_key} ({pair.kind}): {problem}")
        elif not outs and not deaths:
            row["waiting"] += 1
    unknown = set(dead) - {p.image_key for p in plans}
    accounting.problems.extend(f"a DLQ record for no upload: {key}" for key in sorted(unknown))
    accounting.paid_twice = dict(paid_twice)
    accounting.dead_lettered_twice = dict(dead_lettered_twice)
    accounting.rows = {kind: dict(row) for kind, row in sorted(rows.items())}


def _account_for_events(
    plans: list[Pair],
    outputs: dict[str, list[dict[str, str]]],
    letters: list[DeadLetter],
    events: list[completion_events.CompletionEvent],
    accounting: Accounting,
) -> None:
    """Every stored result and every DLQ record told by at least one completion event."""
    told = {(event.detail_type, event.image_key) for event in events}
    accounting.completion_events = dict(Counter(event.detail_type for event in events))
    dead = {letter.key for letter in letters}
    for pair in plans:
        if outputs.get(pair.image_key) and (completion_events.PROCESSED, pair.image_key) not in told:
            accounting.problems.append(f"{pair.image_key} ({pair.kind}): stored, but no completion event")
        if pair.image_key in dead and (completion_events.FAILED, pair.image_key) not in told:
            accounting.problems.append(
                f"{pair.image_key} ({pair.kind}): dead-lettered, but no completion event"
            )


def _outputs_by_source(box: Sandbox) -> dict[str, list[dict[str, str]]]:
    s3 = box.stack.client("s3")
    outputs: dict[str, list[dict[str, str]]] = defaultdict(list)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=box.stack.output_bucket):
        for item in page.get("Contents", []):
            metadata = s3.head_object(Bucket=box.stack.output_bucket, Key=item["Key"])["Metadata"]
            outputs[unquote(metadata["source-key"])].append(metadata)
    return outputs


def _api_trail(box: Sandbox, out: Path) -> tuple[dict[str, list[Purchase]], dict[str, set[str]]]:
    """Each pair's purchases, and every fault its requests met; also written as a JSONL trail."""
    purchases: dict[str, list[Purchase]] = defaultdict(list)
    faults: dict[str, set[str]] = defaultdict(set)
    with (out / "api-requests.jsonl").open("w") as trail:
        for request in box.emulator.requests:
            key = _image_key(request.body)
            if request.billed:
                purchases[key].append(Purchase(request.at, request.charged_then_lost, request.fault))
            if request.fault:
                faults[key].add(request.fault)
            trail.write(
                json.dumps(
                    {
                        "key": key,
                        "status": request.status,
                        "billed": request.billed,
                        "fault": request.fault,
                        "seconds": round(request.seconds, 3),
                        "at": request.at,
                    }
                )
                + "\n"
            )
    for bought in purchases.values():
        bought.sort(key=lambda purchase: purchase.at)
    return purchases, faults


def _one_per_failure(letters: list[DeadLetter], cut_short: set[str], twice: Counter[str]) -> list[str]:
    """The classes of a pair's DLQ records, a record sent again counted once: the one whose sender
    was killed before its claim recorded the failure, so that the next receive sent it again."""
    ordered = sorted(letters, key=lambda letter: letter.failed_at)
    kept: list[str] = []
    for number, letter in enumerate(ordered):
        resent = number + 1 < len(ordered) and letter.request_id in cut_short
        if resent:
            twice["sent again: its sender killed before its claim was completed"] += 1
        else:
            kept.append(letter.error_class)
    if len(kept) > 1:
        twice["unexplained"] += 1
    return kept


def _why_paid_again(bought: list[Purchase], killed: list[Kill], trail: FunctionTrail, key: str) -> str | None:
    """Why a pair was bought a second time: its first answer was lost, or "unexplained".

    ``killed``: the kills that cut short an invocation of this pair."""
    if len(bought) < 2:
        return None
    first, second = bought[0], bought[1]
    if first.lost:
        return f"first answer lost in delivery ({first.fault})"
    if trail.lost_for_want_of_room[key]:
        return "first answer held in memory (no room in /tmp), and its write failed"
    if any(first.at <= kill.at <= second.at for kill in killed):
        return "container killed with the first answer"
    if trail.write_failed[key]:
        return "first answer kept in a container the retry did not reach (its write failed)"
    return "unexplained"


def _judge(
    pair: Pair,
    outs: list[dict[str, str]],
    deaths: list[str],
    bought: list[Purchase],
    faults: set[str],
    why_paid_again: str | None,
    *,
    lost_otherwise: bool,
) -> str | None:
    paid = len(bought)
    if pair.kind == "no_sidecar":
        return None if not outs and not deaths and not paid else "processed although it has no sidecar"
    if len(outs) + len(deaths) != 1:
        return f"{len(outs)} outputs and {len(deaths)} DLQ records (exactly one of either expected)"
    if paid > 2:
        return f"bought {paid} times (at most 2)"
    if why_paid_again == "unexplained":
        return "paid for twice, and its first answer was not lost"
    if outs:
        return None if paid else "an output, but no billed call"
    if paid:
        # Paid, then dead-lettered: only when an answer was lost (twice, over MAX_ANSWER_BYTES, or
        # for want of room in /tmp), or a killed invocation left a purchase the ledger counts.
        return (
            None
            if why_paid_again or faults & LOST_IN_DELIVERY or lost_otherwise
            else f"paid for, yet dead-lettered as {deaths[0]}"
        )
    expected = EXPECTED_CLASS[pair.kind] | ({"bad_request"} if "gzip_bomb" in faults else set())
    if deaths[0] not in expected:
        return f"DLQ record of class {deaths[0]}, expected {sorted(expected)}"
    return None


def _scan_for_key(
    outputs: dict[str, list[dict[str, str]]], letters: list[DeadLetter], log: Path, accounting: Accounting
) -> None:
    places = {"function log and metrics": log.read_text(encoding="utf-8", errors="replace")}
    places["DLQ bodies"] = "".join(letter.body for letter in letters)
    places["output metadata"] = json.dumps(outputs)
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
    console.print(
        f"Faults: API {accounting.api_faults}; AWS {accounting.aws_faults}; "
        f"{accounting.containers_killed} containers killed mid-call"
    )
    console.print(
        f"Completion events: {accounting.completion_events}; {accounting.events_unpublished_metric} "
        "refused by the bus at first, kept and published again (EventsUnpublished)"
    )
    money = Table(title="Paid twice, and why", title_justify="left")
    money.add_column("reason")
    money.add_column("pairs", justify="right")
    for reason, count in sorted(accounting.paid_twice.items()):
        money.add_row(reason, str(count))
    money.add_row("most purchases of one pair (at most 2)", str(accounting.most_purchases_of_one_pair))
    money.add_row("answers charged then lost in delivery (emulator)", str(accounting.charged_then_lost))
    money.add_row("PaidAnswersLost (the function's metric)", str(accounting.paid_answers_lost_metric))
    money.add_row(
        f"answers held in memory for want of room in /tmp ({accounting.tmp_filled} times a /tmp was filled)",
        str(accounting.answers_held_in_memory),
    )
    console.print(money)
    records = Table(title="DLQ records sent twice for one failure, and why", title_justify="left")
    records.add_column("reason")
    records.add_column("pairs", justify="right")
    for reason, count in sorted(accounting.dead_lettered_twice.items()):
        records.add_row(reason, str(count))
    if not accounting.dead_lettered_twice:
        records.add_row("none", "0")
    console.print(records)
    if accounting.held:
        console.print(
            "[bold green]Every upload accounted for; no pair bought again unless its answer was lost, "
            "none more than twice; every outcome told by an event; the key never leaked.[/]"
        )
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
