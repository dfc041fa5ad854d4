"""What the demo tells about a picture it sent or got back: its size and format, and the personal
or awkward things it carries (a turn in EXIF, a colour profile other than sRGB, GPS, serials)."""

from __future__ import annotations

import io

from PIL import Image, ImageCms, UnidentifiedImageError

from backdrop.demo.contact_sheet import PictureFacts

_ORIENTATION = 0x0112
_CAMERA_SERIAL = 0xC62F  # in the first IFD
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_BODY_SERIAL, _LENS_SERIAL = 0xA431, 0xA435


def facts_of(data: bytes) -> PictureFacts | None:
    """None for bytes that are no picture Pillow can open."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return PictureFacts(width, height, image.format or "unknown", len(data))
    except (UnidentifiedImageError, OSError):
        return None


def orientation_of(data: bytes) -> int:
    """The EXIF orientation (1 is upright as stored); 1 for a file without one."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.getexif().get(_ORIENTATION, 1))
    except (UnidentifiedImageError, OSError, ValueError):
        return 1


def as_stored_png(data: bytes) -> bytes:
    """The picture's pixels as the file stores them, not turned, in a PNG without EXIF (its
    colour profile kept)."""
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.save(out, format="PNG", icc_profile=image.info.get("icc_profile"))
        return out.getvalue()


def carried(data: bytes) -> tuple[str, ...]:
    """What a file holds that the pipeline must deal with: a turn, a colour profile other than
    sRGB, a GPS position, a serial number."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            profile = image.info.get("icc_profile")
    except (UnidentifiedImageError, OSError):
        return ()
    found: list[str] = []
    orientation = exif.get(_ORIENTATION, 1)
    if orientation != 1:
        found.append(f"EXIF orientation {orientation}")
    described = _profile_name(profile)
    if described and "srgb" not in described.lower():
        found.append(f"{described} colour profile")
    if exif.get_ifd(_GPS_IFD):
        found.append("GPS position")
    camera = exif.get_ifd(_EXIF_IFD)
    if _CAMERA_SERIAL in exif or _BODY_SERIAL in camera or _LENS_SERIAL in camera:
        found.append("camera serial number")
    return tuple(found)


def _profile_name(profile: bytes | None) -> str | None:
    if not profile:
        return None
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()
    except (ImageCms.PyCMSError, OSError):
        return "unreadable"
