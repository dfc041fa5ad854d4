"""Images told by their bytes, never by the file name: type, declared size, and completeness.

Only the first and last bytes are read, so the checks cost the same for a 10 MB photo as for a
thumbnail, and Pillow (12 MB, slow to import) stays out of the function.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Enough leading bytes to tell every supported type apart.
SNIFF_BYTES = 16
# Enough to find a JPEG's frame header behind its EXIF/ICC segments in any ordinary photo.
HEAD_BYTES = 256 * 1024
# Enough to find the end marker even behind the trailers some phones append to a JPEG.
TAIL_BYTES = 4096
# The API works on photos, not posters: beyond this the input is refused before any paid call
# (a 100,000 x 100,000 PNG of a few KB would otherwise reach the API as an "image bomb").
MAX_PIXELS = 64_000_000
MAX_SIDE = 16_384


@dataclass(frozen=True)
class ImageType:
    name: str
    extension: str
    content_type: str


PNG = ImageType("PNG", "png", "image/png")
JPEG = ImageType("JPEG", "jpg", "image/jpeg")
WEBP = ImageType("WebP", "webp", "image/webp")
# What the API may answer with, and so every extension an output key may have.
ANSWER_TYPES = (PNG, JPEG, WEBP)


def sniff(head: bytes) -> ImageType | None:
    """The type of an image from its first bytes, or None when they are not a supported image."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def describe(head: bytes) -> str:
    """A short, safe description of bytes that are not an image, for an error message."""
    if not head:
        return "the object is empty"
    text = head[:8]
    if all(32 <= b < 127 for b in text):
        return f"it starts with {text.decode('ascii')!r}"
    return f"it starts with bytes {text.hex(' ')}"


def problem(head: bytes, tail: bytes, size: int) -> str | None:
    """Why these bytes cannot be a usable image, or None. ``head``/``tail``: its first/last bytes."""
    image_type = sniff(head)
    if image_type is None:
        return f"not a JPEG, PNG or WebP image: {describe(head)}"
    if image_type is PNG:
        dimensions, complete = _png_size(head), b"IEND\xaeB`\x82" in tail
    elif image_type is JPEG:
        # FF D9 cannot occur inside JPEG image data (an FF there is always followed by 00).
        dimensions, complete = _jpeg_size(head), b"\xff\xd9" in tail
    else:
        dimensions, complete = _webp_size(head), 0 < _riff_length(head) <= size
    if not complete:
        return f"a truncated or damaged {image_type.name} (its end is missing)"
    if dimensions is None:
        return f"a {image_type.name} whose dimensions cannot be read"
    width, height = dimensions
    if width == 0 or height == 0:
        return f"a {image_type.name} of {width} x {height} pixels"
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        return (
            f"{width:,} x {height:,} pixels, over the limit of {MAX_SIDE:,} a side and "
            f"{MAX_PIXELS // 1_000_000} megapixels"
        )
    return None


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """Walk the markers to the first frame header (SOF0–SOF15, but DHT, JPG and DAC)."""
    position = 2
    while position + 4 <= len(head):
        if head[position] != 0xFF:
            return None
        marker = head[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            position += 2
            continue
        (length,) = struct.unpack(">H", head[position + 2 : position + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if position + 9 > len(head):
                return None
            height, width = struct.unpack(">HH", head[position + 5 : position + 9])
            return width, height
        if marker == 0xDA or length < 2:  # image data before any frame header: malformed
            return None
        position += 2 + length
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    return None


def _riff_length(head: bytes) -> int:
    """The file size a RIFF container declares for itself."""
    return struct.unpack("<I", head[4:8])[0] + 8 if len(head) >= 8 else -1
