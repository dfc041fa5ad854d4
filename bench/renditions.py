"""Figure 8: three renditions of a 24 MP result, their memory and their time, and the cold import.

``python -m bench.renditions`` makes a 6000 x 4000 PNG (the API's usual answer: gradients under
noise, so that neither decoding nor encoding is trivial; the same pixels every run), then, each
in a fresh process so that its peak resident memory is its own:

- ``render`` making three renditions (a 2000 x 2000 JPEG padded on white, a 2048 x 2048 WebP
  cover, a 1000-px PNG contain), each let go before the next, as the function writes them;
- the memory baseline: the same imports, then the PNG decoded, and nothing else;
- the time baseline: Pillow bare, the PNG decoded once, then for each rendition ``copy()``,
  ``thumbnail()`` to the same box and ``save()`` in the same format and quality.

The two timed processes run in turns, ``--runs`` times each; medians. Pillow's allocations are
in C, out of tracemalloc's sight: memory is the process's resident high-water mark (``VmHWM``).

Then the cold import of the handler, as figure 1a measures it (``import app`` against
``import boto3, requests`` in fresh interpreters, in turns), for ``--function-code`` (by default
this tree's; pass another, such as ``git archive main``'s, to compare).

Prints one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Not bench.services: the measured processes import this module, and should hold nothing else.
ROOT = Path(__file__).resolve().parents[1]
FUNCTION_CODE = ROOT / "functions" / "replace_background"

PYTHON = sys.executable
SIZE = (6000, 4000)
# (format, box, fit, quality) of each rendition; the baseline uses the same box, format and quality.
RENDITIONS: list[dict[str, Any]] = [
    {"format": "jpeg", "width": 2000, "height": 2000, "fit": "pad", "background": "#ffffff", "quality": 90},
    {"format": "webp", "width": 2048, "height": 2048, "fit": "cover", "quality": 90},
    {"format": "png", "width": 1000, "height": 1000, "fit": "contain"},
]
PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG"}


def make_result(path: Path) -> None:
    """A 6000 x 4000 PNG: three gradients, one a channel, under 8 % noise; the same every time."""
    from PIL import Image

    width, height = SIZE
    across = Image.linear_gradient("L").rotate(90).resize(SIZE)
    down = Image.linear_gradient("L").resize(SIZE)
    around = Image.radial_gradient("L").resize(SIZE)
    base = Image.merge("RGB", (across, around, down))
    tile = Image.frombytes("RGB", (1000, 1000), random.Random(8).randbytes(3_000_000))
    noise = Image.new("RGB", SIZE)
    for left in range(0, width, tile.width):
        for top in range(0, height, tile.height):
            noise.paste(tile, (left, top))
    Image.blend(base, noise, 0.08).save(path, format="PNG")


# -- in the measured process ---------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's resident high-water mark. Not ``ru_maxrss``: that survives ``exec`` and so
    starts at whatever the parent held when it forked (here, the 24 MP picture it made)."""
    status = Path("/proc/self/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


def measure_renditions(path: str) -> dict[str, Any]:
    from backdrop_fn.renditions import Rendition, render

    renditions = [Rendition.model_validate(fields) for fields in RENDITIONS]
    idle = peak_rss_mb()
    times, sizes = [], []
    started = time.perf_counter()
    for _rendition, rendered in render(lambda: open(path, "rb"), renditions):  # noqa: SIM115 (render closes it)
        now = time.perf_counter()
        times.append(now - started)
        sizes.append([rendered.width, rendered.height, len(rendered.data)])
        del rendered  # as the function does once it has written it
        started = time.perf_counter()
    return {"idle_mb": idle, "peak_mb": peak_rss_mb(), "seconds": times, "sizes": sizes}


def measure_decode(path: str) -> dict[str, Any]:
    from PIL import Image

    import backdrop_fn.renditions  # noqa: F401 (the same imports as the measured process)

    idle = peak_rss_mb()
    with Image.open(path) as image:
        image.load()
    return {"idle_mb": idle, "peak_mb": peak_rss_mb()}


def measure_bare(path: str) -> dict[str, Any]:
    import io

    from PIL import Image

    started = time.perf_counter()
    with Image.open(path) as image:
        image.load()
        decoded = time.perf_counter() - started
        times, sizes = [], []
        for fields in RENDITIONS:
            started = time.perf_counter()
            copy = image.copy()
            copy.thumbnail((fields["width"], fields["height"]))
            out = io.BytesIO()
            options = {"quality": fields["quality"]} if "quality" in fields else {}
            copy.save(out, format=PILLOW_FORMATS[fields["format"]], **options)
            times.append(time.perf_counter() - started)
            sizes.append([copy.width, copy.height, out.tell()])
            del copy, out
    return {"decode_seconds": decoded, "seconds": times, "sizes": sizes, "peak_mb": peak_rss_mb()}


MEASURES = {"renditions": measure_renditions, "decode": measure_decode, "bare": measure_bare}


# -- in the parent --------------------------------------------------------------------------------


def in_fresh_process(measure: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FUNCTION_CODE), str(ROOT)])}
    command = [PYTHON, "-m", "bench.renditions", "--measure", measure, str(path)]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def timed_import(statement: str, function_code: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(function_code), "POWERTOOLS_TRACE_DISABLED": "true"}
    started = time.perf_counter()
    subprocess.run([PYTHON, "-c", statement], env=env, cwd=function_code, check=True, capture_output=True)
    return time.perf_counter() - started


def cold_import(function_code: Path, runs: int) -> dict[str, float]:
    app, base = [], []
    for _ in range(runs):
        app.append(timed_import("import app", function_code))
        base.append(timed_import("import boto3, requests", function_code))
    return {"app_s": statistics.median(app), "base_s": statistics.median(base)}


def per_rendition_medians(runs: list[dict[str, Any]], *, decode_in_first: bool) -> list[float]:
    """The median time of each rendition; the baseline's decoding counted with its first, as in
    ``render`` (which decodes before its first rendition)."""
    columns = []
    for index in range(len(RENDITIONS)):
        column = []
        for run in runs:
            seconds = run["seconds"][index]
            if decode_in_first and index == 0:
                seconds += run["decode_seconds"]
            column.append(seconds)
        columns.append(statistics.median(column))
    return columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--import-runs", type=int, default=15)
    parser.add_argument("--function-code", type=Path, default=FUNCTION_CODE)
    parser.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(MEASURES[args.measure](args.path)))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "result.png"
        make_result(path)
        decode = in_fresh_process("decode", path)
        ours, bare = [], []
        for _ in range(args.runs):
            ours.append(in_fresh_process("renditions", path))
            bare.append(in_fresh_process("bare", path))
        result_mb = path.stat().st_size / 1e6
    ours_s = per_rendition_medians(ours, decode_in_first=False)
    bare_s = per_rendition_medians(bare, decode_in_first=True)
    print(
        json.dumps(
            {
                "result_mb": result_mb,
                "renditions": RENDITIONS,
                "peak_mb": statistics.median(run["peak_mb"] for run in ours),
                "idle_mb": ours[0]["idle_mb"],
                "decode_peak_mb": decode["peak_mb"],
                "bare_peak_mb": statistics.median(run["peak_mb"] for run in bare),
                "seconds": ours_s,
                "baseline_seconds": bare_s,
                "baseline_decode_seconds": statistics.median(run["decode_seconds"] for run in bare),
                "sizes": ours[0]["sizes"],
                "baseline_sizes": bare[0]["sizes"],
                "cold_import": cold_import(args.function_code, args.import_runs),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
