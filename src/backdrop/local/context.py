"""A Lambda context object for invoking the real handler outside Lambda, with a real deadline."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LocalLambdaContext:
    function_name: str = "ReplaceBackgroundFunction"
    timeout_seconds: float = 180.0
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic, repr=False)

    @classmethod
    def until(cls, deadline_ms: int, **fields: Any) -> LocalLambdaContext:
        """A context whose deadline is ``deadline_ms``, milliseconds since the epoch, as Lambda's
        runtime API gives it to a runtime (``Lambda-Runtime-Deadline-Ms``): how a container, a
        process of its own, learns the deadline the event source mapping set."""
        context = cls(**fields)
        remaining = deadline_ms / 1000 - time.time()
        context._started = time.monotonic() - (context.timeout_seconds - remaining)
        return context

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def remaining_seconds(self) -> float:
        return self.timeout_seconds - (time.monotonic() - self._started)

    def deadline_ms(self) -> int:
        """The deadline in milliseconds since the epoch (what ``until`` takes)."""
        return int((time.time() + self.remaining_seconds()) * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.remaining_seconds() * 1000))
