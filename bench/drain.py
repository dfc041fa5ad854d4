"""The real handler behind the local event source mapping, in a fresh process, until N outputs exist.

`python -m bench.drain N CONCURRENCY`: prints when each output appeared, counted from the first
receive (one JSON line). CONCURRENCY 0 runs the invocations in the main thread, for cProfile.
"""

from __future__ import annotations

import json
import os
import sys
import time

import boto3

from backdrop.local.poller import EventSourceMapping, load_handler
from backdrop.local.template import load_spec


def outputs(s3, bucket: str) -> int:  # type: ignore[no-untyped-def]
    return sum(
        page.get("KeyCount", 0) for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    )


def main() -> None:
    wanted, concurrency = int(sys.argv[1]), int(sys.argv[2])
    spec = load_spec(parameters={"PairSettleSeconds": "0"})
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    queue_url = os.environ["WORK_QUEUE_URL"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    handler = load_handler(spec)
    started = time.perf_counter()
    mapping = EventSourceMapping(
        sqs,
        queue_url,
        queue_arn,
        handler,
        batch_size=spec.batch_size,
        maximum_concurrency=max(1, concurrency),
        function_timeout=spec.function_timeout,
    )
    # Concurrency 0: one invocation at a time in this very thread, where a profiler sees it.
    inline = concurrency == 0
    if not inline:
        mapping.start()
    done_at: dict[int, float] = {}
    while len(done_at) < wanted:
        if inline:
            mapping.poll_once()
        count = outputs(s3, os.environ["OUTPUT_BUCKET"])
        for number in range(len(done_at) + 1, count + 1):
            done_at[number] = time.perf_counter() - started
        if not inline:
            time.sleep(0.02)
    mapping.stop()
    print(
        json.dumps(
            {"done_at": [done_at[n] for n in sorted(done_at)], "invocations": mapping.stats.invocations}
        )
    )


if __name__ == "__main__":
    main()
