"""What a call costs, to estimate spend honestly (Segmind lists $0.037–0.113 a generation).

The per-speed split is our estimate inside that published range; the emulator bills with it and
the demo summary reports it, labelled as an estimate.
"""

from __future__ import annotations

PRICE_PER_CALL_USD = {"TURBO": 0.037, "DEFAULT": 0.075, "QUALITY": 0.113}


def price_of(rendering_speed: str | None) -> float:
    return PRICE_PER_CALL_USD.get(rendering_speed or "DEFAULT", PRICE_PER_CALL_USD["DEFAULT"])
