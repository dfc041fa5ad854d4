"""The request's image, as the service takes it: a loopback URL or base64, checked to be a picture."""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import urllib.request
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from backdrop.emulator.request_rules import RequestRejected

MAX_IMAGE_BYTES = 25 * 1024 * 1024
# The formats taken and given, by the name the settings use ("png"); Pillow's is the upper case.
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def content_type_of(image: bytes) -> str:
    with Image.open(io.BytesIO(image)) as probe:
        return CONTENT_TYPES[str(probe.format).lower()]


def load_image(reference: str) -> bytes:
    """The input image, from a loopback URL or base64; 400 when it is neither an image nor reachable."""
    data = _fetch(reference) if reference.startswith(("http://", "https://")) else _decode(reference)
    if len(data) > MAX_IMAGE_BYTES:
        raise RequestRejected("image is larger than 25 MB")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ("JPEG", "PNG", "WEBP"):
                raise RequestRejected(f"unsupported image format {probe.format}")
            probe.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise RequestRejected("image could not be decoded") from None
    return data


def _fetch(url: str) -> bytes:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise RequestRejected("image URL is not reachable from the offline emulator (loopback only)")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback only)
            return response.read(MAX_IMAGE_BYTES + 1)
    except OSError as error:
        raise RequestRejected(f"could not fetch the image URL: {error}") from None


def _decode(reference: str) -> bytes:
    encoded = reference.split(",", 1)[1] if reference.startswith("data:") else reference
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RequestRejected("image is neither a URL nor valid base64") from None
