"""Reading the input picture, whatever it is, and the colour type both halves of the picture share."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

RGB = tuple[int, int, int]


def open_image(image_bytes: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(image_bytes))
    image.load()
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, TypeError, KeyError, SyntaxError):
        return image  # a broken EXIF block: keep the picture as stored


def as_rgb(image: Image.Image) -> Image.Image:
    """The picture as 8-bit RGB, whatever its mode (L, P, RGBA, CMYK, 16-bit grey, float)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        low, high = band_range(image)
        span = (high - low) or 1
        grey = image.convert("F").point(lambda value: (value - low) * (255.0 / span)).convert("L")
        return grey.convert("RGB")
    if image.mode in ("P", "PA", "LA", "La", "RGBa", "1"):
        image = image.convert("RGBA")
    return image.convert("RGB")


def band_range(band: Image.Image) -> tuple[float, float]:
    """The lowest and highest value of a one-band picture (Pillow types it for many bands too)."""
    low, high = band.getextrema()
    if isinstance(low, tuple) or isinstance(high, tuple):
        raise ValueError(f"one band expected, not {band.mode}")
    return low, high
