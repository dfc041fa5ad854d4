"""A stand-in for Lambda's SQS event source mapping: it polls the work queue and invokes the function.

It does what AWS does, with the template's settings: receives batches of ``BatchSize``, runs
up to ``MaximumConcurrency`` invocations at once, gives each a Lambda-like context with the
function's timeout as deadline, deletes the messages that succeeded, and leaves those reported
in ``batchItemFailures`` (or of a failed, timed-out or killed invocation) for the visibility
timeout. The queue itself (moto, like SQS) moves a message to the DLQ once it has been received
``maxReceiveCount`` times.

Each invocation runs in a container, as in Lambda (``containers.Containers``, what ``sandbox``
uses): a process of its own, started on demand up to ``MaximumConcurrency`` and kept warm, with
its own cold start, module state, ``/tmp`` and environment. One that runs past the timeout is
SIGKILLed, and so is one named to ``kill``: its batch is left on the queue and a new container
takes the next invocation. Given a plain callable instead, the mapping calls it in its own
threads (``invocation.InProcess``): the invocations then share this process, its modules and its
``/tmp``, and a run past the timeout is only found out when it ends. Tests of the mapping's
batch semantics and bench/drain.py (which profiles the handler in this process) use that.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from backdrop.local.esm import sqs_lambda_event
from backdrop.local.invocation import TIMEOUT, ContainerInfo, Function, Handler, InProcess, Outcome
from backdrop.local.template import StackSpec

logger = logging.getLogger(__name__)

__all__ = ["EventSourceMapping", "Handler", "MappingStats", "load_handler"]


def load_handler(spec: StackSpec) -> Handler:
    """Import the function's handler from its CodeUri into this process, for the in-process mode
    (a container imports it itself, in its own process: ``container_runtime``)."""
    module_name, function_name = spec.handler.rsplit(".", 1)
    code = str(spec.code_uri.resolve())
    if code not in sys.path:
        sys.path.insert(0, code)
    module = importlib.import_module(module_name)
    # A module imported earlier in this process keeps clients built for another environment.
    reset = getattr(getattr(module, "runtime", None), "cache_clear", None)
    if reset is not None:
        reset()
    return getattr(module, function_name)


@dataclass
class MappingStats:
    invocations: int = 0
    messages: int = 0
    deleted: int = 0
    reported_failures: int = 0
    invocation_errors: int = 0  # the function raised, its init failed, or its runtime exited mid-call
    timeouts: int = 0  # ran past the function's timeout (a container is killed then)
    kills: int = 0  # cut short by a kill of their container: `kill`, `kill_one_busy`, or from outside
    cold_starts: int = 0  # containers started
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class EventSourceMapping:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler | Function,
        *,
        batch_size: int,
        maximum_concurrency: int,
        function_timeout: float,
        poll_wait_seconds: int = 1,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        # A container pool (containers.Containers), or a plain callable called in this process.
        self._function: Function = InProcess(handler) if callable(handler) else handler
        self._batch_size = batch_size
        self._concurrency = maximum_concurrency
        self._timeout = function_timeout
        self._wait = poll_wait_seconds
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        self.stats = MappingStats()

    def start(self) -> EventSourceMapping:
        for number in range(self._concurrency):
            thread = threading.Thread(target=self._poll, name=f"esm-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop polling; invocations in flight finish (up to their deadline); then the containers end."""
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=self._timeout + self._wait + 5)
        self._function.close()

    def containers(self) -> list[ContainerInfo]:
        """The live containers: pid, busy, invocations, TMPDIR, cold start, the request id in
        flight (none in process)."""
        return self._function.containers()

    def kill(self, pid: int) -> bool:
        """SIGKILL the container ``pid``, as Lambda does at the deadline or on OOM. A batch it has
        in flight is not deleted and comes back after the visibility timeout."""
        return self._function.kill(pid)

    def kill_one_busy(self) -> ContainerInfo | None:
        """SIGKILL a container mid-call: what it was, the request id of the invocation cut short
        included; None when no invocation is in flight."""
        return self._function.kill_one_busy()

    @property
    def busy(self) -> bool:
        with self._busy_lock:
            return self._busy > 0

    def _poll(self) -> None:
        while not self._stopped.is_set():
            self.poll_once()

    def poll_once(self) -> None:
        """Receive one batch and invoke the handler with it, in the calling thread."""
        try:
            messages = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=self._batch_size,
                WaitTimeSeconds=self._wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        except Exception:
            if not self._stopped.is_set():
                logger.exception("receiving from the work queue failed")
                time.sleep(self._wait)
            return
        if messages:
            with self._busy_lock:
                self._busy += 1
            try:
                self._invoke(messages)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        self.stats.add(invocations=1, messages=len(messages))
        outcome = self._function.invoke(sqs_lambda_event(messages, self._queue_arn), self._timeout)
        self.stats.add(cold_starts=int(outcome.cold_start))
        if not outcome.succeeded:
            self._count_failure(outcome)
            return
        failed = {item["itemIdentifier"] for item in (outcome.response or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        self.stats.add(deleted=len(done), reported_failures=len(failed))

    def _count_failure(self, outcome: Outcome) -> None:
        """As in Lambda: an invocation that did not finish deletes nothing; the batch comes back."""
        if outcome.error is not None:
            logger.error(
                "the function failed; its batch returns after the visibility timeout:\n%s", outcome.error
            )
            self.stats.add(invocation_errors=1)
        elif outcome.stopped == TIMEOUT:
            logger.error("the function ran past its timeout and was stopped; nothing is deleted")
            self.stats.add(timeouts=1)
        else:
            logger.error("the function's container was killed mid-call; nothing is deleted")
            self.stats.add(kills=1)
