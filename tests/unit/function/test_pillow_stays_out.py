"""Pillow (12 MB, tens of milliseconds) is loaded only by a pair that has renditions or an input
to fix: importing the handler, or any module a plain pair uses, must not load it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FUNCTION_CODE = Path(__file__).resolve().parents[3] / "functions" / "replace_background"
# The one module that imports Pillow as it loads: only code already decoding a picture imports it.
LOADS_PILLOW = {"backdrop_fn.srgb"}

IMPORT_AND_LIST = """
import json, sys
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps(sorted(module for module in sys.modules if module == "PIL" or module.startswith("PIL."))))
"""


def pillow_modules_after_importing(*modules: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(FUNCTION_CODE)}
    finished = subprocess.run(
        [sys.executable, "-c", IMPORT_AND_LIST, *modules],
        env=env,
        cwd=FUNCTION_CODE,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(finished.stdout.strip().splitlines()[-1])


def function_modules() -> list[str]:
    package = FUNCTION_CODE / "backdrop_fn"
    return sorted(
        ".".join(path.relative_to(FUNCTION_CODE).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
    )


def test_the_cold_import_of_the_handler_does_not_load_pillow():
    assert pillow_modules_after_importing("app") == []


def test_no_module_of_a_plain_pair_loads_pillow_as_it_is_imported():
    modules = [name for name in function_modules() if name not in LOADS_PILLOW]
    assert "backdrop_fn.renditions" in modules
    assert "backdrop_fn.input_fix" in modules

    assert pillow_modules_after_importing("app", *modules) == []


def test_making_a_rendition_loads_pillow():
    # The check above would pass with a broken subprocess that imports nothing: this one would not.
    assert "PIL" in pillow_modules_after_importing(*LOADS_PILLOW)
