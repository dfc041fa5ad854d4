"""What a call costs, to state spend honestly (Segmind lists $0.037–0.113 a generation).

The per-speed split is our estimate inside that published range. The DLQ record's ``cost`` is
computed with it, and the local tools (the emulator's bill, the demo's summary) read this very
table, labelled as an estimate.
"""

from __future__ import annotations

PRICE_PER_CALL_USD = {"TURBO": 0.037, "DEFAULT": 0.075, "QUALITY": 0.113}


def price_of(rendering_speed: str | None) -> float:
    return PRICE_PER_CALL_USD.get(rendering_speed or "DEFAULT", PRICE_PER_CALL_USD["DEFAULT"])
