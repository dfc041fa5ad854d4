"""The emulator's picture: the input's subject kept, its background replaced, by classical means.

No model weights can be downloaded here, so this is not Ideogram: the background is told from
the subject by its colour distance to the image border, and the new background is drawn from
the prompt, palette and seed (the same seed gives the same picture).
"""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

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
FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# Colour distance (0–255, largest channel) under which a pixel counts as background.
BACKGROUND_TOLERANCE = 40


def replace_background(
    image_bytes: bytes,
    prompt: str,
    *,
    seed: int | None,
    palette: dict | None,
    output_format: str = "png",
) -> bytes:
    source = ImageOps.exif_transpose(Image.open(io.BytesIO(image_bytes))).convert("RGB")
    subject = subject_mask(source)
    backdrop = draw_backdrop(source.size, prompt, seed=seed, palette=palette)
    result = Image.composite(source, backdrop, subject)
    out = io.BytesIO()
    result.save(out, format=FORMATS[output_format])
    return out.getvalue()


def subject_mask(image: Image.Image) -> Image.Image:
    """White where the subject is, black where the background is, softened at the edge."""
    border = _border_colour(image)
    plain = Image.new("RGB", image.size, border)
    distance = ImageChops.difference(image, plain)
    red, green, blue = distance.split()
    strongest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    mask = strongest.point(lambda value: 255 if value > BACKGROUND_TOLERANCE else 0)
    # Close small holes in the subject, drop specks in the background, then feather the edge.
    mask = mask.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.MinFilter(5))
    mask = mask.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))
    return mask.filter(ImageFilter.GaussianBlur(1.5))


def _border_colour(image: Image.Image) -> tuple[int, int, int]:
    """The median colour of the outermost rows and columns: where a product photo's backdrop is."""
    width, height = image.size
    pixels = image.load()
    samples = [pixels[x, 0] for x in range(width)] + [pixels[x, height - 1] for x in range(width)]
    samples += [pixels[0, y] for y in range(height)] + [pixels[width - 1, y] for y in range(height)]
    channels = list(zip(*samples, strict=True))
    return tuple(sorted(channel)[len(channel) // 2] for channel in channels)  # type: ignore[return-value]


def draw_backdrop(
    size: tuple[int, int], prompt: str, *, seed: int | None, palette: dict | None
) -> Image.Image:
    """A gradient with soft light spots, from the palette (or the prompt's hash) and the seed."""
    colours = _palette_colours(palette) or _prompt_colours(prompt)
    rng = random.Random(f"{seed}:{prompt}")
    width, height = size
    top, bottom = colours[0], colours[-1]
    gradient = Image.linear_gradient("L").resize((width, height))
    backdrop = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), gradient)
    spots = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(spots)
    for _ in range(12):
        radius = rng.randint(max(2, min(size) // 20), max(3, min(size) // 6))
        x, y = rng.randint(0, width), rng.randint(0, height)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=rng.choice(colours))
    spots = spots.filter(ImageFilter.GaussianBlur(max(2, min(size) // 40)))
    return ImageChops.screen(backdrop, spots)


def _palette_colours(palette: dict | None) -> list[tuple[int, int, int]]:
    if not palette:
        return []
    if "name" in palette:
        return [_rgb(hex_) for hex_ in PRESET_COLOURS[palette["name"]]]
    return [_rgb(member["color_hex"]) for member in palette["members"]]


def _prompt_colours(prompt: str) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return [tuple(digest[i : i + 3]) for i in (0, 3, 6)]  # type: ignore[misc]


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
