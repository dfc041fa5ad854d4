"""The fault soak as a test (slow: `pytest -m slow`; `make soak` runs the script itself, with its table)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_upload_is_accounted_for_under_faults(tmp_path: Path):
    pairs = os.environ.get("SOAK_PAIRS", "150")
    command = [sys.executable, "-m", "tests.soak.soak", "--pairs", pairs, "--out", str(tmp_path)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    assert finished.returncode == 0, finished.stdout[-5000:] + finished.stderr[-5000:]
    accounting = json.loads((tmp_path / "soak.json").read_text())
    assert accounting["problems"] == []
    assert accounting["paid_twice"].get("unexplained", 0) == 0
    assert accounting["most_purchases_of_one_pair"] <= 2
    assert accounting["billed_calls"] >= accounting["rows"]["valid"]["outputs"]
    assert accounting["api_retries"] > 0  # the faults really happened
    assert accounting["containers_killed"] > 0
    assert sum(accounting["aws_faults"].values()) > 0
    assert accounting["tmp_filled"] > 0
    assert accounting["answers_held_in_memory"] > 0  # a full /tmp met answers, and cost nothing more
