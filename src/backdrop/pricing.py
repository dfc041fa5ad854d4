"""What a call costs: the function's own table, so that the emulator bills, and the demo sums, what
the function reports in a DLQ record's ``cost``.

The function ships without this package, so the table lives with it
(``functions/replace_background/backdrop_fn/pricing.py``) and is loaded from there by path.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

_FUNCTION_PRICING = (
    Path(__file__).resolve().parents[2] / "functions" / "replace_background" / "backdrop_fn" / "pricing.py"
)


def _load() -> tuple[dict[str, float], Callable[[str | None], float]]:
    spec = importlib.util.spec_from_file_location("backdrop_function_pricing", _FUNCTION_PRICING)
    if spec is None or spec.loader is None:
        raise ImportError(f"no price table at {_FUNCTION_PRICING}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PRICE_PER_CALL_USD, module.price_of


PRICE_PER_CALL_USD, price_of = _load()
