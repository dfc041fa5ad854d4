"""`backdrop watch` as a user runs it: the real command in its own process, stopped by a signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import photo

BACKDROP = Path(sys.executable).with_name("backdrop")
# Generous: the machine may be slow and busy; a passing run takes a few seconds.
PATIENCE = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Watch:
    """A `backdrop watch` process; its output read line by line as it comes."""

    def __init__(self, folder: Path, *extra: str) -> None:
        self.moto_port, self.api_port = free_port(), free_port()
        command = [str(BACKDROP), "watch", str(folder), "--moto-port", str(self.moto_port)]
        command += ["--api-port", str(self.api_port), *extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = PATIENCE) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self._reader.join(timeout=5)  # the last lines of a process that ended
                if text in self.output:
                    return
                pytest.fail(f"{text!r} never appeared; the output:\n{self.output}")
            with self._changed:
                self._changed.wait(0.5)

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.finish()

    def finish(self) -> int:
        try:
            return self.process.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"`backdrop watch` did not stop; output:\n{self.output}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start_watch(tmp_path: Path) -> Iterator:
    started: list[Watch] = []

    def start(folder: Path | None = None, *extra: str) -> Watch:
        started.append(Watch(folder or tmp_path / "drop", *extra))
        return started[-1]

    yield start
    for watch in started:
        watch.kill()


def test_ctrl_c_stops_watch_cleanly_with_its_summary(start_watch):
    watch = start_watch()
    watch.wait_for("Ctrl-C to stop")
    assert watch.interrupt() == 0, watch.output
    assert "stopped: 0 uploaded, 0 processed, 0 failed, 0 API calls" in watch.output
    assert "Traceback" not in watch.output


def test_the_banner_gives_the_dlq_commands_for_this_stack(start_watch):
    watch = start_watch()
    watch.wait_for("Ctrl-C to stop")
    assert f"backdrop dlq --local --moto-port {watch.moto_port}" in watch.output
    assert f"backdrop redrive --local --moto-port {watch.moto_port}" in watch.output
    assert watch.interrupt() == 0


@pytest.mark.parametrize("flag", ["--moto-port", "--api-port"])
def test_a_busy_port_is_refused_at_once_naming_the_flag(start_watch, flag: str):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        watch = start_watch(None, flag, str(port))  # the later flag wins over the free port
        code = watch.finish()
    assert code != 0
    assert f"port {port} is in use" in watch.output
    assert f"{flag} " in watch.output  # says which flag to change
    assert "Traceback" not in watch.output


def test_the_console_says_what_waits_and_what_is_a_free_duplicate(start_watch, tmp_path: Path):
    folder = tmp_path / "drop"
    folder.mkdir()
    watch = start_watch(folder)
    watch.wait_for("Ctrl-C to stop")
    (folder / "shoe.png").write_bytes(photo())
    watch.wait_for("shoe.png: waiting for its sidecar")
    (folder / "shoe.png.json").write_text(json.dumps({"prompt": "a beach"}))
    watch.wait_for("shoe.png → out/shoe.png")
    assert "duplicate" not in watch.output  # the sidecar's own event is no news to the user
    (folder / "shoe.png").write_bytes(photo())  # saved again, unchanged
    watch.wait_for("shoe.png: duplicate, no charge")
    assert watch.interrupt() == 0
    assert "1 API calls" in watch.output


def test_watch_runs_on_a_stand_in_for_an_existing_bucket(start_watch, tmp_path: Path):
    folder = tmp_path / "drop"
    folder.mkdir()
    watch = start_watch(folder, "--existing-bucket", "shop-assets", "--input-prefix", "in/")
    watch.wait_for("A local stand-in for your bucket shop-assets")
    watch.wait_for("Ctrl-C to stop")
    (folder / "shoe.png.json").write_text(json.dumps({"prompt": "a beach"}))
    (folder / "shoe.png").write_bytes(photo())
    watch.wait_for("in/shoe.png → out/shoe.png")
    assert watch.interrupt() == 0
    assert "1 API calls" in watch.output


def test_results_beside_the_inputs_without_an_output_prefix_are_refused(start_watch):
    watch = start_watch(None, "--existing-bucket", "shop-assets", "--outputs-in-bucket")
    assert watch.finish() == 2
    said = " ".join(watch.output.split())  # as wrapped for the terminal
    assert "--outputs-in-bucket needs --existing-bucket and a non-empty --output-prefix" in said
    assert "Traceback" not in watch.output


def test_watch_local_starts_a_stack_for_the_command_when_none_runs_and_ctrl_c_sums_up(
    start_watch, tmp_path: Path
):
    folder = tmp_path / "drop"
    folder.mkdir()
    watch = start_watch(folder, "--local", "--api-latency", "0")
    watch.wait_for("starting one for this command")
    watch.wait_for("Outcomes: completion events on bus 'default'")
    watch.wait_for("Ctrl-C to stop")
    (folder / "cup.png.json").write_text(json.dumps({"prompt": "a cafe", "rendering_speed": "TURBO"}))
    (folder / "cup.png").write_bytes(photo())
    watch.wait_for("cup.png → out/cup.png (")
    assert watch.interrupt() == 0, watch.output
    said = " ".join(watch.output.split())
    assert "stopped: 1 sent, 1 processed, 0 failed, 0 unchanged not sent again; estimated $0.037" in said
    assert (folder / "out" / "cup.png").exists()
    assert "Traceback" not in watch.output
