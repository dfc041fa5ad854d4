"""`--local`: the local stack that answers at the expected port (another `backdrop watch DIR`, `make
demo`), or, when none does, one started for this command and stopped at its end."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from urllib.parse import urlparse

from backdrop import targets
from backdrop.drop.target import DropTarget, local
from backdrop.emulator import EmulatorSettings
from backdrop.local.moto_server import moto_server
from backdrop.local.sandbox import sandbox
from backdrop.local.stack import LOCAL_API_KEY
from backdrop.targets import TargetError


def add_local_start_arguments(parser: argparse.ArgumentParser, *, api_port: bool = True) -> None:
    started = parser.add_argument_group(
        "with --local: the local stack started for the command, when none runs"
    )
    if api_port:
        started.add_argument("--api-port", type=int, default=8080, help="its emulator's port (default: 8080)")
    started.add_argument(
        "--api-latency", type=float, default=0.5, help="its emulated API's seconds per call (default: 0.5)"
    )
    started.add_argument(
        "--maximum-concurrency",
        type=int,
        default=None,
        help="its MaximumConcurrency: containers, hence API calls, at once (default: the template's)",
    )


def running(args: argparse.Namespace) -> DropTarget | None:
    """The local stack answering where --local points; None when none does."""
    try:
        return local(args)
    except TargetError:
        return None


@contextmanager
def started(args: argparse.Namespace) -> Iterator[DropTarget]:
    """A local stack of this command's own at the expected port: moto, the template's resources, the
    emulator and the event source mapping, all stopped when the command ends."""
    port = urlparse(targets.local_endpoint(args)).port or targets.LOCAL_PORT
    settings = EmulatorSettings(api_keys={LOCAL_API_KEY}, latency_seconds=args.api_latency)
    parameters = {"PairSettleSeconds": "2"}
    if args.maximum_concurrency:
        parameters["MaximumConcurrency"] = str(args.maximum_concurrency)
    with (
        moto_server(port) as endpoint,
        sandbox(
            parameters=parameters,
            emulator_settings=settings,
            moto_endpoint=endpoint,
            emulator_port=args.api_port,
        ),
    ):
        args.endpoint_url = endpoint
        yield replace(local(args), ends_with_command=True)
