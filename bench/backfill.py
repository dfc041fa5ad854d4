"""Figure 7: `backdrop backfill` planning and enqueueing a bucket, against the local stack.

``python -m bench.backfill --objects 100000`` starts moto server in a process of its own, fills
the input bucket (half images, half their sidecars; one pair in ten already processed, its
output beside it), then, each in a fresh process:

- the backfill itself over ``--small`` objects and over ``--objects`` objects (the code path of
  the command, progress bar drawn on a terminal that goes nowhere): planning time, sending time,
  and the process's peak resident memory at both sizes, which stays flat if the walk, the plan
  and the ledger hold what they should;
- the baseline of the enqueue rate: bare ``SendMessageBatch`` calls, ten messages of the same size
  each, as many as the backfill sent, with a client configured alike; run before and after it;
- the baseline of the planning time: list the prefix and GET every sidecar, with as many threads.

moto's SendMessage takes time in proportion to the messages already in the queue (it counts them
on every send; SQS does not), so the work queue is purged every quarter second throughout, as a
consuming function keeps it short, for the backfill and its baseline alike.

Prints one line of JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.config import Config

from backdrop import function_code
from backdrop.local.stack import LOCAL_NAMES, LocalStack
from bench.invoke import memory_kb
from bench.services import free_port, running

PYTHON = sys.executable
CONCURRENCY = 16  # the command's default
SPEEDS = ("TURBO", "DEFAULT", "QUALITY")
SIDECAR_BYTES = 120  # about what a shop's sidecar holds; only its speed matters here
PROCESSED_EVERY = 10


def _client(service: str, endpoint: str) -> Any:
    """A client configured as the command's own: as many connections as its threads."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 (moto takes any credentials)
        config=Config(max_pool_connections=CONCURRENCY + 2, retries={"mode": "standard"}),
    )


def _md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


# -- the bucket ---------------------------------------------------------------------------------


def fill(stack: LocalStack, prefix: str, pairs: int) -> None:
    """``pairs`` images and their sidecars under ``prefix``; every tenth pair has its output."""
    function_code.make_importable()
    from backdrop_fn.output import output_metadata
    from backdrop_fn.pairing import Pair
    from backdrop_fn.ports import ObjectInfo, StoredObject
    from backdrop_fn.sidecar import parse_sidecar

    s3 = stack.client("s3")
    image = b"an image: backfill never reads it"

    def put(number: int) -> None:
        key = f"{prefix}{number:07d}.png"
        sidecar = json.dumps({"prompt": "a bench in a quiet park", "rendering_speed": SPEEDS[number % 3]})
        body = sidecar.ljust(SIDECAR_BYTES).encode()
        s3.put_object(Bucket=stack.input_bucket, Key=key, Body=image)
        s3.put_object(Bucket=stack.input_bucket, Key=key + ".json", Body=body)
        if number % PROCESSED_EVERY == 0:
            stored = StoredObject(ObjectInfo(stack.input_bucket, key + ".json", _md5(body), len(body)), body)
            pair = Pair(ObjectInfo(stack.input_bucket, key, _md5(image), len(image)), b"", stored)
            metadata = output_metadata(pair, parse_sidecar(body), seed=4242)
            s3.put_object(Bucket=stack.output_bucket, Key=key[:-4] + ".png", Body=b"out", Metadata=metadata)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(put, range(pairs)))


@contextmanager
def purged(stack: LocalStack, every: float = 0.25) -> Iterator[None]:
    sqs = stack.client("sqs")
    stop = threading.Event()

    def purge() -> None:
        while not stop.wait(every):
            sqs.purge_queue(QueueUrl=stack.work_queue_url)

    purger = threading.Thread(target=purge, daemon=True)
    purger.start()
    try:
        yield
    finally:
        stop.set()
        purger.join()


# -- the measured processes ---------------------------------------------------------------------


def child_backfill(endpoint: str, prefix: str) -> dict[str, Any]:
    """The command's own path, from its target's resolution to its summary."""
    import argparse as arguments

    from rich.console import Console

    from backdrop import targets
    from backdrop.backfill.run import Request, backfill

    args = arguments.Namespace(local=True, moto_port=None, endpoint_url=endpoint)
    target = targets.resolve_deployment(args, connections=CONCURRENCY + 2)
    idle_kb = memory_kb("VmRSS")
    with tempfile.TemporaryDirectory() as state, open(os.devnull, "w") as nowhere:
        console = Console(file=nowhere, force_terminal=True, width=120)
        request = Request(
            prefix=prefix, yes=True, concurrency=CONCURRENCY, ledger_path=Path(state) / "l.sqlite"
        )
        finished = backfill(target, request, console, ask=lambda question: None)
    summary = finished.summary
    if summary is None or finished.code != 0:
        raise RuntimeError(f"the backfill did not send everything (exit {finished.code})")
    return {
        "objects": finished.plan.walk.objects if finished.plan.walk else 0,
        "processed": finished.plan.outcomes["already processed"],
        "plan_s": finished.plan.seconds,
        "sent": summary.sent_total,
        "send_s": summary.seconds,
        "idle_rss_mb": idle_kb / 1024,
        "peak_rss_mb": memory_kb("VmHWM") / 1024,
        "sqlite_peak_mb": _sqlite_peak_bytes() / 1e6,
    }


