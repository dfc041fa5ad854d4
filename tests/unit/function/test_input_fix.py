from __future__ import annotations

import pytest
from PIL import Image, PngImagePlugin

from backdrop_fn.errors import InvalidImage
from backdrop_fn.input_fix import upright_srgb
from tests.unit.function.imagefixtures import (
    BODY_SERIAL,
    GPS_IFD,
    decoded,
    encode,
    is_srgb_tagged,
    phone_exif,
    red_blue_swapped_profile,
)

WHITE, BLACK, RED = (255, 255, 255), (0, 0, 0), (220, 20, 20)


def upright_scene(mode: str = "RGB") -> Image.Image:
    """40 x 60, as the photo should be seen: a black mark top left, a red one bottom right."""
    scene = Image.new(mode, (40, 60), WHITE)
    scene.paste(BLACK, (0, 0, 12, 12))
    scene.paste(RED, (28, 48, 40, 60))
    return scene


def sideways_phone_photo() -> bytes:
    """What a phone held upright writes: the sensor's pixels turned a quarter, orientation 6
    (turn 90° clockwise to view), where it was, its serial, in a profile that is not sRGB."""
    stored = upright_scene().transpose(Image.Transpose.ROTATE_90)
    return encode(
        stored,
        "JPEG",
        quality=95,
        exif=phone_exif(6),
        icc_profile=red_blue_swapped_profile(),
        comment=f"owner's camera {BODY_SERIAL}".encode(),
        xmp=f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><serial>{BODY_SERIAL}</serial></x:xmpmeta>'.encode(),
    )


def test_sideways_phone_photo_reaches_the_api_upright():
    fixed = upright_srgb(sideways_phone_photo())

    picture = decoded(fixed.data)
    assert (fixed.width, fixed.height) == picture.size == (40, 60)
    assert fixed.content_type == "image/jpeg"
    assert max(picture.getpixel((5, 5))) < 40  # the black mark is top left, as seen
    assert min(picture.getpixel((34, 5))) > 215  # and not in any other corner
    assert min(picture.getpixel((5, 54))) > 215


def test_photo_in_another_profile_reaches_the_api_in_srgb():
    fixed = decoded(upright_srgb(sideways_phone_photo()).data)

    red_in_its_profile = fixed.getpixel((34, 54))
    assert isinstance(red_in_its_profile, tuple)
    red, _green, blue = red_in_its_profile[:3]
    assert blue > 150 > 60 > red  # the profile said its "red" numbers are blue: converted, not relabelled
    assert is_srgb_tagged(fixed)


def test_no_gps_serial_or_comment_of_the_photo_reaches_the_api():
    photo = sideways_phone_photo()
    assert BODY_SERIAL.encode() in photo
    assert b"Exif\x00\x00" in photo

    fixed = upright_srgb(photo).data

    assert BODY_SERIAL.encode() not in fixed
    assert b"Exif\x00\x00" not in fixed  # no EXIF at all: no GPS IFD, no orientation left to apply twice
    assert b"xmpmeta" not in fixed
    assert decoded(fixed).getexif().get_ifd(GPS_IFD) == {}


def test_png_keeps_its_transparency_and_loses_its_text():
    scene = upright_scene("RGBA")
    scene.putpixel((6, 40), (0, 0, 0, 0))
    stored = scene.transpose(Image.Transpose.ROTATE_180)
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", BODY_SERIAL)
    photo = encode(stored, "PNG", exif=phone_exif(3), pnginfo=text, icc_profile=red_blue_swapped_profile())

    fixed = upright_srgb(photo)

    picture = decoded(fixed.data)
    assert (fixed.content_type, picture.mode, picture.size) == ("image/png", "RGBA", (40, 60))
    assert picture.getpixel((5, 5))[:3] == BLACK  # turned back by 180°
    assert picture.getpixel((6, 40))[3] == 0  # the transparent pixel, turned with the rest
    assert picture.getpixel((33, 19))[3] == 255
    assert BODY_SERIAL.encode() not in fixed.data
    assert b"eXIf" not in fixed.data
    assert is_srgb_tagged(picture)


@pytest.mark.parametrize(
    ("lossless", "chunk", "other"), [(True, b"VP8L", b"VP8 "), (False, b"VP8 ", b"VP8L")]
)
def test_webp_stays_lossless_or_lossy_as_it_came(lossless, chunk, other):
    photo = encode(
        upright_scene(),
        "WEBP",
        lossless=lossless,
        exif=phone_exif(8),
        icc_profile=red_blue_swapped_profile(),
    )

    fixed = upright_srgb(photo)

    assert fixed.content_type == "image/webp"
    assert (fixed.width, fixed.height) == (60, 40)
    assert chunk in fixed.data
    assert other not in fixed.data
    assert BODY_SERIAL.encode() not in fixed.data


def test_an_image_pillow_cannot_read_is_refused_before_any_call():
    with pytest.raises(InvalidImage, match="upright and into sRGB"):
        upright_srgb(sideways_phone_photo()[:700])
