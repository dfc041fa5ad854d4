"""What a call costs: the function's own table (``backdrop_fn/pricing.py``), so that the emulator
bills, and the demo sums, what the function reports in a DLQ record's ``cost``."""

from __future__ import annotations

from collections.abc import Callable

from backdrop import function_code

_pricing = function_code.load("pricing")
PRICE_PER_CALL_USD: dict[str, float] = _pricing.PRICE_PER_CALL_USD
price_of: Callable[[str | None], float] = _pricing.price_of
