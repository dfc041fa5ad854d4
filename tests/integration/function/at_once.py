"""Containers at the same moment: copies of a script, each a process of its own, started together."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

FUNCTION_CODE = Path(__file__).resolve().parents[3] / "functions" / "replace_background"
# Long enough for every copy to import boto3 and the function's code before the moment comes.
_LEAD_SECONDS = 3.0

WAIT_FOR_THE_MOMENT = """
import sys, time
while time.time() < float(sys.argv[-1]):
    time.sleep(0.002)
"""


def run_at_once(script: str, *arguments: str, copies: int) -> list[str]:
    """What each copy printed, stripped, in no particular order. ``script`` starts its work after
    ``WAIT_FOR_THE_MOMENT``, which the copies pass together (the moment is their last argument)."""
    environment = {**os.environ, "PYTHONPATH": str(FUNCTION_CODE)}
    moment = str(time.time() + _LEAD_SECONDS)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, *arguments, moment],
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(copies)
    ]
    return [process.communicate(timeout=60)[0].strip() for process in processes]
