"""The ``backdrop`` command (CONTRACT.md §7)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence

from backdrop.emulator import Emulator, EmulatorSettings


def parse_faults(text: str) -> dict[str, float]:
    """``429=0.2,500=0.05,timeout=0.02`` → probabilities by fault kind."""
    faults: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        kind, _, value = part.partition("=")
        if kind not in {"429", "500", "502", "503", "504", "timeout"}:
            raise argparse.ArgumentTypeError(
                f"unknown fault {kind!r}: use 429, 500, 502, 503, 504 or timeout"
            )
        try:
            probability = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: the probability must be a number") from None
        if not 0 <= probability <= 1:
            raise argparse.ArgumentTypeError(f"{part!r}: the probability must be between 0 and 1")
        faults[kind] = probability
    if sum(faults.values()) > 1:
        raise argparse.ArgumentTypeError("the fault probabilities add up to more than 1")
    return faults


def _emulator(args: argparse.Namespace) -> int:
    settings = EmulatorSettings(
        api_keys=set(args.key),
        credits=args.credits,
        output_format=args.format,
        latency_seconds=args.latency,
        faults=args.fail,
        requests_per_minute=args.rpm,
        random_seed=args.seed,
    )
    emulator = Emulator(settings, port=args.port).start()
    print(f"Segmind emulator (offline test double, not the real model) on {emulator.url}")
    print(f"accepted x-api-key: {', '.join(sorted(settings.api_keys))}   Ctrl-C to stop")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    emulator.stop()
    print(
        f"served {len(emulator.requests)} requests, "
        f"billed {emulator.billed_calls} (${emulator.spent_usd:.3f})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backdrop", description="Backdrop: replace image backgrounds on S3."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser(
        "emulator", help="serve the offline Segmind-compatible emulator on loopback"
    )
    emulator.add_argument("--port", type=int, default=8080)
    emulator.add_argument("--key", action="append", default=None, help="an accepted x-api-key (repeatable)")
    emulator.add_argument("--credits", type=float, default=None, help="credits in USD; 406 when spent")
    emulator.add_argument(
        "--format", choices=("png", "jpeg", "webp"), default="png", help="answer image type"
    )
    emulator.add_argument("--latency", type=float, default=0.0, help="seconds added to every successful call")
    emulator.add_argument("--fail", type=parse_faults, default={}, help="e.g. 429=0.2,500=0.05,timeout=0.02")
    emulator.add_argument("--rpm", type=int, default=None, help="requests a minute before 429")
    emulator.add_argument("--seed", type=int, default=None, help="seed of the fault injection")
    emulator.set_defaults(handler=_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "key", "unset") is None:
        args.key = ["local-emulator-key"]
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
