"""Figure 4: throughput under the plan's rate limit, with and without RequestsPerMinute.

N pairs go through the local stack: the function in containers (processes of their own), moto in
a process of its own, and the emulator refusing with 429 what passes its limit (L requests in
any window of W seconds). ``--rpm`` sets the template's RequestsPerMinute; without it the
function is unpaced, as it was before pacing: MaximumConcurrency is its only brake. Run as
``python -m bench.pacing`` (a fresh process: moto keeps one state per process); prints one line
of JSON.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import sys
import threading
import time
from typing import Any

from PIL import Image

from backdrop.emulator import EmulatorSettings
from backdrop.local.sandbox import Sandbox, sandbox
from backdrop.local.stack import LOCAL_API_KEY
from bench.services import free_port, running

SIDECAR = {"prompt": "a bench in a quiet park", "rendering_speed": "TURBO"}
# Messages waiting on the work queue at most (two a pair): more than the containers take in the
# plan's window, so that they never wait for work.
BACKLOG = 100


def drain(
    pairs: int, *, limit: int, window: float, latency: float, concurrency: int, rpm: str
) -> dict[str, Any]:
    settings = EmulatorSettings(
        api_keys={LOCAL_API_KEY},
        requests_per_minute=limit,
        rate_window_seconds=window,
        latency_seconds=latency,
    )
    parameters = {"PairSettleSeconds": "0", "MaximumConcurrency": str(concurrency), "RequestsPerMinute": rpm}
    # moto on a core of its own, not sharing this process's interpreter lock with the poller.
    endpoint = f"http://127.0.0.1:{free_port()}"
    moto = [sys.executable, "-m", "backdrop.local.moto_server", "-p", endpoint.rsplit(":", 1)[1]]
    with (
        running(moto, endpoint),
        sandbox(parameters=parameters, emulator_settings=settings, moto_endpoint=endpoint) as box,
    ):
        uploader = threading.Thread(target=_upload, args=(box, pairs), daemon=True)
        uploader.start()
        containers = _watch_containers(box, pairs)
        uploader.join()
        requests = box.emulator.requests
    billed = sorted(request.at for request in requests if request.billed)
    statuses = collections.Counter(request.status for request in requests)
    return {
        "calls_per_second": (len(billed) - 1) / (billed[-1] - billed[0]),
        "requests": len(requests),
        "billed": len(billed),
        "rate_limited": statuses.get(429, 0),
        "containers": containers,
    }


def _upload(box: Sandbox, pairs: int) -> None:
    """Uploads as a shop's backlog arrives: never more than BACKLOG messages waiting. moto's
    SendMessage slows with every message its queue holds (SQS's does not), so a thousand pairs
    queued at once would measure moto, not the pacing."""
    s3, sqs = box.stack.client("s3"), box.stack.client("sqs")
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 210, 220)).save(picture, format="PNG")
    for number in range(pairs):
        while _waiting(sqs, box.stack.work_queue_url) >= BACKLOG:
            time.sleep(0.2)
        key = f"rate/{number:04d}.png"
        s3.put_object(Bucket=box.stack.input_bucket, Key=key, Body=picture.getvalue())
        sidecar = {**SIDECAR, "seed": 100 + number}
        s3.put_object(Bucket=box.stack.input_bucket, Key=key + ".json", Body=json.dumps(sidecar).encode())


def _waiting(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _watch_containers(box: Sandbox, pairs: int) -> int:
    """Waits for every output; returns how many containers were busy at once, at most."""
    s3 = box.stack.client("s3")
    most_busy = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal most_busy
        while not stop.wait(0.2):
            most_busy = max(most_busy, sum(1 for container in box.mapping.containers() if container.busy))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    paginator = s3.get_paginator("list_objects_v2")
    while sum(page.get("KeyCount", 0) for page in paginator.paginate(Bucket=box.stack.output_bucket)) < pairs:
        time.sleep(1)
    stop.set()
    sampler.join()
    return most_busy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=30, help="the emulator's requests per window")
    parser.add_argument("--window", type=float, default=6.0, help="the emulator's window, in seconds")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--rpm", default="", help="RequestsPerMinute; empty: unpaced")
    args = parser.parse_args()
    figures = drain(
        args.pairs,
        limit=args.limit,
        window=args.window,
        latency=args.latency,
        concurrency=args.concurrency,
        rpm=args.rpm,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
