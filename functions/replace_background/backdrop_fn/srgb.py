"""Pixels in sRGB with nothing personal attached: what renditions and the input fix share.

Only the modules that already decided to decode a picture import this one, and it imports Pillow
(about 12 MB, 50 ms) as it loads: a plain pair never does either.
"""

from __future__ import annotations

import io
from typing import cast

from PIL import Image, ImageCms

from backdrop_fn.image_metadata import srgb_profile
from backdrop_fn.images import MAX_PIXELS

# Pillow's own bomb check, set to the function's input limit: nothing the function decodes (an
# input already checked against it, or the API's answer to such an input) is larger.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_WITH_ALPHA = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def has_alpha(image: Image.Image) -> bool:
    """Whether ``image`` may have transparent pixels: an alpha band, or a palette's transparency."""
    return image.mode in _WITH_ALPHA or "transparency" in image.info


def in_srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    """``image`` as RGB or RGBA (alpha kept) in sRGB, converted from ``profile`` when it has one.

    An untagged image is taken to be sRGB already, as browsers take it. Raises ``ImageCms.PyCMSError``
    (or ``OSError``) when the profile cannot be read or does not fit the pixels.
    """
    alpha = has_alpha(image)
    if image.mode not in ("RGB", "RGBA", "L", "LA", "CMYK"):
        image = image.convert("RGBA" if alpha else "RGB")
    if profile is None:
        return image.convert("RGBA" if alpha else "RGB")
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    target = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))
    if image.mode == "RGBA":  # LittleCMS carries the alpha channel through itself
        return _converted(image, source, target, "RGBA")
    converted = _converted(image.convert("L") if image.mode == "LA" else image, source, target, "RGB")
    if image.mode == "LA":
        converted.putalpha(image.getchannel("A"))
    return converted


def _converted(
    image: Image.Image, source: ImageCms.ImageCmsProfile, target: ImageCms.ImageCmsProfile, mode: str
) -> Image.Image:
    # profileToProfile returns None only when asked to work in place, which this never does.
    return cast(Image.Image, ImageCms.profileToProfile(image, source, target, outputMode=mode))


def without_metadata(image: Image.Image) -> Image.Image:
    """``image`` with no EXIF, XMP, comment or text left to be written by ``save``.

    Pillow's encoders write some of these from ``image.info`` unasked (a JPEG's comment, a PNG's
    text): every output is saved with only what the caller passes, the sRGB profile.
    """
    image.info.clear()
    return image
