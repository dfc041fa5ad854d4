from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from backdrop_fn.errors import InfrastructureUnavailable, InternalError
from backdrop_fn.renditions import (
    MAX_RENDITIONS,
    Rendition,
    check_renditions,
    content_type,
    render,
    rendition_key,
    rendition_label,
)
from tests.unit.function import imagefixtures as photos


def rendition(**fields: Any) -> Rendition:
    """As the sidecar's JSON gives it: strings for the choices."""
    return Rendition.model_validate({"format": "jpeg", **fields})


def rendered(result: bytes, *renditions: Rendition) -> list[Image.Image]:
    return [photos.decoded(out.data) for _, out in render(lambda: io.BytesIO(result), renditions)]


def striped(size: tuple[int, int] = (300, 100), mode: str = "RGB") -> Image.Image:
    """Red, green and blue thirds, left to right."""
    picture = Image.new(mode, size)
    third = size[0] // 3
    for index, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        picture.paste(colour, (index * third, 0, (index + 1) * third, size[1]))
    return picture


# -- what a rendition is ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output_key", "fields", "key"),
    [
        ("shop/shoe-1.png", {"width": 2000, "height": 2000}, "shop/shoe-1@2000x2000.jpg"),
        ("shop/shoe-1.v2.png", {"name": "amazon", "width": 2000}, "shop/shoe-1.v2@amazon.jpg"),
        ("shop/shoe-1.png", {"format": "webp", "width": 2048}, "shop/shoe-1@2048xauto.webp"),
        ("out/a.b/shoe.jpg", {"format": "avif", "height": 600}, "out/a.b/shoe@autox600.avif"),
        ("shoe.webp", {"format": "png"}, "shoe@autoxauto.png"),
    ],
)
def test_a_rendition_is_written_beside_its_result_under_the_contracts_key(output_key, fields, key):
    assert rendition_key(output_key, rendition(**fields)) == key


@pytest.mark.parametrize(
    ("image_format", "expected"),
    [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp"), ("avif", "image/avif")],
)
def test_each_format_is_written_with_its_content_type(image_format, expected):
    assert content_type(rendition(format=image_format)) == expected


def test_the_label_is_the_name_or_the_box():
    assert rendition_label(rendition(name="amazon", width=10)) == "amazon"
    assert rendition_label(rendition(width=10, height=20)) == "10x20"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"format": "jpeg", "background": "transparent"}, "jpeg has no transparency"),
        ({"format": "png", "quality": 80}, "png is lossless"),
        ({"fit": "cover", "width": 100}, "cover needs both width and height"),
        ({"fit": "pad", "height": 100}, "pad needs both width and height"),
        ({"name": "a/b"}, "part of an S3 key"),
        ({"name": ".hidden"}, "starting with a letter or digit"),
        ({"name": "x" * 65}, "at most 64 characters"),
        ({"width": 0}, "between 1 and 8192"),
        ({"height": 8193}, "between 1 and 8192"),
        ({"quality": 101}, "between 1 and 100"),
        ({"background": "white"}, "#rrggbb"),
        ({"format": "gif"}, "format"),
        ({"fit": "stretch"}, "fit"),
        ({"size": 100}, "size"),
    ],
)
def test_a_rendition_that_cannot_be_made_is_refused_with_its_reason(fields, problem):
    with pytest.raises(ValidationError, match=problem):
        rendition(**fields)


def test_a_transparent_background_is_taken_where_the_format_has_transparency():
    for image_format in ("png", "webp", "avif"):
        assert rendition(format=image_format, background="transparent").background == "transparent"


def test_two_renditions_written_at_the_same_key_are_refused():
    with pytest.raises(ValueError, match=r"\[2\] would be written at the same key as \[0\]"):
        check_renditions(
            [rendition(name="amazon"), rendition(name="amazon", format="png"), rendition(name="amazon")]
        )
    with pytest.raises(ValueError, match="same key"):
        check_renditions([rendition(width=500), rendition(width=500, quality=50)])


def test_the_same_box_in_two_formats_is_two_renditions():
    both = [rendition(width=500), rendition(width=500, format="webp")]
    assert check_renditions(both) == both
    assert check_renditions([]) == []


def test_more_renditions_than_the_limit_are_refused():
    many = [rendition(width=100 + n) for n in range(MAX_RENDITIONS + 1)]
    with pytest.raises(ValueError, match=f"at most {MAX_RENDITIONS} renditions"):
        check_renditions(many)
    assert check_renditions(many[:MAX_RENDITIONS]) == many[:MAX_RENDITIONS]


# -- making them -------------------------------------------------------------------------------------


def test_contain_fits_inside_the_box_keeping_the_aspect():
    result = photos.encode(striped((600, 400)), "PNG")
    (by_width, by_height, by_both) = rendered(
        result,
        rendition(format="png", width=300),
        rendition(format="png", height=100),
        rendition(format="png", width=300, height=100),
    )
    assert (by_width.size, by_height.size, by_both.size) == ((300, 200), (150, 100), (150, 100))


def test_a_rendition_is_never_larger_than_the_result_but_pad_reaches_the_box():
    result = photos.encode(striped((60, 40)), "PNG")
    (contained, covered, padded, own) = rendered(
        result,
        rendition(width=600, height=600),
        rendition(width=600, height=300, fit="cover"),
        rendition(width=600, height=600, fit="pad"),
        rendition(format="webp"),
    )
    assert contained.size == (60, 40)
    assert covered.size == (60, 30)  # the box's aspect, cut from the result at its own scale
    assert padded.size == (600, 600)
    # The result is not enlarged: its 60 pixels sit in the middle, red from 270, padding before.
    assert padded.getpixel((275, 300))[0] > 200
    assert min(padded.getpixel((265, 300))) > 245
    assert own.size == (60, 40)


