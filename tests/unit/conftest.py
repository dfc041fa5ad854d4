"""Unit tests run on fakes: a socket guard makes any network connection a test failure."""

from __future__ import annotations

import socket
from typing import Any

import pytest


class NetworkInUnitTest(AssertionError):
    """A unit test tried to connect somewhere: it belongs in tests/integration, or needs a fake."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> None:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise NetworkInUnitTest(f"a unit test tried to connect to {address!r}")

    def refuse_lookup(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        raise NetworkInUnitTest(f"a unit test tried to look up {host!r}")

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
