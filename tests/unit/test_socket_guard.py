"""The guard of tests/unit/conftest.py: no unit test can reach the network by accident."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from tests.unit.conftest import NetworkInUnitTest


def test_a_unit_test_cannot_open_a_connection():
    with socket.socket() as sock, pytest.raises(NetworkInUnitTest, match=r"127\.0\.0\.1"):
        sock.connect(("127.0.0.1", 9))


def test_a_unit_test_cannot_resolve_or_fetch_a_url():
    with pytest.raises(NetworkInUnitTest):
        urllib.request.urlopen("http://example.com/", timeout=1)
