"""What the emulator is told (its settings), what it answers (a reply) and what it remembers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ENDPOINT = "/v1/ideogram-3-replace-background"
STATS = "/_emulator/stats"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Stream:
    """A body written piece by piece as it is made, never held whole: how a hostile answer is sent.

    The connection is closed after the last piece (and the silence), so pieces that add up to less
    than the announced length are an answer broken off.
    """

    length: int  # the Content-Length announced
    pieces: Callable[[], Iterable[bytes]]
    interval_seconds: float = 0.0  # nothing is sent for this long before each piece but the first
    silence_seconds: float = 0.0  # nothing is sent for this long after the last piece, then close


@dataclass
class Reply:
    """A scripted answer for the next request: status, body, headers, and an optional stall.

    ``Reply(fault="hangup")`` (a fault kind, every other field left alone) scripts that fault
    instead: the emulator makes the answer, as it would for a fault rolled from the settings.
    """

    status: int = 200
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stall_seconds: float = 0.0
    # Close the connection without answering, after the stall: what a timeout looks like.
    drop: bool = False
    # The fault kind that shaped this answer (see faults.py); None for an honest one.
    fault: str | None = None
    # A body sent as it is made (a fault's), instead of ``body``.
    stream: Stream | None = None


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error as Segmind words it: the status and a `{"error": "…"}` body."""
    return Reply(status, {"error": message}, headers or {})


@dataclass
class EmulatorSettings:
    api_keys: set[str] = field(default_factory=lambda: {"local-emulator-key"})
    credits: float | None = None
    output_format: str = "png"
    latency_seconds: float = 0.0
    # Probability of an injected fault per request, by kind (faults.py): "429", "500", "502",
    # "503", "504", "timeout" and "gzip_bomb" answer unbilled; "drip", "hangup", "stall", "huge"
    # and "echo_key" are billed answers delivered badly.
    faults: dict[str, float] = field(default_factory=dict)
    requests_per_minute: int | None = None
    # The rate limit's window: a minute, as Segmind's, or shorter to scale a benchmark down.
    rate_window_seconds: float = 60.0
    # Answer with the input image itself instead of painting one: for measuring the function on
    # large images without measuring the emulator's drawing.
    echo: bool = False
    # The silence of a "timeout" (then the connection drops) and of a "stall" (after part of a body).
    timeout_stall_seconds: float = 30.0
    random_seed: int | None = None
    # A "drip" sends its picture this many bytes at a time, one piece every interval: at the
    # defaults a picture of 1 KB takes over half an hour, beyond any Lambda deadline.
    drip_interval_seconds: float = 2.0
    drip_piece_bytes: int = 1
    # A "huge" answer is its picture followed by this many bytes of padding: more than this in all
    # (the default is above the function's MAX_ANSWER_BYTES of 50 MiB).
    huge_answer_bytes: int = 60 * MIB
    # What a "gzip_bomb"'s small body inflates to.
    gzip_bomb_bytes: int = 256 * MIB


@dataclass(frozen=True)
class RecordedRequest:
    headers: dict[str, str]
    body: Any
    status: int
    billed: bool
    seconds: float = 0.0  # from the request's arrival to its answer being ready
    at: float = 0.0  # when it arrived (Unix time)
    fault: str | None = None  # the fault kind that shaped the answer, if one did

    @property
    def charged_then_lost(self) -> bool:
        """Billed, but delivered so that no client could keep it (drip, hangup, stall, huge)."""
        return self.billed and self.fault in LOST_IN_DELIVERY


# The billed faults whose answer never arrives whole (faults.py makes them).
LOST_IN_DELIVERY = frozenset({"drip", "hangup", "stall", "huge"})
