"""`backdrop run` on 20 sample pairs against a local stack started for it, with 1 s of emulated API
latency and MaximumConcurrency 4, against the ideal 20 × 1 s / 4 = 5 s.

``python -m bench.drop_folder [--pairs 20 --latency 1 --concurrency 4]`` builds the folder from the
demo's samples (each sample again under a new name, with its own sidecar), runs the real command
in a process of its own, as a user would, and prints its summary, its own wall time (from the
command's start: the stack's start included) and the summary's (the run's: planning, sending and
waiting).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "backdrop" / "demo" / "samples"
BACKDROP = Path(sys.executable).with_name("backdrop")


def sample_folder(folder: Path, pairs: int) -> None:
    """``pairs`` pairs made of the demo's samples and their sidecars, taken in turn: one paid call
    each (the demo's variants and renditions left out), so that the ideal is pairs x latency /
    concurrency."""
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    for number in range(pairs):
        entry = dict(manifest[number % len(manifest)])
        entry.pop("variants", None)
        entry.pop("renditions", None)
        source = SAMPLES / entry.pop("file")
        image = folder / f"sample-{number:02d}{source.suffix}"
        image.write_bytes(source.read_bytes())
        image.with_name(image.name + ".json").write_text(json.dumps(entry))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drop_folder", description=__doc__)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=4)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "drop"
        folder.mkdir()
        sample_folder(folder, arguments.pairs)
        command = [str(BACKDROP), "run", str(folder), "--local", "--yes"]
        command += ["--moto-port", str(free_port()), "--api-port", str(free_port())]
        command += ["--api-latency", str(arguments.latency)]
        command += ["--maximum-concurrency", str(arguments.concurrency)]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
    print(done.stdout[-3000:], done.stderr[-2000:])
    wall = re.search(r"wall time ([0-9.]+) s", done.stdout)
    ideal = arguments.pairs * arguments.latency / arguments.concurrency
    print(
        f"exit {done.returncode}; the run's wall time {wall.group(1) if wall else '?'} s "
        f"(ideal {ideal:g} s); the command's, with the stack's start, {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
