"""What the Segmind endpoint checks in a request body, written from the API's documentation.

Kept apart from the function's sidecar model on purpose: this is the other side of the wire,
so a mistake in the function's request building is caught here instead of mirrored.
"""

from __future__ import annotations

import re
from typing import Any

PRESETS = {"EMBER", "FRESH", "JUNGLE", "MAGIC", "MELON", "MOSAIC", "PASTEL", "ULTRAMARINE"}
FIELDS = {
    "image",
    "prompt",
    "rendering_speed",
    "magic_prompt",
    "seed",
    "style_codes",
    "style_reference_images",
    "color_palette",
}
ENUMS = {"rendering_speed": {"TURBO", "DEFAULT", "QUALITY"}, "magic_prompt": {"AUTO", "ON", "OFF"}}


class RequestRejected(ValueError):
    """The body breaks a rule: the API answers 400 with this text."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise RequestRejected(message)


def check_body(body: Any) -> dict[str, Any]:
    """Raise RequestRejected for the first broken rule; return the body when it is acceptable."""
    _require(isinstance(body, dict), "request body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    _require(not unknown, f"unknown parameter(s): {', '.join(unknown)}")
    for required in ("image", "prompt"):
        _require(
            isinstance(body.get(required), str) and body[required].strip() != "", f"{required} is required"
        )
    _require(len(body["prompt"]) <= 4000, "prompt is too long")
    for name, allowed in ENUMS.items():
        if name in body:
            _require(body[name] in allowed, f"{name} must be one of {sorted(allowed)}")
    seed = body.get("seed")
    if seed is not None:
        _require(
            isinstance(seed, int) and not isinstance(seed, bool) and 100 <= seed <= 999999,
            "seed must be an integer from 100 to 999999",
        )
    codes = body.get("style_codes") or []
    _require(isinstance(codes, list), "style_codes must be a list")
    _require(
        all(isinstance(c, str) and re.fullmatch(r"[0-9A-Fa-f]{8}", c) for c in codes),
        "each style code must be 8 hexadecimal characters",
    )
    references = body.get("style_reference_images") or []
    _require(
        isinstance(references, list) and len(references) <= 4, "style_reference_images: a list of at most 4"
    )
    _require(all(isinstance(r, str) and r for r in references), "style_reference_images must be strings")
    _require(not (codes and references), "style_codes cannot be combined with style_reference_images")
    if "color_palette" in body:
        _check_palette(body["color_palette"])
    return body


def _check_palette(palette: Any) -> None:
    _require(isinstance(palette, dict), "color_palette must be an object")
    if "name" in palette:
        _require(
            set(palette) == {"name"} and palette["name"] in PRESETS, "color_palette.name must be a preset"
        )
        return
    members = palette.get("members")
    _require(
        set(palette) == {"members"} and isinstance(members, list) and 1 <= len(members) <= 8,
        "color_palette needs a preset name or 1 to 8 members",
    )
    for member in members:
        _require(
            isinstance(member, dict) and set(member) <= {"color_hex", "color_weight"},
            "a palette member has color_hex and an optional color_weight",
        )
        _require(
            isinstance(member.get("color_hex"), str)
            and re.fullmatch(r"#[0-9A-Fa-f]{6}", member["color_hex"]) is not None,
            "color_hex must be #rrggbb",
        )
        weight = member.get("color_weight", 1.0)
        _require(
            isinstance(weight, int | float) and not isinstance(weight, bool) and 0.05 <= weight <= 1.0,
            "color_weight must be from 0.05 to 1.0",
        )
