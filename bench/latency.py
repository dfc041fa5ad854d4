"""Figure 6: what Backdrop adds to the API's own time, from a pair's second half landing to its output.

50 pairs uploaded together (each image, then its sidecar 100 ms later), through the local stack
with the template's settings. Today's behaviour runs beside it in the same run: the work queue
holding every message for PairSettleSeconds, as the template did before settling was made
selective. Each runs in a process of its own (``python -m bench.latency``): moto keeps one state
per process.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from backdrop.emulator import EmulatorSettings
from backdrop.local.sandbox import sandbox
from backdrop.local.stack import LOCAL_API_KEY
from backdrop.local.template import DEFAULT_TEMPLATE

SIDECAR = {"prompt": "a bench in a quiet park", "seed": 4242, "rendering_speed": "TURBO"}
# The work queue as it was: every message held for PairSettleSeconds.
QUEUE_HELD = ("      DelaySeconds: 0\n", "      DelaySeconds: !Ref PairSettleSeconds\n")


def added_seconds(pairs: int, api_latency: float, *, queue_held: bool) -> list[float]:
    """Per pair: output first seen, less its sidecar's upload, less the emulated API time."""
    with tempfile.TemporaryDirectory() as scratch:
        template = _template(Path(scratch), queue_held=queue_held)
        settings = EmulatorSettings(api_keys={LOCAL_API_KEY}, latency_seconds=api_latency)
        with sandbox(template=template, emulator_settings=settings) as box:
            s3 = box.stack.client("s3")
            landed: dict[str, float] = {}
            uploader = threading.Thread(target=_upload, args=(s3, box.stack.input_bucket, pairs, landed))
            uploader.start()
            seen = _outputs_seen(s3, box.stack.output_bucket, pairs, timeout=300)
            uploader.join()
    return [seen[f"lat/{n:03d}.png"] - landed[f"lat/{n:03d}.png"] - api_latency for n in range(pairs)]


def median_and_p90(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), statistics.quantiles(values, n=10)[-1]


def _template(scratch: Path, *, queue_held: bool) -> Path:
    text = DEFAULT_TEMPLATE.read_text(encoding="utf-8")
    text = text.replace("CodeUri: functions/", f"CodeUri: {DEFAULT_TEMPLATE.parent}/functions/")
    if queue_held:
        if text.count(QUEUE_HELD[0]) != 1:
            raise SystemExit("no work queue with DelaySeconds: 0 in template.yaml: update bench/latency.py")
        text = text.replace(*QUEUE_HELD)
    path = scratch / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _upload(s3, bucket: str, pairs: int, landed: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 210, 220)).save(picture, format="PNG")
    for number in range(pairs):
        key = f"lat/{number:03d}.png"
        s3.put_object(Bucket=bucket, Key=key, Body=picture.getvalue())
        time.sleep(0.1)
        s3.put_object(Bucket=bucket, Key=key + ".json", Body=json.dumps(SIDECAR).encode())
        landed[key] = time.monotonic()


def _outputs_seen(s3, bucket: str, pairs: int, *, timeout: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """When each output was first listed, polled every 50 ms: the figure's resolution."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < pairs and time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="lat/").get("Contents", [])
        now = time.monotonic()
        for item in listed:
            seen.setdefault(item["Key"], now)
        time.sleep(0.05)
    if len(seen) < pairs:
        raise RuntimeError(f"only {len(seen)} of {pairs} outputs within {timeout:.0f} s")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--api-latency", type=float, default=0.2)
    parser.add_argument("--queue-held", action="store_true")
    args = parser.parse_args()
    print(json.dumps(added_seconds(args.pairs, args.api_latency, queue_held=args.queue_held)))


if __name__ == "__main__":
    main()
