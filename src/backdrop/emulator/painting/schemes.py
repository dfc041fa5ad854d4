"""The new background's colours: from the palette, or from the prompt's words or hash."""

from __future__ import annotations

import colorsys
import hashlib
import random
import re

from backdrop.emulator.imaging import RGB

# Colours of the documented palette presets, our reading of their names.
PRESET_COLOURS = {
    "EMBER": ["#3b0a0a", "#b23a12", "#f29e4c"],
    "FRESH": ["#e8f6ef", "#7ed6a5", "#2f9c95"],
    "JUNGLE": ["#0b3d20", "#2e7d32", "#a5d66b"],
    "MAGIC": ["#2b1055", "#7597de", "#d16ba5"],
    "MELON": ["#fdf0d5", "#f79d84", "#7fb069"],
    "MOSAIC": ["#264653", "#e9c46a", "#e76f51"],
    "PASTEL": ["#fde2e4", "#cddafd", "#e2ece9"],
    "ULTRAMARINE": ["#03045e", "#0077b6", "#90e0ef"],
}

# Colours that the prompt's words suggest, when no palette is given.
PROMPT_HINTS: list[tuple[tuple[str, ...], list[str]]] = [
    (("sunset", "dusk", "sunrise", "dawn"), ["#2d1b4e", "#c0466d", "#f6a35c"]),
    (("beach", "sand", "summer", "tropical"), ["#7cc6d6", "#f4e1c1", "#e9c89b"]),
    (("ocean", "sea", "underwater", "lake", "pool"), ["#0b4f6c", "#20a4c9", "#b8e3ec"]),
    (
        ("forest", "jungle", "garden", "leaf", "leaves", "plant", "moss", "grass"),
        ["#17361f", "#3f7d3a", "#a9cf7f"],
    ),
    (("night", "space", "galaxy", "stars", "midnight"), ["#070b24", "#1d2b64", "#6a5acd"]),
    (("snow", "winter", "ice", "frost", "christmas"), ["#8fb3d1", "#cfe0ef", "#f3f7fb"]),
    (("marble", "studio", "white", "minimal", "clean", "seamless"), ["#c9c6bf", "#e3e1dc", "#f5f4f1"]),
    (("wood", "wooden", "rustic", "kitchen", "cafe", "coffee", "table"), ["#3e2a1e", "#8a5a3b", "#d8b48a"]),
    (("desert", "dune", "terracotta", "clay"), ["#a0522d", "#c98e4f", "#f0d9b5"]),
    (("neon", "cyber", "cyberpunk", "club", "party"), ["#120024", "#ff2e88", "#21d4fd"]),
    (("autumn", "fall", "harvest", "pumpkin"), ["#5a1e0e", "#c4551b", "#f2b33d"]),
    (("sky", "cloud", "clouds", "air"), ["#4a90d9", "#a7cdf2", "#f2f7fd"]),
    (("pink", "rose", "blush", "valentine", "romantic"), ["#b5485d", "#f4a6b8", "#fde2e8"]),
    (("black", "dark", "luxury", "noir", "elegant"), ["#0e0e10", "#2a2a30", "#8c7853"]),
    (("gold", "golden", "festive"), ["#3a2a0a", "#b8860b", "#f5d77a"]),
]


def palette_scheme(palette: dict | None) -> list[tuple[RGB, float]]:
    if not palette:
        return []
    if "name" in palette:
        return [(_rgb(hex_), 1.0) for hex_ in PRESET_COLOURS[palette["name"]]]
    return [(_rgb(m["color_hex"]), float(m.get("color_weight", 1.0))) for m in palette["members"]]


def prompt_scheme(prompt: str) -> list[tuple[RGB, float]]:
    """Colours the prompt's words suggest, else a harmony around a hue from the prompt's hash."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    words = re.findall(r"[a-z]+", prompt.lower())
    for word in words:
        for keys, hexes in PROMPT_HINTS:
            if word in keys:
                return [(_rgb(hex_), 1.0) for hex_ in hexes]
    hue = digest[0] / 255
    spread = 0.05 + digest[1] / 255 * 0.12
    saturation = 0.3 + digest[2] / 255 * 0.4
    scheme = []
    for j, (shift, lightness) in enumerate(((0.0, 0.45), (spread, 0.68), (-spread, 0.85))):
        jitter = (digest[3 + j] / 255 - 0.5) * 0.12
        r, g, b = colorsys.hls_to_rgb((hue + shift) % 1.0, min(0.92, lightness + jitter), saturation)
        scheme.append(((round(r * 255), round(g * 255), round(b * 255)), 1.0))
    return scheme


def pick(scheme: list[tuple[RGB, float]], rng: random.Random) -> RGB:
    return rng.choices([colour for colour, _ in scheme], weights=[weight for _, weight in scheme])[0]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def shade(colour: RGB, amount: float) -> RGB:
    """Lighter towards white for a positive amount, darker towards black for a negative one."""
    return mix(colour, (255, 255, 255), amount) if amount >= 0 else mix(colour, (0, 0, 0), -amount)


def luma(colour: RGB) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _rgb(hex_colour: str) -> RGB:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
