"""The emulator's picture: the subject kept pixel for pixel, the backdrop replaced, reproducibly."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from backdrop.emulator.painting import PRESET_COLOURS, draw_backdrop
from backdrop.emulator.render import FORMATS, replace_background, subject_mask

WIDTH, HEIGHT = 360, 270
SUBJECT = (120, 50, 250, 230)  # a red box standing on the backdrop
HOLE = (165, 110, 205, 150)  # backdrop-coloured, but inside the subject
FAR_PALETTE = {
    "members": [
        {"color_hex": "#7b1fa2", "color_weight": 1.0},
        {"color_hex": "#c2185b", "color_weight": 0.6},
    ]
}


def backdrop_colour(y: int, *, gradient: bool) -> tuple[int, int, int]:
    if not gradient:
        return (226, 224, 218)
    shade = round(244 - 44 * y / HEIGHT)  # light at the top, darker towards the floor
    return (shade, shade - 2, shade - 8)


def studio_photo(*, gradient: bool = True, hole: bool = True) -> Image.Image:
    """A product shot: a coloured object on a plain or graded backdrop, with sensor noise."""
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    for y in range(HEIGHT):
        draw.line((0, y, WIDTH, y), fill=backdrop_colour(y, gradient=gradient))
    draw.rounded_rectangle(SUBJECT, radius=18, fill=(196, 52, 38))
    draw.rectangle((SUBJECT[0] + 8, SUBJECT[1] + 10, SUBJECT[0] + 30, SUBJECT[3] - 10), fill=(150, 35, 28))
    draw.rectangle((SUBJECT[0] + 20, SUBJECT[3] - 40, SUBJECT[2] - 20, SUBJECT[3] - 25), fill=(40, 40, 48))
    if hole:
        draw.rectangle(HOLE, fill=backdrop_colour(HOLE[1], gradient=gradient))
    rng = random.Random(7)
    noise = Image.frombytes("L", image.size, rng.randbytes(WIDTH * HEIGHT)).point(lambda v: v * 7 // 256)
    three = Image.new("L", image.size, 3)
    return Image.merge(
        "RGB", [ImageChops.subtract(ImageChops.add(channel, noise), three) for channel in image.split()]
    )


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def render(image: Image.Image, prompt: str = "a sunny beach at noon", **kwargs) -> Image.Image:
    kwargs.setdefault("seed", 4321)
    kwargs.setdefault("palette", FAR_PALETTE)
    return Image.open(io.BytesIO(replace_background(encode(image), prompt, **kwargs))).convert("RGB")


def region(box: tuple[int, int, int, int], inset: int) -> list[tuple[int, int]]:
    left, top, right, bottom = box
    return [(x, y) for x in range(left + inset, right - inset) for y in range(top + inset, bottom - inset)]


def outside(box: tuple[int, int, int, int], margin: int) -> list[tuple[int, int]]:
    left, top, right, bottom = box
    return [
        (x, y)
        for x in range(0, WIDTH, 3)
        for y in range(0, HEIGHT, 3)
        if not (left - margin <= x < right + margin and top - margin <= y < bottom + margin)
    ]


def difference(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return max(abs(p - q) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize("gradient", [False, True], ids=["plain", "gradient"])
def test_the_subject_is_kept_and_the_backdrop_replaced(gradient):
    photo = studio_photo(gradient=gradient)
    result = render(photo)
    before, after = photo.load(), result.load()
    kept = [difference(before[p], after[p]) for p in region(SUBJECT, 6)]
    assert max(kept) <= 4
    replaced = [difference(before[p], after[p]) > 40 for p in outside(SUBJECT, 12)]
    assert sum(replaced) / len(replaced) > 0.95


@pytest.mark.parametrize("gradient", [False, True], ids=["plain", "gradient"])
def test_backdrop_coloured_pixels_inside_the_subject_are_kept(gradient):
    """Only backdrop connected to the border goes: a hole of its colour within the subject stays."""
    photo = studio_photo(gradient=gradient, hole=True)
    result = render(photo)
    before, after = photo.load(), result.load()
    assert max(difference(before[p], after[p]) for p in region(HOLE, 3)) <= 4


def test_the_subject_mask_is_white_on_the_subject_and_black_on_the_backdrop():
    mask = subject_mask(studio_photo())
    assert mask.mode == "L"
    assert mask.size == (WIDTH, HEIGHT)
    pixels = mask.load()
    assert min(pixels[p] for p in region(SUBJECT, 6)) == 255
    assert max(pixels[p] for p in outside(SUBJECT, 12)) == 0
    assert min(pixels[p] for p in region(HOLE, 2)) == 255


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes():
    data = encode(studio_photo())
    first = replace_background(data, "a marble shelf", seed=123, palette=None)
    assert replace_background(data, "a marble shelf", seed=123, palette=None) == first
    assert replace_background(data, "a marble shelf", seed=124, palette=None) != first
    assert replace_background(data, "a velvet curtain", seed=123, palette=None) != first


def test_the_backdrop_is_deterministic_and_varies_with_the_seed():
    one = draw_backdrop((200, 150), "a forest", seed=7, palette=None)
    assert one.mode == "RGB"
    assert one.size == (200, 150)
    assert one.tobytes() == draw_backdrop((200, 150), "a forest", seed=7, palette=None).tobytes()
    assert one.tobytes() != draw_backdrop((200, 150), "a forest", seed=8, palette=None).tobytes()


def near_palette_share(image: Image.Image, palette_hex: list[str], tolerance: int = 70) -> float:
    colours = [tuple(int(h[i : i + 2], 16) for i in (1, 3, 5)) for h in palette_hex]
    pixels = image.load()
    points = outside(SUBJECT, 12)
    near = sum(min(difference(pixels[p], c) for c in colours) <= tolerance for p in points)
    return near / len(points)


@pytest.mark.parametrize(
    ("palette", "other_prompt"),
    [
        (FAR_PALETTE, "a forest"),
        ({"name": "JUNGLE"}, "an ocean view"),
        ({"name": "ULTRAMARINE"}, "an autumn harvest"),
        ({"name": "EMBER"}, "a snowy winter"),
        ({"name": "PASTEL"}, "a night sky"),
    ],
    ids=["members", "JUNGLE", "ULTRAMARINE", "EMBER", "PASTEL"],
)
def test_palette_colours_dominate_the_new_background(palette, other_prompt):
    """With a palette the backdrop is in its colours; without, the same prompt paints others."""
    hexes = (
        [m["color_hex"] for m in palette["members"]]
        if "members" in palette
        else PRESET_COLOURS[palette["name"]]
    )
    photo = studio_photo()
    for seed in (101, 4321):
        assert near_palette_share(render(photo, other_prompt, palette=palette, seed=seed), hexes) > 0.7
    assert near_palette_share(render(photo, other_prompt, palette=None), hexes) < 0.3


@pytest.mark.parametrize("output_format", sorted(FORMATS))
def test_the_output_has_the_asked_format_and_the_input_size(output_format):
    data = encode(studio_photo())
    out = Image.open(
        io.BytesIO(replace_background(data, "x", seed=500, palette=None, output_format=output_format))
    )
    assert out.format == FORMATS[output_format]
    assert out.size == (WIDTH, HEIGHT)


def test_exif_orientation_is_applied():
    photo = studio_photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: the viewer turns it 90° clockwise
    data = encode(photo.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=95)
    out = Image.open(io.BytesIO(replace_background(data, "x", seed=500, palette=None)))
    assert out.size == (WIDTH, HEIGHT)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16"])
def test_other_modes_are_accepted(mode):
    photo = studio_photo()
    if mode == "I;16":
        converted = photo.convert("L").point(lambda v: v * 256, mode="I").convert("I;16")
        fmt = "PNG"
    else:
        converted = photo.convert(mode)
        fmt = "JPEG" if mode == "CMYK" else "PNG"
    data = encode(converted, fmt)
    out = Image.open(io.BytesIO(replace_background(data, "x", seed=500, palette=FAR_PALETTE)))
    assert out.size == (WIDTH, HEIGHT)
    assert out.mode == "RGB"


def test_a_transparent_input_is_cut_out_by_its_own_alpha():
    """A subject already cut out (RGBA) keeps its alpha as the mask, even where it is backdrop-like."""
    photo = studio_photo().convert("RGBA")
    alpha = Image.new("L", photo.size, 0)
    ImageDraw.Draw(alpha).ellipse((40, 40, 140, 140), fill=255)  # over plain backdrop
    photo.putalpha(alpha)
    mask = subject_mask(photo)
    assert mask.getpixel((90, 90)) == 255
    assert mask.getpixel((200, 120)) == 0  # the red box, transparent here, is not subject


def test_a_picture_without_a_subject_falls_back_to_a_centred_ellipse():
    plain = Image.new("RGB", (300, 200), (120, 160, 200))
    mask = subject_mask(plain)
    assert mask.getpixel((150, 100)) == 255
    assert mask.getpixel((2, 2)) == 0
    assert mask.getpixel((297, 197)) == 0


def test_a_subject_filling_the_frame_falls_back_to_a_centred_ellipse():
    busy = Image.effect_mandelbrot((300, 200), (-2.0, -1.0, 1.0, 1.0), 60).convert("RGB")
    noisy = busy.filter(ImageFilter.GaussianBlur(1))
    mask = subject_mask(noisy)
    assert mask.getpixel((150, 100)) == 255
    assert mask.getpixel((2, 2)) == 0


def test_a_large_jpeg_keeps_its_size_and_type():
    photo = studio_photo().resize((1024, 1024))
    data = encode(photo, "JPEG", quality=90)
    out = replace_background(data, "a sunny beach at noon", seed=777, palette=None, output_format="jpeg")
    with Image.open(io.BytesIO(out)) as result:
        assert (result.format, result.size) == ("JPEG", (1024, 1024))
