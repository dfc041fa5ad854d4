"""Lambda's containers, locally: each one a long-lived process of its own, warm across invocations.

``Containers`` keeps those of one function: an invocation takes the container that was used last
among the idle ones, or starts a new one (a cold start) while there are fewer than ``limit``,
the event source mapping's ``MaximumConcurrency``. Each container imports the handler itself from
the function's code directory (``container_runtime.py`` runs inside it), so it has its own cold
start, its own module state, and its own ``/tmp``: a fresh directory, given as ``TMPDIR``. Its
environment is the function's variables, passed explicitly, and nothing of this process's.

That ``/tmp`` is a plain directory on this machine's disk unless ``tmp_bytes`` is given: then,
as Lambda's ephemeral storage is, it is a filesystem of that size of its own, a tmpfs mounted at
its ``TMPDIR`` in a user and mount namespace of the container's (``unshare``, no privileges
needed). Only the container sees what it writes there: from outside, its ``TMPDIR`` looks empty.

A container that runs past the function's timeout is killed (SIGKILL, as Lambda stops it); so is
one that ``kill`` names, which is how a test or the soak has a container die mid-call. The batch
of a killed container is not deleted, and the next invocation starts a new container. When the
mapping stops, ``close`` ends every container and removes their directories.

Why processes started with ``subprocess`` and a socket, not ``multiprocessing``: its spawn
start method hands a child this process's environment and imports this process's ``__main__``
(the soak, or pytest) into it, where a container must get the function's environment alone and
pay for nothing but the function's imports; it also speaks pickle where Lambda speaks JSON.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from backdrop.local import container_runtime
from backdrop.local.container_runtime import BOOT, receive, send
from backdrop.local.context import LocalLambdaContext
from backdrop.local.invocation import KILLED, TIMEOUT, ContainerInfo, Outcome
from backdrop.local.template import FUNCTION, StackSpec

logger = logging.getLogger(__name__)

# Lambda gives a function's init 10 s; past that it tries again within the invocation's timeout.
INIT_SECONDS = 10.0
# How long a container whose socket was closed may take to exit before it is killed.
EXIT_GRACE_SECONDS = 5.0
_SOURCE = str(Path(container_runtime.__file__).resolve().parents[2])  # what holds `backdrop`

# How a container's start ends when its tmpfs could not be mounted: its runtime never ran.
TMPFS_FAILED = 97
# Run by `sh` in the container's own user and mount namespaces, before its runtime. The mount
# is seen by nothing outside them. `exec` then turns the shell into the runtime (as `unshare`
# without --fork turned itself into the shell), so the process the mapping started, its pid, its
# session and the socket it was handed, are the runtime's. A failed mount ends the start there:
# a runtime that went on would write to the disk below, without a limit.
_MOUNT_TMPFS = f'mount -t tmpfs -o "size=$1" tmpfs "$TMPDIR" || exit {TMPFS_FAILED}; shift; exec "$@"'


@dataclass(frozen=True)
class Invocation:
    """One invocation of the function: its ``aws_request_id`` and its event."""

    request_id: str
    event: dict[str, Any]


class TmpfsUnavailable(RuntimeError):
    """A size-limited /tmp was asked for and this machine cannot give one."""


@dataclass(frozen=True)
class Tmpfs:
    """A container's ``/tmp`` as Lambda's ephemeral storage: a filesystem of ``size`` bytes."""

    size: int
    unshare: str  # the path of util-linux's `unshare`

    @classmethod
    def of(cls, size: int) -> Tmpfs:
        if size <= 0:  # tmpfs takes size=0 for "no limit", the opposite of what was asked
            raise ValueError(f"a container's /tmp needs a positive size in bytes, not {size}")
        unshare = shutil.which("unshare")
        if unshare is None:
            raise TmpfsUnavailable("a size-limited /tmp per container needs `unshare` (util-linux) on PATH")
        tmpfs = cls(size, unshare)
        tmpfs.probe()
        return tmpfs

    def probe(self) -> None:
        """Mount one here and now: a machine that forbids unprivileged user namespaces (a
        container's seccomp profile, AppArmor) says so once, not as every cold start's failure."""
        with tempfile.TemporaryDirectory(prefix="backdrop-tmpfs-probe-") as directory:
            tried = subprocess.run(  # noqa: S603 (util-linux's unshare, and true)
                self.wrap(["true"]),
                env={**os.environ, "TMPDIR": directory},
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        if tried.returncode != 0:
            raise TmpfsUnavailable(
                "a size-limited /tmp per container could not be mounted (unprivileged user and mount "
                f"namespaces): {tried.stderr.strip() or f'status {tried.returncode}'}"
            )

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv``, run with a tmpfs of ``size`` bytes (rounded up to whole pages) at its TMPDIR."""
        namespaces = [self.unshare, "--user", "--map-root-user", "--mount", "--"]
        return [*namespaces, "sh", "-c", _MOUNT_TMPFS, "sh", str(self.size), *argv]


@dataclass(frozen=True)
class FunctionCode:
    """What a container imports: ``handler`` (``module.function``) from ``code_uri``."""

    code_uri: Path
    handler: str
    function_name: str = FUNCTION
    memory_mb: int = 512

    @classmethod
    def of(cls, spec: StackSpec) -> FunctionCode:
        return cls(spec.code_uri.resolve(), spec.handler, FUNCTION, spec.function_memory)

    def config(self) -> str:
        return json.dumps(
            {
                "code_uri": str(self.code_uri.resolve()),
                "handler": self.handler,
                "function_name": self.function_name,
                "memory_mb": self.memory_mb,
            }
        )


def base_environment(tmpdir: Path) -> dict[str, str]:
    """What a container has besides the function's variables: what Lambda's runtime sets too."""
    return {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8", "TMPDIR": str(tmpdir)}


class Container:
    """One container: a process running ``container_runtime``, used by one invocation at a time."""

    def __init__(
        self,
        code: FunctionCode,
        environment: Mapping[str, str],
        tmpdir: Path,
        *,
        tmpfs: Tmpfs | None = None,
    ) -> None:
        tmpdir.mkdir(parents=True)
        self.tmpdir = tmpdir
        self.busy = True
        # The invocation it runs (a cold start's from its init); set and cleared by `Containers`
        # under its lock, with `busy`.
        self.invocation: Invocation | None = None
        self.invocations = 0
        self.init_seconds: float | None = None
        self._code = code
        self._tmpfs = tmpfs
        self._lock = threading.Lock()
        self._stopped_by: str | None = None  # TIMEOUT or KILLED, once the mapping killed it
        self._ended = False
        ours, theirs = socket.socketpair()
        self._channel = ours
        self._spawned = time.monotonic()
        argv = [sys.executable, "-c", BOOT, _SOURCE, str(theirs.fileno()), code.config()]
        try:
            self._process = subprocess.Popen(  # noqa: S603 (this interpreter, our own runtime)
                tmpfs.wrap(argv) if tmpfs is not None else argv,
                env={**environment, **base_environment(tmpdir)},
                cwd=code.code_uri,
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # Ctrl-C at the terminal is for the parent; kill takes its group
            )
        except BaseException:
            ours.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        finally:
            theirs.close()
        self.pid = self._process.pid

    def info(self) -> ContainerInfo:
        running = self.invocation
        return ContainerInfo(
            self.pid,
            self.busy,
            self.invocations,
            self.tmpdir,
            self.init_seconds,
            running.request_id if running else None,
            running.event if running else None,
        )

    @property
    def alive(self) -> bool:
        with self._lock:
            return not self._ended and self._stopped_by is None and self._process.poll() is None

    def wait_until_ready(self, timeout: float) -> Outcome | None:
        """The init phase: ``None`` once the handler is imported, else what became of it."""
        try:
            ready = receive(self._channel, time.monotonic() + timeout)
        except TimeoutError:
            self.kill(TIMEOUT)  # Lambda gives up on an init that takes longer than the invocation
            return Outcome(stopped=TIMEOUT)
        except (EOFError, OSError):
            return self._ended_mid_call()
        self.init_seconds = time.monotonic() - self._spawned
        if not ready["ready"]:
            self.kill(KILLED)  # an init that failed leaves nothing worth keeping
            return Outcome(error=_describe(ready["error"]))
        return None

    def invoke(self, invocation: Invocation, timeout: float) -> Outcome:
        self.invocations += 1
        context = LocalLambdaContext(
            function_name=self._code.function_name,
            memory_limit_in_mb=self._code.memory_mb,
            timeout_seconds=timeout,
            aws_request_id=invocation.request_id,
        )
        request = {
            "event": invocation.event,
            "deadline_ms": context.deadline_ms(),
            "timeout_seconds": timeout,
            "request_id": context.aws_request_id,
        }
        try:
            self._channel.settimeout(timeout)
            send(self._channel, request)
            reply = receive(self._channel, time.monotonic() + context.remaining_seconds())
        except TimeoutError:
            self.kill(TIMEOUT)  # as Lambda stops a function at its deadline
            return Outcome(stopped=TIMEOUT)
        except (EOFError, OSError):
            return self._ended_mid_call()
        if "error" in reply:
            return Outcome(error=_describe(reply["error"]))
        return Outcome(response=reply["response"])

    def kill(self, reason: str = KILLED) -> bool:
        """SIGKILL the container (its whole process group); False if it had already ended."""
        with self._lock:
            if self._ended or self._process.returncode is not None:
                return False
            self._stopped_by = self._stopped_by or reason
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)  # unreaped, its pid and group cannot be reused
            return True

    def hang_up(self) -> None:
        """Close the mapping's side of the socket: an idle runtime takes that as its end and exits."""
        with contextlib.suppress(OSError):
            self._channel.shutdown(socket.SHUT_RDWR)

    def end(self, grace: float = 0.0) -> None:
        """Reap the process (killed after ``grace`` seconds if it is still there) and its TMPDIR."""
        with self._lock:
            if self._ended:
                return
            if grace > 0:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=grace)
            if self._process.returncode is None:  # not reaped: its pid and group are still its own
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
            self._process.wait()
            self._ended = True
        self._channel.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _ended_mid_call(self) -> Outcome:
        self.end()
        code = self._process.returncode
        if self._stopped_by is not None:
            return Outcome(stopped=self._stopped_by)
        if code < 0:
            return Outcome(stopped=KILLED)  # a signal from outside: the OOM killer, the soak
        if code == TMPFS_FAILED and self._tmpfs is not None:
            return Outcome(
                error=f"Runtime.ExitError: the container's /tmp, a tmpfs of {self._tmpfs.size} bytes at "
                f"{self.tmpdir}, could not be mounted (why is on its stderr), so its runtime never started"
            )
        return Outcome(error=f"Runtime.ExitError: the runtime exited with status {code} mid-call")


