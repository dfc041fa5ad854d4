"""What the emulator is told (its settings), what it answers (a reply) and what it remembers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENDPOINT = "/v1/ideogram-3-replace-background"
STATS = "/_emulator/stats"


@dataclass
class Reply:
    """A scripted answer for the next request: status, body, headers, and an optional stall."""

    status: int = 200
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stall_seconds: float = 0.0
    # Close the connection without answering, after the stall: what a timeout looks like.
    drop: bool = False


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error as Segmind words it: the status and a `{"error": "…"}` body."""
    return Reply(status, {"error": message}, headers or {})


@dataclass
class EmulatorSettings:
    api_keys: set[str] = field(default_factory=lambda: {"local-emulator-key"})
    credits: float | None = None
    output_format: str = "png"
    latency_seconds: float = 0.0
    # Probability of an injected fault per request, by kind: "429", "500", "502", "503", "timeout".
    faults: dict[str, float] = field(default_factory=dict)
    requests_per_minute: int | None = None
    # The rate limit's window: a minute, as Segmind's, or shorter to scale a benchmark down.
    rate_window_seconds: float = 60.0
    # Answer with the input image itself instead of painting one: for measuring the function on
    # large images without measuring the emulator's drawing.
    echo: bool = False
    timeout_stall_seconds: float = 30.0
    random_seed: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    headers: dict[str, str]
    body: Any
    status: int
    billed: bool
    seconds: float = 0.0  # from the request's arrival to its answer being ready
    at: float = 0.0  # when it arrived (Unix time)
