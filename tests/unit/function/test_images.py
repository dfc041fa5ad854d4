"""Image checks from the first and last bytes: type, dimensions, completeness, image bombs."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from backdrop_fn import images


def encode(fmt: str, size=(40, 30), **options) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format=fmt, **options)
    return out.getvalue()


def check(data: bytes) -> str | None:
    return images.problem(data[: images.HEAD_BYTES], data[-images.TAIL_BYTES :], len(data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid PNG whose header declares an enormous picture."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("JPEG", {"exif": b"Exif\x00\x00" + b"\x00" * 60_000}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"exif": b"Exif\x00\x00" + b"\x00" * 100}),  # the extended (VP8X) layout
    ],
)
def test_real_images_pass(fmt: str, options: dict):
    assert check(encode(fmt, **options)) is None


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_the_dimensions_are_read_from_the_header(fmt: str):
    data = encode(fmt, size=(321, 123))
    small = images.problem(data[:2000], data[-100:], len(data))
    assert small is None
    assert images.sniff(data).name.upper() == fmt


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_truncated_image_is_refused(fmt: str):
    data = encode(fmt, size=(200, 200))
    cut = data[: len(data) * 2 // 3]
    assert "truncated" in check(cut)


def test_an_image_bomb_is_refused_before_anything_is_paid():
    bomb = png_declaring(100_000, 100_000)
    assert len(bomb) < 100
    assert "100,000 x 100,000 pixels, over the limit" in check(bomb)


def test_the_largest_allowed_picture_passes_and_one_pixel_more_does_not():
    assert check(png_declaring(8000, 8000)) is None
    assert "over the limit" in check(png_declaring(images.MAX_SIDE + 1, 10))


def test_a_zero_sized_picture_is_refused():
    assert "0 x 10 pixels" in check(png_declaring(0, 10))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the object is empty"),
        (b"GIF89a......", "not a JPEG, PNG or WebP image: it starts with 'GIF89a..'"),
        (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08", "it starts with bytes 00 01 02"),
        (b"\xff\xd8\xff\xda\x00\x02" + b"\x00" * 20 + b"\xff\xd9", "dimensions cannot be read"),
        (b"RIFF\x10\x00\x00\x00WEBPJUNK" + b"\x00" * 8, "dimensions cannot be read"),
    ],
)
def test_non_images_and_malformed_headers_are_explained(data: bytes, message: str):
    assert message in check(data)