def _sqlite_peak_bytes() -> int:
    """What SQLite itself allocated at most (its page caches, mostly), from the library Python uses."""
    import _sqlite3
    import ctypes

    peak = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_highwater
    peak.restype = ctypes.c_int64
    return int(peak(0))


def child_send_baseline(endpoint: str, queue_url: str, messages: int) -> dict[str, Any]:
    """Bare SendMessageBatch calls: ten messages each, of the size of a backfill's message."""
    from backdrop.backfill.ledger import PairVersion, Work
    from backdrop.backfill.send import s3_record

    sqs = _client("sqs", endpoint)
    work = Work(PairVersion("large/0000000.png", "0" * 32, "large/0000000.png.json", "1" * 32), 33, "TURBO")
    body = json.dumps(
        {"Records": [s3_record("backdrop-in-local", work, "us-east-1", "2026-12-01T00:00:00.000Z")]}
    )
    entries = [{"Id": str(number), "MessageBody": body} for number in range(10)]
    started = time.perf_counter()
    for sent in range(0, messages, 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries[: min(10, messages - sent)])
    return {"sent": messages, "send_s": time.perf_counter() - started}


def child_plan_baseline(endpoint: str, bucket: str, prefix: str) -> dict[str, Any]:
    """The least a planner does: list the prefix and read every sidecar, with as many threads."""
    s3 = _client("s3", endpoint)

    def sidecars() -> Iterator[str]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from (item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(".json"))

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        read = sum(
            1 for _ in pool.map(lambda key: s3.get_object(Bucket=bucket, Key=key)["Body"].read(), sidecars())
        )
    return {"read": read, "plan_s": time.perf_counter() - started}


# -- the run ------------------------------------------------------------------------------------


def measure(objects: int, small: int) -> dict[str, Any]:
    # Here, not at the top: the measured processes import this module, and only what they use.
    from backdrop.local.stack import create_resources
    from backdrop.local.template import load_spec
    from bench.run import run_json

    endpoint = f"http://127.0.0.1:{free_port()}"
    moto = [PYTHON, "-m", "backdrop.local.moto_server", "-p", endpoint.rsplit(":", 1)[1]]
    os.environ["MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR"] = "false"  # the purger's, every 0.25 s
    me = [PYTHON, "-m", "bench.backfill", "--endpoint", endpoint]
    with running(moto, endpoint):
        stack = create_resources(load_spec(parameters={"PairSettleSeconds": "0"}), endpoint)
        # Objects "already there": uploaded before anything listened, so they notified nobody.
        stack.client("s3").put_bucket_notification_configuration(
            Bucket=stack.input_bucket, NotificationConfiguration={}
        )
        started = time.perf_counter()
        fill(stack, "small/", small // 2)
        fill(stack, "large/", objects // 2)
        filled_s = time.perf_counter() - started
        env = dict(os.environ)
        with purged(stack):
            plan_baseline = run_json([*me, "--child", "plan-baseline", "--prefix", "large/"], env)
            little = run_json([*me, "--child", "backfill", "--prefix", "small/"], env)
            sent = objects // 2 - objects // 2 // PROCESSED_EVERY
            baseline = ["--child", "send-baseline", "--messages", str(sent), "--queue", stack.work_queue_url]
            before = run_json([*me, *baseline], env)
            large = run_json([*me, "--child", "backfill", "--prefix", "large/"], env)
            after = run_json([*me, *baseline], env)
    baseline_rate = statistics.mean(run["sent"] / run["send_s"] for run in (before, after))
    return {
        "objects": objects,
        "small_objects": small,
        "fill_s": filled_s,
        "small": little,
        "large": large,
        "enqueue_per_s": large["sent"] / large["send_s"],
        "baseline_enqueue_per_s": baseline_rate,
        "baseline_runs": [before, after],
        "plan_baseline": plan_baseline,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000, help="objects in the large bucket")
    parser.add_argument("--small", type=int, default=10_000, help="objects in the small one, for memory")
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument(
        "--child", choices=("backfill", "send-baseline", "plan-baseline"), help=argparse.SUPPRESS
    )
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "backfill":
        result = child_backfill(args.endpoint, args.prefix)
    elif args.child == "send-baseline":
        result = child_send_baseline(args.endpoint, args.queue, args.messages)
    elif args.child == "plan-baseline":
        result = child_plan_baseline(args.endpoint, LOCAL_NAMES["InputBucket"], args.prefix)
    else:
        result = measure(args.objects, args.small)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
