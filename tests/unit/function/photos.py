"""Pictures made with Pillow for the renditions and input-fix tests, with the metadata phones add."""

from __future__ import annotations

import io
import struct
from typing import Any

from PIL import Image, ImageCms

from backdrop_fn.srgb import srgb_profile

SERIAL = "SN-12345-XYZ"
GPS_IFD = 0x8825
EXIF_IFD = 0x8769
BODY_SERIAL_NUMBER = 0xA431
ORIENTATION = 0x0112


def encoded(image: Image.Image, pillow_format: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=pillow_format, **options)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def red_blue_swapped_profile() -> bytes:
    """An RGB profile that is not sRGB: sRGB with its red and blue primaries exchanged.

    Converted to sRGB, a pixel that is red in its numbers becomes blue: whether a conversion
    happened shows in one pixel.
    """
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    tags = {}
    for entry in range(count):
        start = 132 + 12 * entry
        tags[bytes(profile[start : start + 4])] = struct.unpack(">II", profile[start + 4 : start + 12])
    (red_at, size), (blue_at, _) = tags[b"rXYZ"], tags[b"bXYZ"]
    red, blue = profile[red_at : red_at + size], profile[blue_at : blue_at + size]
    profile[red_at : red_at + size], profile[blue_at : blue_at + size] = blue, red
    return bytes(profile)


def phone_exif(orientation: int) -> Image.Exif:
    """EXIF as a phone writes it: an orientation, where the photo was taken, the camera's serial."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif.get_ifd(EXIF_IFD)[BODY_SERIAL_NUMBER] = SERIAL
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 24.05), 3: "E", 4: (2.0, 21.0, 7.9)})
    return exif


def is_srgb_tagged(image: Image.Image) -> bool:
    return image.info.get("icc_profile") == srgb_profile()
