"""What one container holds between invocations, typed against the ports: ``wiring`` builds it."""

from __future__ import annotations

from dataclasses import dataclass

from backdrop_fn.config import Settings
from backdrop_fn.pipeline import Pipeline
from backdrop_fn.ports import Claims, WorkQueue


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pipeline: Pipeline
    claims: Claims
    # None without WORK_QUEUE_URL: a failed message then waits for the queue's visibility
    # timeout, and a receive with too little time left counts as an attempt.
    work_queue: WorkQueue | None
