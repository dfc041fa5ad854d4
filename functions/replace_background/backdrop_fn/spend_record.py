"""How the spend is recorded: one item per UTC month in the idempotency table.

Written by the spend guard (``adapters/spend.py``) and read by `backdrop spend`, which loads this
module by path: it imports nothing of the function's.

Amounts are whole micro-dollars, so that adding and releasing prices is exact. Attributes: the
month's total (``month_total``), each day's (``day01``), and calls by speed for the month
(``calls_TURBO``) and for each day (``day01_calls_TURBO``); ``credits`` and ``credits_at`` are the
API's last `x-remaining-credits` seen by a container, and when (epoch seconds).
"""

from __future__ import annotations

from datetime import datetime

KEY_PREFIX = "backdrop.spend#"
MICRO = 1_000_000
MONTH_TOTAL = "month_total"


def month_of(now: datetime) -> str:
    """The UTC month a moment falls in, as items and reservations name it: ``2026-12``."""
    return now.strftime("%Y-%m")


def item_id(month: str) -> str:
    return KEY_PREFIX + month


def day_total(day: int) -> str:
    return f"day{day:02d}"


def month_calls(rendering_speed: str) -> str:
    return f"calls_{rendering_speed}"


def day_calls(day: int, rendering_speed: str) -> str:
    return f"{day_total(day)}_calls_{rendering_speed}"