def _describe(error: dict[str, Any]) -> str:
    trace = "".join(error.get("stackTrace") or [])
    return trace or f"{error.get('errorType')}: {error.get('errorMessage')}"


class ContainersClosed(Exception):
    pass


class Containers:
    """The containers of one function, at most ``limit`` of them, started on demand.

    ``tmp_bytes`` gives each its own ``/tmp`` of that size, as Lambda's ephemeral storage
    (512 MB unless configured): a tmpfs, so what is written there also takes this machine's
    memory. Without it, a container's ``/tmp`` is a directory on disk with no limit of its own.
    ``TmpfsUnavailable`` here when this machine has no ``unshare``.
    """

    def __init__(
        self,
        code: FunctionCode,
        environment: Mapping[str, str],
        *,
        limit: int,
        init_seconds: float = INIT_SECONDS,
        tmp_bytes: int | None = None,
    ) -> None:
        self._code = code
        self._tmpfs = Tmpfs.of(tmp_bytes) if tmp_bytes is not None else None
        self._environment = dict(environment)
        self._limit = limit
        self._init_seconds = init_seconds
        self._changed = threading.Condition()
        self._idle: list[Container] = []  # the last one used last
        self._all: dict[int, Container] = {}
        self._count = 0  # containers running or starting, against the limit
        self._numbers = itertools.count(1)
        self._root: Path | None = None  # made at the first cold start
        self._closed = False

    # -- the event source mapping's side ------------------------------------------------------

    def invoke(self, event: dict[str, Any], timeout: float) -> Outcome:
        # Made before a container is taken: a cold start's init belongs to the invocation too.
        invocation = Invocation(str(uuid.uuid4()), event)
        try:
            container = self._take(invocation)
        except ContainersClosed:
            return Outcome(error="the function's containers were shut down")
        if container is None:
            try:
                container = self._start(invocation)
            except OSError as error:
                self._release_slot()
                return Outcome(error=f"the container could not be started: {error}", cold_start=True)
            failed = container.wait_until_ready(max(self._init_seconds, timeout))
            if failed is not None:
                self._give_back(container)
                return replace(failed, cold_start=True)
            return replace(self._run(container, invocation, timeout), cold_start=True)
        return self._run(container, invocation, timeout)

    def containers(self) -> list[ContainerInfo]:
        with self._changed:
            return [container.info() for container in self._all.values()]

    def kill(self, pid: int) -> bool:
        """SIGKILL the container ``pid``, busy or idle. Its batch in flight, if any, is not deleted."""
        with self._changed:
            container = self._all.get(pid)
        if container is None or not container.kill():
            return False
        self._drop_if_idle(container)
        return True

    def kill_one_busy(self) -> ContainerInfo | None:
        """SIGKILL a container that has an invocation in flight: what it was when killed, the
        ``request_id`` of the invocation cut short included; None if no container had one.

        A container killed in its cold start's init has the request id of the invocation that
        waited for it, one its handler never saw."""
        # Under the pool's lock no invocation ends or begins (`_take`, `_start`, `_give_back`), so
        # the request id read is that of the invocation in flight at the kill.
        with self._changed:
            for container in self._all.values():
                if container.busy and container.kill():
                    return container.info()
        return None

    def close(self) -> None:
        with self._changed:
            self._closed = True
            everything = list(self._all.values())
            self._idle.clear()
        for container in everything:
            container.hang_up()
        for container in everything:
            container.end(grace=EXIT_GRACE_SECONDS)
        with self._changed:
            self._all.clear()
            self._changed.notify_all()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    # -- the pool -----------------------------------------------------------------------------

    def _run(self, container: Container, invocation: Invocation, timeout: float) -> Outcome:
        try:
            return container.invoke(invocation, timeout)
        finally:
            self._give_back(container)

    def _take(self, invocation: Invocation) -> Container | None:
        """An idle container, marked busy with the invocation; or None, with a slot reserved to start one."""
        with self._changed:
            while not self._closed:
                while self._idle:
                    container = self._idle.pop()
                    if container.alive:
                        container.busy, container.invocation = True, invocation
                        return container
                    self._forget(container)
                if self._count < self._limit:
                    self._count += 1
                    return None
                self._changed.wait()
        raise ContainersClosed

    def _start(self, invocation: Invocation) -> Container:
        with self._changed:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="backdrop-lambda-"))
            tmpdir = self._root / f"container-{next(self._numbers)}"
        container = Container(self._code, self._environment, tmpdir, tmpfs=self._tmpfs)
        with self._changed:
            container.invocation = invocation
            self._all[container.pid] = container
        return container

    def _give_back(self, container: Container) -> None:
        with self._changed:
            container.busy, container.invocation = False, None
            if container.alive and not self._closed:
                self._idle.append(container)
                self._changed.notify()
                return
            self._forget(container)

    def _drop_if_idle(self, container: Container) -> None:
        with self._changed:
            if container in self._idle:
                self._idle.remove(container)
                self._forget(container)

    def _forget(self, container: Container) -> None:
        """Under the lock: the container is gone; its slot is free for a new one."""
        if self._all.pop(container.pid, None) is not None:
            self._count -= 1
            self._changed.notify()
        container.end()

    def _release_slot(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify()
