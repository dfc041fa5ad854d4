"""Image types told by their first bytes (magic numbers), never by the file name."""

from __future__ import annotations

from dataclasses import dataclass

# Enough leading bytes to tell every supported type apart.
SNIFF_BYTES = 16


@dataclass(frozen=True)
class ImageType:
    name: str
    extension: str
    content_type: str


PNG = ImageType("PNG", "png", "image/png")
JPEG = ImageType("JPEG", "jpg", "image/jpeg")
WEBP = ImageType("WebP", "webp", "image/webp")


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
