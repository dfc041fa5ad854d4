"""An offline stand-in for Segmind's replace-background endpoint, on loopback only.

It answers like the real service (``x-api-key``, ``{"error": "…"}`` bodies, 400/401/404/406/
429/5xx, ``x-remaining-credits``, ``x-rate-limit-reset-at-utc``), records every request so that
tests can check the exact body, bills each success, and can be told what to answer next.
It is a test double of a remote service, honestly labelled: see ``render.py`` for its picture.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import io
import ipaddress
import json
import random
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from backdrop.emulator.render import FORMATS, replace_background
from backdrop.emulator.request_rules import RequestRejected, check_body
from backdrop.pricing import price_of

ENDPOINT = "/v1/ideogram-3-replace-background"
STATS = "/_emulator/stats"
MAX_IMAGE_BYTES = 25 * 1024 * 1024
_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass
class Reply:
    """A scripted answer for the next request: status, body, headers, and an optional stall."""

    status: int = 200
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stall_seconds: float = 0.0
    # Close the connection without answering, after the stall: what a timeout looks like.
    drop: bool = False


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


class Emulator:
    def __init__(
        self, settings: EmulatorSettings | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the emulator serves loopback only")
        if (settings or EmulatorSettings()).output_format not in FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(FORMATS)}")
        self.settings = settings or EmulatorSettings()
        self._lock = threading.Lock()
        self._script: collections.deque[Reply] = collections.deque()
        self._recent: collections.deque[float] = collections.deque()
        self._random = random.Random(self.settings.random_seed)
        self.requests: list[RecordedRequest] = []
        self.billed_calls = 0
        self.spent_usd = 0.0
        self.first_billed_at: float | None = None
        self.last_billed_at: float | None = None
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{ENDPOINT}"

    def start(self) -> Emulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="segmind-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control from tests ----------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    # -- answering -------------------------------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str], raw_body: bytes) -> Reply:
        arrived, started = time.time(), time.monotonic()
        reply, body, billed = self._decide(path, headers, raw_body)
        record = RecordedRequest(headers, body, reply.status, billed, time.monotonic() - started, arrived)
        with self._lock:
            self.requests.append(record)
        return reply

    def _decide(self, path: str, headers: dict[str, str], raw_body: bytes) -> tuple[Reply, Any, bool]:
        try:
            body = json.loads(raw_body or b"null")
        except ValueError:
            body = None
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted, body, False
        if path.split("?")[0] != ENDPOINT:
            return _error(404, f"no model at {path}"), body, False
        key = headers.get("x-api-key")
        if not key:
            return _error(401, "API key missing: send it in the x-api-key header"), body, False
        if key not in self.settings.api_keys:
            return _error(401, "Invalid API key"), body, False
        limited = self._rate_limited()
        if limited is not None:
            return limited, body, False
        fault = self._injected_fault()
        if fault is not None:
            return fault, body, False
        if self.settings.latency_seconds:
            time.sleep(self.settings.latency_seconds)
        try:
            checked = check_body(body)
            image = _load_image(checked["image"])
        except RequestRejected as rejected:
            return _error(400, str(rejected)), body, False
        price = price_of(checked.get("rendering_speed"))
        with self._lock:
            if self.settings.credits is not None and self.settings.credits < price:
                return _error(406, "Insufficient credits"), body, False
        if self.settings.echo:
            picture, content_type = image, _content_type_of(image)
        else:
            output_format = self.settings.output_format
            picture = replace_background(
                image,
                checked["prompt"],
                seed=checked.get("seed"),
                palette=checked.get("color_palette"),
                output_format=output_format,
            )
            content_type = _CONTENT_TYPES[output_format]
        with self._lock:
            self.billed_calls += 1
            self.spent_usd += price
            self.first_billed_at = self.first_billed_at or time.time()
            self.last_billed_at = time.time()
            if self.settings.credits is not None:
                self.settings.credits = round(self.settings.credits - price, 6)
        return Reply(200, picture, {"Content-Type": content_type}), body, True

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
            }

    def credit_headers(self) -> dict[str, str]:
        with self._lock:
            credits = self.settings.credits
        return {} if credits is None else {"x-remaining-credits": f"{credits:.3f}"}

    def _rate_limited(self) -> Reply | None:
        limit = self.settings.requests_per_minute
        if not limit:
            return None
        now, window = time.time(), self.settings.rate_window_seconds
        with self._lock:
            while self._recent and self._recent[0] <= now - window:
                self._recent.popleft()
            if len(self._recent) >= limit:
                reset = datetime.fromtimestamp(self._recent[0] + window, UTC) + timedelta(milliseconds=1)
                return _error(429, "Rate limit exceeded", {"x-rate-limit-reset-at-utc": reset.isoformat()})
            self._recent.append(now)
        return None

    def _injected_fault(self) -> Reply | None:
        with self._lock:
            roll = self._random.random()
        threshold = 0.0
        for kind, probability in sorted(self.settings.faults.items()):
            threshold += probability
            if roll < threshold:
                if kind == "timeout":
                    return Reply(stall_seconds=self.settings.timeout_stall_seconds, drop=True)
                return _error(int(kind), f"injected fault {kind}")
        return None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": message}, headers or {})


def _content_type_of(image: bytes) -> str:
    with Image.open(io.BytesIO(image)) as probe:
        return {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[probe.format]


def _load_image(reference: str) -> bytes:
    """The input image, from a loopback URL or base64; 400 when it is neither an image nor reachable."""
    if reference.startswith(("http://", "https://")):
        host = urlsplit(reference).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise RequestRejected("image URL is not reachable from the offline emulator (loopback only)")
        try:
            with urllib.request.urlopen(reference, timeout=10) as response:  # noqa: S310 (loopback only)
                data = response.read(MAX_IMAGE_BYTES + 1)
        except OSError as error:
            raise RequestRejected(f"could not fetch the image URL: {error}") from None
    else:
        encoded = reference.split(",", 1)[1] if reference.startswith("data:") else reference
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise RequestRejected("image is neither a URL nor valid base64") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise RequestRejected("image is larger than 25 MB")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ("JPEG", "PNG", "WEBP"):
                raise RequestRejected(f"unsupported image format {probe.format}")
            probe.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise RequestRejected("image could not be decoded") from None
    return data


def _handler_for(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's pooled session expects
        server_version = "SegmindEmulator/1.0"

        def handle(self) -> None:
            # A client that went away (gave up waiting) leaves nobody to answer: not an error here.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                super().handle()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._send(emulator.answer(self.path, headers, raw))

        def do_GET(self) -> None:
            if self.path == STATS:
                self._send(Reply(200, emulator.stats()))
            else:
                self._send(_error(405, "use POST"))

        def _send(self, reply: Reply) -> None:
            if reply.stall_seconds:
                time.sleep(reply.stall_seconds)
            if reply.drop:
                self.close_connection = True
                return
            if isinstance(reply.body, dict):
                payload, content_type = json.dumps(reply.body).encode(), "application/json"
            else:
                payload, content_type = reply.body or b"", "application/octet-stream"
            headers = {"Content-Type": content_type, **emulator.credit_headers(), **reply.headers}
            try:
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up waiting (its timeout): as with the real API, the work is done
                # and billed all the same; there is just nobody left to tell.
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests and the demo print what matters themselves

    return Handler
