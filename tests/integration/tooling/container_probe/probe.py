"""A small Lambda handler for the local containers' tests: the CodeUri a container imports.

Each record it gets is written to ``$PROBE_OUT/<n>.json``, with what the container is (pid,
TMPDIR and its size, its module state, its request id, its view of the deadline and of the
environment); the body says what else to do: ``hold:N`` waits until N ``hold`` records were seen
by any container, ``block-once`` blocks the first time, ``sleep`` blocks, ``print:TEXT`` prints
TEXT, ``crash`` raises, ``fill`` writes to its /tmp until that is full (or FILL_AT_MOST bytes are
written) and records how far it got as body ``filled``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

OUT = Path(os.environ["PROBE_OUT"])
INVOCATIONS = 0  # module state: kept while the container stays warm
FILL_AT_MOST = 64 * 1024 * 1024  # past any limit a test sets, short of filling the machine's disk


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global INVOCATIONS
    INVOCATIONS += 1
    for record in event["Records"]:
        body = record["body"]
        _write(
            {
                "body": body,
                "pid": os.getpid(),
                "invocations": INVOCATIONS,
                "tmpdir": tempfile.gettempdir(),
                "tmp_total": shutil.disk_usage(tempfile.gettempdir()).total,
                "request_id": context.aws_request_id,
                "TMPDIR": os.environ.get("TMPDIR"),
                "parent_only": os.environ.get("PROBE_PARENT_ONLY"),
                "remaining_ms": context.get_remaining_time_in_millis(),
                "receive_count": int(record["attributes"]["ApproximateReceiveCount"]),
            }
        )
        _act(body)
    return {"batchItemFailures": []}


def _act(body: str) -> None:
    command, _, argument = body.partition(":")
    if command == "hold":
        _wait_for(lambda: len(list(OUT.glob("hold-*.json"))) >= int(argument))
    elif command == "block-once":
        try:
            (OUT / "blocked").open("x").close()
        except FileExistsError:
            return
        time.sleep(120)
    elif command == "sleep":
        time.sleep(120)
    elif command == "print":
        print(argument)
    elif command == "crash":
        raise RuntimeError("the probe crashed")
    elif command == "fill":
        _fill()


def _fill() -> None:
    chunk, written, error = b"\0" * (1024 * 1024), 0, None
    fd = os.open(Path(tempfile.gettempdir()) / "fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while written < FILL_AT_MOST:
            written += os.write(fd, chunk)  # a short write when the space left is less than a chunk
    except OSError as failed:
        error = errno.errorcode.get(failed.errno or 0, str(failed))
    finally:
        os.close(fd)
    _write({"body": "filled", "written": written, "error": error, "pid": os.getpid()})


def _write(record: dict[str, Any]) -> None:
    prefix = record["body"].partition(":")[0]
    partial = OUT / f".{uuid.uuid4().hex}"
    partial.write_text(json.dumps(record))
    partial.rename(OUT / f"{prefix}-{uuid.uuid4().hex}.json")


def _wait_for(done: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
