"""A scripted API on loopback for the hostile-answer tests: exactly the bytes a test asks for."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from backdrop_fn.adapters.segmind import RetryPolicy, SegmindClient
from tests.integration.function.test_adapters import FixedKey
from tests.unit.function.fakes import RecordingMetrics


@dataclass
class Script:
    """One answer, byte for byte: the status line, the headers, and the body in pieces."""

    status_line: str
    headers: dict[str, str]
    body: Iterable[bytes] = ()
    sent: int = 0  # body bytes the client accepted before it hung up (or all of them)
    hung_up: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def head(self) -> bytes:
        lines = [self.status_line, *(f"{name}: {value}" for name, value in self.headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Scripted(socketserver.StreamRequestHandler):
    script: Script

    def handle(self) -> None:
        script = self.server.script  # type: ignore[attr-defined]
        try:
            length = 0
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self.rfile.read(length)
            self.wfile.write(script.head())
            for piece in script.body:
                self.wfile.write(piece)
                script.sent += len(piece)
        except OSError:
            script.hung_up = True
        finally:
            script.done.set()


@pytest.fixture
def hostile() -> Iterator:
    """``answer(status_line, headers, body)``: a client whose next call gets exactly that answer."""
    servers: list[socketserver.TCPServer] = []

    def answer(
        status_line: str, headers: dict[str, str], body: bytes | Iterable[bytes] = b"", **client_options: Any
    ) -> tuple[SegmindClient, RecordingMetrics, Script]:
        if isinstance(body, bytes):
            headers = {"Content-Length": str(len(body)), **headers}
            body = [body]
        script = Script(status_line, headers, body)
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Scripted)
        server.daemon_threads = True
        server.script = script  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/ideogram-3-replace-background"
        metrics = RecordingMetrics()
        options = {"read_timeout_seconds": 5, "policy": RetryPolicy(max_retries=0), **client_options}
        client = SegmindClient(url, FixedKey(), metrics, **options)
        return client, metrics, script

    yield answer
    for server in servers:
        server.shutdown()
        server.server_close()
