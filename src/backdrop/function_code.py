"""Modules of the function that the tools share with it, loaded by path.

The function ships without this package, so what both must agree on (the price table, the layout
of the spend record) lives with the function and is read from there, never copied.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

FUNCTION_PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "replace_background" / "backdrop_fn"


def load(name: str) -> ModuleType:
    """``backdrop_fn/<name>.py``, which must import nothing of the function's."""
    path = FUNCTION_PACKAGE / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"backdrop_function_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no {name} module at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
