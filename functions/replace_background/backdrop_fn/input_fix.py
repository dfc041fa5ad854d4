"""An input made fit to send: upright, in sRGB, and carrying nothing personal.

Only inputs whose header bytes show an EXIF orientation other than 1 or a colour profile other
than sRGB come here (``image_metadata.py`` tells them apart without Pillow); every other image
goes to the API exactly as uploaded. Pillow is imported by ``upright_srgb`` itself, so importing
this module costs nothing.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

from backdrop_fn.errors import InvalidImage

JPEG_QUALITY = 95
_LOSSLESS_WEBP_CHUNK = b"VP8L"


@dataclass(frozen=True)
class FixedImage:
    data: bytes
    content_type: str
    width: int
    height: int


def upright_srgb(data: bytes) -> FixedImage:
    """``data`` (a JPEG, PNG or WebP) turned upright and into sRGB, in its own format.

    The EXIF orientation is applied; a colour profile is converted to sRGB (alpha kept); the
    picture is encoded again (JPEG at quality 95 without chroma subsampling, PNG as it was,
    WebP lossless when the input was) and tagged sRGB. Everything else is left behind: EXIF
    (GPS position, camera and lens serials, the orientation itself), XMP, comments and text.
    An animated image keeps only its first frame.

    Memory: about three times the decoded picture at its peak (the pixels, turned, converted),
    for an input already within ``images.MAX_PIXELS``.

    Errors: ``InvalidImage`` when Pillow cannot decode the image or read its colour profile;
    nothing has been paid for yet, and the same bytes would fail the same way.
    """
    from PIL import Image, ImageCms, ImageOps

    from backdrop_fn.image_metadata import srgb_profile
    from backdrop_fn.srgb import in_srgb, without_metadata

    try:
        with Image.open(io.BytesIO(data)) as opened:
            pillow_format = opened.format or ""
            profile = opened.info.get("icc_profile") or None
            upright = ImageOps.exif_transpose(opened)
        fixed = without_metadata(in_srgb(upright, profile))
        out = io.BytesIO()
        fixed.save(out, format=pillow_format, icc_profile=srgb_profile(), **_encoding(pillow_format, data))
    except (OSError, ValueError, Image.DecompressionBombError, ImageCms.PyCMSError) as exc:
        raise InvalidImage(f"the image could not be turned upright and into sRGB: {exc}") from None
    return FixedImage(out.getvalue(), Image.MIME[pillow_format], fixed.width, fixed.height)


def _encoding(pillow_format: str, data: bytes) -> dict[str, Any]:
    if pillow_format == "JPEG":
        return {"quality": JPEG_QUALITY, "subsampling": 0}
    if pillow_format == "WEBP":
        if _is_lossless_webp(data):
            return {"lossless": True}
        return {"quality": JPEG_QUALITY}
    return {}


def _is_lossless_webp(data: bytes) -> bool:
    """Whether a WebP's image chunk is VP8L (lossless), walking the RIFF chunks to find it."""
    position = 12
    while position + 8 <= len(data):
        fourcc = data[position : position + 4]
        if fourcc in (b"VP8 ", _LOSSLESS_WEBP_CHUNK):
            return fourcc == _LOSSLESS_WEBP_CHUNK
        (length,) = struct.unpack("<I", data[position + 4 : position + 8])
        position += 8 + length + (length & 1)  # chunks are padded to an even length
    return False
