"""The real handler in a fresh process: `python -m bench.invoke BUCKET KEY [KEY ...] [--warm KEY] [--memory]`.

Each KEY arrives as Lambda delivers it in production: an SQS batch holding S3's notification.
With --warm, one pair is handled first (imports loaded, clients made) and not measured. With
--memory, the process's resident memory is read before the measured pairs and its peak during
them. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from urllib.parse import quote_plus

from backdrop.local.context import LocalLambdaContext
from backdrop.local.esm import sqs_lambda_event

STARTED = time.perf_counter()


def sqs_event(bucket: str, key: str) -> dict:
    notification = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/")}},
            }
        ]
    }
    message = {
        "MessageId": f"bench-{key}",
        "ReceiptHandle": "bench",
        "Body": json.dumps(notification),
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    return sqs_lambda_event([message], "arn:aws:sqs:us-east-1:123456789012:backdrop-work")


def memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bucket")
    parser.add_argument("keys", nargs="+")
    parser.add_argument("--warm")
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()

    import app

    imported = time.perf_counter()
    if args.warm:
        app.lambda_handler(sqs_event(args.bucket, args.warm), LocalLambdaContext())
    result: dict = {"import_seconds": imported - STARTED}
    if args.memory:
        result["rss_before_kb"] = memory_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # restart the peak ("high water mark") from here
    responses = [app.lambda_handler(sqs_event(args.bucket, key), LocalLambdaContext()) for key in args.keys]
    if args.memory:
        result["peak_kb"] = memory_kb("VmHWM")
    result["seconds"] = time.perf_counter() - STARTED
    result["failed"] = [failure for response in responses for failure in response["batchItemFailures"]]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
