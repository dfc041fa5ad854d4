"""How the emulator answers a request: an ordered table of rules, the first that answers wins.

Each rule looks at the call and either answers (a Reply, and the request ends there, unbilled)
or passes (None). A call that passes them all gets its picture, and is billed; when a charged
fault (faults.py) was rolled or scripted for it, the picture is then delivered as that fault says.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from backdrop.emulator.faults import CHARGED, refusal
from backdrop.emulator.image_input import CONTENT_TYPES, content_type_of, load_image
from backdrop.emulator.models import ENDPOINT, EmulatorSettings, Reply, error
from backdrop.emulator.render import replace_background
from backdrop.emulator.request_rules import RequestRejected, check_body
from backdrop.pricing import price_of

if TYPE_CHECKING:
    from backdrop.emulator.server import Emulator


@dataclass
class Call:
    """One request as the rules see it; the body's rule fills in the checked body and the image."""

    path: str
    headers: dict[str, str]
    body: Any
    checked: dict[str, Any] = field(default_factory=dict)
    image: bytes = b""
    # A charged fault kind, rolled or scripted, that will spoil the billed picture's delivery.
    fault: str | None = None

    @classmethod
    def read(cls, path: str, headers: dict[str, str], raw_body: bytes) -> Call:
        try:
            body = json.loads(raw_body or b"null")
        except ValueError:
            body = None
        return cls(path, headers, body)

    @property
    def price(self) -> float:
        return price_of(self.checked.get("rendering_speed"))


Rule = Callable[["Emulator", Call], Reply | None]


def _scripted(emulator: Emulator, call: Call) -> Reply | None:
    reply = emulator.next_scripted()
    if reply is None or reply.fault is None:
        return reply
    return _fault(emulator, call, reply.fault)  # Reply(fault=KIND): the emulator makes it


def _unknown_model(emulator: Emulator, call: Call) -> Reply | None:
    return error(404, f"no model at {call.path}") if call.path.split("?")[0] != ENDPOINT else None


def _missing_key(emulator: Emulator, call: Call) -> Reply | None:
    key = call.headers.get("x-api-key")
    return None if key else error(401, "API key missing: send it in the x-api-key header")


def _unknown_key(emulator: Emulator, call: Call) -> Reply | None:
    key = call.headers.get("x-api-key")
    return None if key in emulator.settings.api_keys else error(401, "Invalid API key")


def _over_rate_limit(emulator: Emulator, call: Call) -> Reply | None:
    limit = emulator.settings.requests_per_minute
    reset = emulator.rate.admit(limit, emulator.settings.rate_window_seconds) if limit else None
    if reset is None:
        return None
    return error(429, "Rate limit exceeded", {"x-rate-limit-reset-at-utc": reset.isoformat()})


def _injected_fault(emulator: Emulator, call: Call) -> Reply | None:
    if call.fault is not None:
        return None  # a charged fault was scripted: no other is rolled
    kind = _rolled_fault(emulator.roll(), emulator.settings.faults)
    return None if kind is None else _fault(emulator, call, kind)


def _fault(emulator: Emulator, call: Call, kind: str) -> Reply | None:
    """A refusal answers now, unbilled; a charged fault passes, kept for the picture's delivery."""
    if kind in CHARGED:
        call.fault = kind
        return None
    return refusal(kind, emulator.settings)


def _rolled_fault(roll: float, faults: dict[str, float]) -> str | None:
    """The kind of fault a roll in [0, 1) lands on, the kinds' probabilities laid end to end."""
    threshold = 0.0
    for kind, probability in sorted(faults.items()):
        threshold += probability
        if roll < threshold:
            return kind
    return None


def _latency(emulator: Emulator, call: Call) -> Reply | None:
    """Never answers: the configured latency passes before the body is looked at."""
    if emulator.settings.latency_seconds:
        time.sleep(emulator.settings.latency_seconds)
    return None


def _bad_body(emulator: Emulator, call: Call) -> Reply | None:
    try:
        call.checked = check_body(call.body)
        call.image = load_image(call.checked["image"])
    except RequestRejected as rejected:
        return error(400, str(rejected))
    return None


def _out_of_credits(emulator: Emulator, call: Call) -> Reply | None:
    return None if emulator.can_afford(call.price) else error(406, "Insufficient credits")


RULES: tuple[Rule, ...] = (
    _scripted,  # a reply a test scripted goes first, whatever was asked; a charged fault waits
    #             for the picture, and no fault is rolled for its call
    _unknown_model,  # 404: one model is served here
    _missing_key,  # 401
    _unknown_key,  # 401
    _over_rate_limit,  # 429, saying when the window resets
    _injected_fault,  # 429, 5xx, a dropped connection or a gzip bomb, as often as the settings say
    _latency,  # passes, after the configured delay
    _bad_body,  # 400: the first rule of request_rules.py the body breaks, or an unreadable image
    _out_of_credits,  # 406
)


def picture(settings: EmulatorSettings, call: Call) -> Reply:
    """The answer to a call every rule let through: the new picture (or, to echo, the input)."""
    if settings.echo:
        return Reply(200, call.image, {"Content-Type": content_type_of(call.image)})
    painted = replace_background(
        call.image,
        call.checked["prompt"],
        seed=call.checked.get("seed"),
        palette=call.checked.get("color_palette"),
        output_format=settings.output_format,
    )
    return Reply(200, painted, {"Content-Type": CONTENT_TYPES[settings.output_format]})


class RateWindow:
    """When the requests of the current window arrived, for a per-minute limit like Segmind's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: deque[float] = deque()

    def admit(self, limit: int, window: float) -> datetime | None:
        """Count a request now and return None; or, at the limit, return when the window resets."""
        now = time.time()
        with self._lock:
            while self._arrivals and self._arrivals[0] <= now - window:
                self._arrivals.popleft()
            if len(self._arrivals) >= limit:
                return datetime.fromtimestamp(self._arrivals[0] + window, UTC) + timedelta(milliseconds=1)
            self._arrivals.append(now)
        return None
