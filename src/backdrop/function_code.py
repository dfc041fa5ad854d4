"""Modules of the function that the tools share with it, loaded by path.

The function ships without this package, so what both must agree on (the price table, the layout
of the spend record, the sidecar's rules) lives with the function and is read from there, never
copied.
"""

from __future__ import annotations

import importlib.util
import sys
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


def make_importable() -> None:
    """Let ``backdrop_fn`` be imported as the function imports it, for tools that need modules
    which import others of the function's (the sidecar parser and its errors, the S3 adapter).

    The function's code folder is appended to the path, not put first: where the tests or the
    local stack have imported the function already, those very modules are the ones used.
    """
    root = str(FUNCTION_PACKAGE.parent)
    if root not in sys.path:
        sys.path.append(root)
