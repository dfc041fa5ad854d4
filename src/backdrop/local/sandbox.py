"""Everything at once: moto, the template's resources, the emulator, and the event source mapping."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from backdrop.emulator import Emulator, EmulatorSettings
from backdrop.local.aws_faults import AwsFaultProxy, FaultRule
from backdrop.local.containers import Containers, FunctionCode
from backdrop.local.invocation import Function, Handler
from backdrop.local.moto_server import moto_server
from backdrop.local.poller import EventSourceMapping, load_handler
from backdrop.local.stack import LOCAL_API_KEY, LocalStack, create_resources, environment
from backdrop.local.template import DEFAULT_TEMPLATE, StackSpec, load_spec


@dataclass
class Sandbox:
    stack: LocalStack
    emulator: Emulator
    mapping: EventSourceMapping
    # In front of moto for the function's own AWS calls when ``aws_faults`` were asked for.
    aws_faults: AwsFaultProxy | None = None

    def wait_until(self, done: Callable[[], bool], *, timeout: float, poll: float = 0.2) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(poll)
        return done()


@contextmanager
def sandbox(
    *,
    template: Path = DEFAULT_TEMPLATE,
    parameters: Mapping[str, str] | None = None,
    emulator_settings: EmulatorSettings | None = None,
    function_environment: Mapping[str, str] | None = None,
    moto_port: int = 0,
    emulator_port: int = 0,
    moto_endpoint: str | None = None,
    containers: bool = True,
    container_tmp_bytes: int | None = None,
    aws_faults: Sequence[FaultRule] | None = None,
    aws_faults_seed: int | None = None,
) -> Iterator[Sandbox]:
    """The whole product on loopback. ``parameters`` override the template's, as in ``sam deploy``.

    ``moto_endpoint`` reuses a moto server already running in this process (moto keeps one
    state per process, so a second server would share it anyway).

    The function runs in containers, processes of their own started on first use (see
    ``containers.py``), with the function's environment. ``containers=False`` runs it in this
    process instead, with that environment set on this process while the sandbox runs.

    ``container_tmp_bytes`` gives each container a ``/tmp`` of that many bytes, as Lambda's
    ephemeral storage (512 MB unless the function configures more): a tmpfs of its own, mounted
    at its ``TMPDIR`` through ``unshare``, which a write past that size fails with ENOSPC. Left
    ``None``, a container's ``/tmp`` is a directory on this machine's disk with no limit of its
    own. It needs ``containers=True``; a machine without ``unshare`` fails the sandbox's start.

    ``aws_faults`` puts an ``AwsFaultProxy`` with those rules between the function and moto
    (``box.aws_faults``; its rules can be changed while it runs). The sandbox's own clients, and
    so the tests' uploads and checks, reach moto directly.
    """
    spec = load_spec(template, parameters)
    settings = emulator_settings or EmulatorSettings(api_keys={LOCAL_API_KEY})
    server = nullcontext(moto_endpoint) if moto_endpoint else moto_server(moto_port)
    with Emulator(settings, port=emulator_port) as emulator, server as endpoint:
        stack = create_resources(spec, endpoint, api_key=sorted(settings.api_keys)[0])
        proxy = None
        if aws_faults is not None:
            proxy = AwsFaultProxy(endpoint, rules=aws_faults, seed=aws_faults_seed)
        variables = {**stack.function_environment(emulator.url), **(function_environment or {})}
        if proxy is not None:
            variables["AWS_ENDPOINT_URL"] = proxy.start().endpoint
        with _function(spec, variables, containers=containers, tmp_bytes=container_tmp_bytes) as function:
            mapping = EventSourceMapping(
                stack.client("sqs"),
                stack.work_queue_url,
                stack.work_queue_arn,
                function,
                batch_size=spec.batch_size,
                maximum_concurrency=spec.maximum_concurrency,
                function_timeout=spec.function_timeout,
            ).start()
            try:
                yield Sandbox(stack=stack, emulator=emulator, mapping=mapping, aws_faults=proxy)
            finally:
                mapping.stop()
                if proxy is not None:
                    proxy.stop()


@contextmanager
def _function(
    spec: StackSpec, variables: dict[str, str], *, containers: bool, tmp_bytes: int | None = None
) -> Iterator[Function | Handler]:
    """The function's containers (the mapping ends them when it stops), or its handler in this process."""
    if containers:
        yield Containers(
            FunctionCode.of(spec), variables, limit=spec.maximum_concurrency, tmp_bytes=tmp_bytes
        )
        return
    if tmp_bytes is not None:  # this process's /tmp is the machine's: it cannot be given a size
        raise ValueError("container_tmp_bytes needs containers=True")
    with environment(variables):  # the handler reads its configuration from the process
        yield load_handler(spec)
