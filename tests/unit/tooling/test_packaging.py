"""pyproject.toml in the form current setuptools reads without a deprecation warning."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_license_is_an_spdx_expression():
    # A TOML table ({ text = "MIT" }) makes setuptools >= 77 warn on every install.
    assert PYPROJECT["project"]["license"] == "MIT"


def test_the_build_needs_a_setuptools_that_reads_spdx_licenses():
    requires = PYPROJECT["build-system"]["requires"]
    pins = [re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", r) for r in requires]
    assert any(pin and int(pin.group(1)) >= 77 for pin in pins), requires
