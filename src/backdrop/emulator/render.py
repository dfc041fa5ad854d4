"""The emulator's picture: the input's subject kept, its background replaced, by classical means.

No model weights can be downloaded here, so this is not Ideogram. Two jobs, in two packages:
``segmentation`` tells the subject from the background by image processing alone, and
``painting`` draws the new background from the prompt, palette and seed. Here they meet: the
subject is laid over the new background and the result encoded. The same seed, prompt and
palette give the same bytes.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from backdrop.emulator.imaging import as_rgb, open_image
from backdrop.emulator.painting import draw_backdrop, with_contact_shadow
from backdrop.emulator.segmentation import cut_out

FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# How each format is written: quick PNG compression, and a JPEG or WebP close to the service's.
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "PNG": {"compress_level": 3},
    "JPEG": {"quality": 90},
    "WEBP": {"quality": 88, "method": 4},
}


def replace_background(
    image_bytes: bytes,
    prompt: str,
    *,
    seed: int | None,
    palette: dict | None,
    output_format: str = "png",
) -> bytes:
    source = open_image(image_bytes)
    picture = as_rgb(source)
    cutout = cut_out(source, picture)
    backdrop = draw_backdrop(picture.size, prompt, seed=seed, palette=palette)
    if cutout.stands:
        backdrop = with_contact_shadow(backdrop, cutout.work_mask)
    result = Image.composite(picture, backdrop, cutout.mask)
    out = io.BytesIO()
    fmt = FORMATS[output_format]
    result.save(out, format=fmt, **_SAVE_OPTIONS[fmt])
    return out.getvalue()


def subject_mask(image: Image.Image) -> Image.Image:
    """White where the subject is, black where the background is, softened at the edge."""
    return cut_out(image, as_rgb(image)).mask
