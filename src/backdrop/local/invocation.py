"""One invocation of the function, as the local event source mapping sees it, however it ran.

``InProcess`` calls a handler in the mapping's own thread; ``containers.Containers`` runs each
invocation in a container, a process of its own. Both give back an ``Outcome``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from backdrop.local.context import LocalLambdaContext

Handler = Callable[[dict[str, Any], Any], Any]

# Why an invocation never finished; either way its batch is left for the visibility timeout.
TIMEOUT = "timeout"  # it ran past the function's timeout, and its container was stopped
KILLED = "killed"  # its container was killed mid-call: `kill`, or a signal from outside (OOM)


@dataclass(frozen=True)
class Outcome:
    response: Any = None
    error: str | None = None  # the function failed: what it raised, or why its runtime ended
    stopped: str | None = None  # TIMEOUT or KILLED
    cold_start: bool = False  # a container was started for this invocation

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.stopped is None


@dataclass(frozen=True)
class ContainerInfo:
    pid: int
    busy: bool  # an invocation is in flight (or the container is starting for one)
    invocations: int  # given to this container so far, the one in flight included
    tmpdir: Path  # its TMPDIR: what tempfile.gettempdir() is inside it
    init_seconds: float | None  # its cold start: process start to handler imported (None: starting)
    # The aws_request_id of the invocation it runs now, from the start of a cold start's init for
    # the invocation that waits on it; None when idle. Which invocation a kill cut short.
    request_id: str | None
    event: dict[str, Any] | None = field(default=None, repr=False)  # that invocation's event


class Function(Protocol):
    """What runs the function for the event source mapping."""

    def invoke(self, event: dict[str, Any], timeout: float) -> Outcome: ...

    def containers(self) -> list[ContainerInfo]: ...

    def kill(self, pid: int) -> bool: ...

    def kill_one_busy(self) -> ContainerInfo | None: ...

    def close(self) -> None: ...


class InProcess:
    """The handler, called in the calling thread: invocations share this process, its modules and
    its ``/tmp``. A run past the timeout cannot be stopped; it is only found out afterwards."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def invoke(self, event: dict[str, Any], timeout: float) -> Outcome:
        context = LocalLambdaContext(timeout_seconds=timeout)
        started = time.monotonic()
        try:
            response = self._handler(event, context)
        except Exception:
            return Outcome(error=traceback.format_exc())
        if time.monotonic() - started > timeout:
            return Outcome(stopped=TIMEOUT)
        return Outcome(response=response)

    def containers(self) -> list[ContainerInfo]:
        return []

    def kill(self, pid: int) -> bool:
        return False

    def kill_one_busy(self) -> ContainerInfo | None:
        return None

    def close(self) -> None:
        pass
