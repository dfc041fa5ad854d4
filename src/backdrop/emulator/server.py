"""An offline stand-in for Segmind's replace-background endpoint, on loopback only.

It answers like the real service (``x-api-key``, ``{"error": "…"}`` bodies, 400/401/404/406/
429/5xx, ``x-remaining-credits``, ``x-rate-limit-reset-at-utc``), records every request so that
tests can check the exact body, bills each success, and can be told what to answer next. It can
also be hostile (``faults.py``): answers refused, or charged and then lost on the way.
It is a test double of a remote service, honestly labelled: see ``render.py`` for its picture,
``answer_rules.py`` for the order in which it decides, and ``handler.py`` for its HTTP side.
"""

from __future__ import annotations

import collections
import ipaddress
import random
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from backdrop.emulator.answer_rules import RULES, Call, RateWindow, picture
from backdrop.emulator.faults import check_faults, check_scripted, spoiled
from backdrop.emulator.handler import handler_for
from backdrop.emulator.models import ENDPOINT, EmulatorSettings, RecordedRequest, Reply
from backdrop.emulator.render import FORMATS

__all__ = ["ENDPOINT", "Emulator", "EmulatorSettings", "RecordedRequest", "Reply"]


class Emulator:
    def __init__(
        self, settings: EmulatorSettings | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the emulator serves loopback only")
        if (settings or EmulatorSettings()).output_format not in FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(FORMATS)}")
        self.settings = settings or EmulatorSettings()
        check_faults(self.settings.faults)
        # Set when the emulator stops: every answer still dripping or stalling ends at once.
        self.stopping = threading.Event()
        self.rate = RateWindow()
        self._lock = threading.Lock()
        self._script: collections.deque[Reply] = collections.deque()
        self._random = random.Random(self.settings.random_seed)
        self.requests: list[RecordedRequest] = []
        self.billed_calls = 0
        self.spent_usd = 0.0
        self.first_billed_at: float | None = None
        self.last_billed_at: float | None = None
        self._host = host
        self._server = ThreadingHTTPServer((host, port), handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}{ENDPOINT}"

    def start(self) -> Emulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="segmind-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control from tests ----------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """The next answers, in order: each a Reply as given, or ``Reply(fault=KIND)`` for a fault."""
        for reply in replies:
            check_scripted(reply)
        with self._lock:
            self._script.extend(replies)

    def next_scripted(self) -> Reply | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    # -- answering -------------------------------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str], raw_body: bytes) -> Reply:
        arrived, started = time.time(), time.monotonic()
        call = Call.read(path, headers, raw_body)
        reply, billed = self._decide(call)
        record = RecordedRequest(
            headers, call.body, reply.status, billed, time.monotonic() - started, arrived, reply.fault
        )
        with self._lock:
            self.requests.append(record)
        return reply

    def _decide(self, call: Call) -> tuple[Reply, bool]:
        """The first rule that answers, unbilled; else the picture, billed (and maybe spoiled)."""
        for rule in RULES:
            reply = rule(self, call)
            if reply is not None:
                return reply, False
        reply = picture(self.settings, call)
        self._bill(call.price)
        if call.fault is not None:
            reply = spoiled(call.fault, reply, self.settings, call.headers)
        return reply, True

    def roll(self) -> float:
        """A draw in [0, 1) from the emulator's own (seedable) random numbers."""
        with self._lock:
            return self._random.random()

    def can_afford(self, price: float) -> bool:
        with self._lock:
            return self.settings.credits is None or self.settings.credits >= price

    def _bill(self, price: float) -> None:
        with self._lock:
            self.billed_calls += 1
            self.spent_usd += price
            self.first_billed_at = self.first_billed_at or time.time()
            self.last_billed_at = time.time()
            if self.settings.credits is not None:
                self.settings.credits = round(self.settings.credits - price, 6)

    def stats(self) -> dict[str, Any]:
        """What `GET /_emulator/stats` answers: for benchmarks and curious users."""
        with self._lock:
            return {
                "requests": len(self.requests),
                "billed_calls": self.billed_calls,
                "spent_usd": round(self.spent_usd, 6),
                "first_billed_at": self.first_billed_at,
                "last_billed_at": self.last_billed_at,
                "statuses": dict(collections.Counter(r.status for r in self.requests)),
                # Requests by the fault kind that shaped their answer; those billed and then lost.
                "faults": dict(collections.Counter(r.fault for r in self.requests if r.fault)),
                "charged_then_lost": sum(r.charged_then_lost for r in self.requests),
            }

    def credit_headers(self) -> dict[str, str]:
        with self._lock:
            credits = self.settings.credits
        return {} if credits is None else {"x-remaining-credits": f"{credits:.3f}"}
