"""The emulator over HTTP: POST is answered by the emulator's rules, GET only shows its stats."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, ClassVar

from backdrop.emulator.models import STATS, Reply, Stream, error

if TYPE_CHECKING:
    from backdrop.emulator.server import Emulator

# How long a streamed answer waits for a client that neither reads it nor hangs up.
STUCK_WRITE_SECONDS = 60.0
# What GET answers, by path; any other path is told to use POST.
GET_ROUTES: dict[str, Callable[[Emulator], Reply]] = {
    STATS: lambda emulator: Reply(200, emulator.stats()),
}


def handler_for(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to this emulator (the server makes one handler per connection)."""
    return type("Handler", (_Handler,), {"emulator": emulator})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pooled session expects
    server_version = "SegmindEmulator/1.0"
    emulator: ClassVar[Emulator]

    def handle(self) -> None:
        # A client that went away (gave up waiting) leaves nobody to answer: not an error here.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._send(self.emulator.answer(self.path, headers, raw))

    def do_GET(self) -> None:
        route = GET_ROUTES.get(self.path)
        self._send(route(self.emulator) if route else error(405, "use POST"))

    def _send(self, reply: Reply) -> None:
        if reply.stall_seconds:
            self.emulator.stopping.wait(reply.stall_seconds)
        if reply.drop:
            self.close_connection = True
            return
        try:
            if reply.stream is None:
                self._send_whole(reply)
            else:
                self._send_stream(reply, reply.stream)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            # The client gave up waiting (its timeout) or reading: as with the real API, the work
            # is done and billed all the same; there is just nobody left to tell.
            self.close_connection = True

    def _send_whole(self, reply: Reply) -> None:
        payload, content_type = _payload(reply.body)
        self._send_head(reply, content_type, len(payload))
        self.wfile.write(payload)

    def _send_stream(self, reply: Reply, stream: Stream) -> None:
        """A body written as it is made, paced by the stream, then the connection closed."""
        # A client that stops reading without hanging up would otherwise hold this thread forever.
        self.connection.settimeout(STUCK_WRITE_SECONDS)
        self._send_head(reply, "application/octet-stream", stream.length, {"Connection": "close"})
        for index, piece in enumerate(stream.pieces()):
            if index and self._quiet_for(stream.interval_seconds):
                return
            self.wfile.write(piece)
        self._quiet_for(stream.silence_seconds)

    def _send_head(
        self, reply: Reply, content_type: str, length: int, extra: dict[str, str] | None = None
    ) -> None:
        headers = {"Content-Type": content_type, **self.emulator.credit_headers(), **reply.headers}
        self.send_response(reply.status)
        for name, value in {**headers, **(extra or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _quiet_for(self, seconds: float) -> bool:
        """Send nothing for so long; True when the emulator stopped meanwhile (then stop too)."""
        return seconds > 0 and self.emulator.stopping.wait(seconds)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and the demo print what matters themselves


def _payload(body: bytes | dict[str, Any] | None) -> tuple[bytes, str]:
    """The body's bytes and content type: JSON for a document, octets for an image."""
    if isinstance(body, dict):
        return json.dumps(body).encode(), "application/json"
    return body or b"", "application/octet-stream"
