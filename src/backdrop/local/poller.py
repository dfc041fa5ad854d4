"""A stand-in for Lambda's SQS event source mapping: it polls the work queue and invokes the handler.

It does what AWS does, with the template's settings: receives batches of ``BatchSize``, runs
up to ``MaximumConcurrency`` invocations at once, gives each a Lambda-like context with the
function's timeout as deadline, deletes the messages that succeeded, and leaves those reported
in ``batchItemFailures`` (or of a failed or timed-out invocation) for the visibility timeout.
The queue itself (moto, like SQS) moves a message to the DLQ once it has been received
``maxReceiveCount`` times.

One difference, said plainly: the concurrent invocations are threads of one process, where
Lambda would use separate containers.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backdrop.local.context import LocalLambdaContext
from backdrop.local.esm import sqs_lambda_event
from backdrop.local.template import StackSpec

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


def load_handler(spec: StackSpec) -> Handler:
    """Import the function's handler from its CodeUri as Lambda would, as a fresh container."""
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
    invocation_errors: int = 0
    timeouts: int = 0
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
        handler: Handler,
        *,
        batch_size: int,
        maximum_concurrency: int,
        function_timeout: float,
        poll_wait_seconds: int = 1,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._handler = handler
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
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=self._timeout + self._wait + 5)

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
        context = LocalLambdaContext(timeout_seconds=self._timeout)
        started = time.monotonic()
        self.stats.add(invocations=1, messages=len(messages))
        try:
            response = self._handler(sqs_lambda_event(messages, self._queue_arn), context)
        except Exception:
            # As in Lambda: a failed invocation deletes nothing; the whole batch comes back.
            logger.exception("the function failed; its batch returns after the visibility timeout")
            self.stats.add(invocation_errors=1)
            return
        if time.monotonic() - started > self._timeout:
            logger.error(
                "the function ran past its timeout; Lambda would have stopped it, nothing is deleted"
            )
            self.stats.add(timeouts=1)
            return
        failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        self.stats.add(deleted=len(done), reported_failures=len(failed))
