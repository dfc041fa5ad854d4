"""The services a benchmark talks to, each in a process of its own so that none is measured by
mistake: moto in server mode, and the Segmind emulator."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from backdrop.local.stack import LocalStack, create_resources
from backdrop.local.template import load_spec

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FUNCTION_CODE = ROOT / "functions" / "replace_background"
API_KEY = "bench-key"


@dataclass
class Services:
    stack: LocalStack
    api_url: str

    def function_environment(self, **overrides: str) -> dict[str, str]:
        """What a benchmark's function process runs with: the template's variables, resolved."""
        env = {**os.environ, **self.stack.function_environment(self.api_url), **overrides}
        env["PYTHONPATH"] = os.pathsep.join([str(FUNCTION_CODE), str(ROOT / "src"), str(ROOT)])
        env["API_KEY"] = API_KEY  # for the minimal script only; the function reads Secrets Manager
        return env

    def emulator_stats(self) -> dict:
        return requests.get(self.api_url.rsplit("/v1/", 1)[0] + "/_emulator/stats", timeout=10).json()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still importing
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def running(command: Sequence[str], url: str) -> Iterator[None]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(url)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def services(
    *, parameters: dict[str, str] | None = None, emulator_args: Sequence[str] = ()
) -> Iterator[Services]:
    moto_port, api_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    with (
        running(
            [
                str(BIN / "python"),
                "-m",
                "backdrop.local.moto_server",
                "-H",
                "127.0.0.1",
                "-p",
                str(moto_port),
            ],
            endpoint,
        ),
        running(
            [str(BIN / "backdrop"), "emulator", "--port", str(api_port), "--key", API_KEY, *emulator_args],
            f"http://127.0.0.1:{api_port}/_emulator/stats",
        ),
    ):
        spec = load_spec(parameters={"PairSettleSeconds": "0", **(parameters or {})})
        stack = create_resources(spec, endpoint, api_key=API_KEY)
        yield Services(stack=stack, api_url=f"http://127.0.0.1:{api_port}/v1/ideogram-3-replace-background")