def test_cover_fills_the_box_with_the_middle_of_the_result():
    (square,) = rendered(
        photos.encode(striped(), "PNG"), rendition(format="png", width=50, height=50, fit="cover")
    )

    assert square.size == (50, 50)
    for corner in ((0, 0), (49, 0), (0, 49), (49, 49)):
        red, green, blue = square.getpixel(corner)[:3]
        assert green > 220
        assert red < 40
        assert blue < 40


def test_pad_fills_a_jpeg_with_white_and_a_png_with_transparency_by_default():
    result = photos.encode(striped((300, 100)), "PNG")
    jpeg, png, coloured = rendered(
        result,
        rendition(width=200, height=200, fit="pad"),
        rendition(format="png", width=200, height=200, fit="pad"),
        rendition(format="webp", width=200, height=200, fit="pad", background="#0000ff", quality=100),
    )
    assert min(jpeg.getpixel((100, 5))) > 245
    assert jpeg.getpixel((100, 100))[1] > 200  # the green middle, padded above and below
    assert png.mode == "RGBA"
    assert png.getpixel((100, 5))[3] == 0
    assert png.getpixel((100, 100))[3] == 255
    red, green, blue = coloured.getpixel((100, 5))[:3]
    assert blue > 240
    assert red < 15
    assert green < 15


def test_a_transparent_result_is_flattened_onto_the_background_for_jpeg():
    result = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    result.paste((0, 255, 0, 255), (40, 40, 60, 60))

    jpeg, on_red, webp = rendered(
        photos.encode(result, "PNG"),
        rendition(width=50),
        rendition(width=50, background="#ff0000"),
        rendition(format="webp", width=50, quality=100),
    )
    assert min(jpeg.getpixel((2, 2))) > 245  # white, not black, where the result is transparent
    assert jpeg.getpixel((25, 25))[1] > 200
    red, green, blue = on_red.getpixel((2, 2))
    assert red > 240
    assert green < 15
    assert blue < 15
    assert webp.mode == "RGBA"
    assert webp.getpixel((2, 2))[3] == 0


def test_renditions_carry_the_srgb_profile_and_no_metadata_of_the_result():
    result = photos.encode(
        striped(),
        "JPEG",
        exif=photos.phone_exif(1),
        comment=photos.BODY_SERIAL.encode(),
        xmp=f"<x:xmpmeta>{photos.BODY_SERIAL}</x:xmpmeta>".encode(),
    )
    assert photos.BODY_SERIAL.encode() in result

    outputs = [
        out.data
        for _, out in render(
            lambda: io.BytesIO(result),
            [
                rendition(width=100),
                rendition(format="png"),
                rendition(format="webp"),
                rendition(format="avif"),
            ],
        )
    ]

    for data in outputs:
        assert photos.BODY_SERIAL.encode() not in data
        assert b"Exif\x00\x00" not in data
        assert b"eXIf" not in data
        assert b"xmpmeta" not in data
        assert photos.is_srgb_tagged(photos.decoded(data))


def test_a_result_in_another_profile_is_converted_to_srgb():
    result = photos.encode(
        Image.new("RGB", (40, 40), (220, 20, 20)), "PNG", icc_profile=photos.red_blue_swapped_profile()
    )

    (png,) = rendered(result, rendition(format="png", width=20))

    red, _green, blue = png.getpixel((10, 10))
    assert blue > 150 > 60 > red


def test_a_jpeg_result_decoded_at_a_fraction_still_gives_the_exact_box():
    result = photos.encode(striped((4000, 3000)), "JPEG", quality=90)

    small, large = rendered(result, rendition(width=500), rendition(width=1200, format="webp"))

    assert small.size == (500, 375)
    assert large.size == (1200, 900)


def test_a_sideways_result_is_rendered_upright():
    result = photos.encode(striped((300, 100)), "JPEG", exif=photos.phone_exif(6))

    (upright,) = rendered(result, rendition(width=50))

    assert upright.size == (50, 150)
    assert upright.getpixel((25, 5))[0] > 200  # red, the left third, is now on top


def test_the_result_is_read_once_for_all_its_renditions():
    result = photos.encode(striped(), "PNG")
    opened = []

    def open_result() -> io.BytesIO:
        opened.append(1)
        return io.BytesIO(result)

    made = list(render(open_result, [rendition(width=10), rendition(width=20), rendition(format="png")]))

    assert [out.width for _, out in made] == [10, 20, 300]
    assert [out.content_type for _, out in made] == ["image/jpeg", "image/jpeg", "image/png"]
    assert len(opened) == 1


def test_nothing_is_read_when_there_are_no_renditions():
    def must_not_open() -> io.BytesIO:
        raise AssertionError("opened")

    assert list(render(must_not_open, [])) == []


def test_a_result_pillow_cannot_decode_fails_as_internal_and_permanent():
    with pytest.raises(InternalError, match="cannot be decoded") as caught:
        list(render(lambda: io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(100)), [rendition(width=10)]))
    assert caught.value.retryable is False


def test_a_failure_to_read_the_kept_result_passes_through_as_it_is():
    def unavailable() -> io.BytesIO:
        raise InfrastructureUnavailable("S3 is slow")

    with pytest.raises(InfrastructureUnavailable):
        list(render(unavailable, [rendition(width=10)]))


def test_a_result_over_the_pixel_limit_is_not_decoded(monkeypatch):
    monkeypatch.setattr("backdrop_fn.renditions.MAX_PIXELS", 20 * 10 - 1)

    with pytest.raises(InternalError, match="20 x 10 pixels, over the limit"):
        list(render(lambda: io.BytesIO(photos.encode(striped((20, 10)), "PNG")), [rendition(width=5)]))
