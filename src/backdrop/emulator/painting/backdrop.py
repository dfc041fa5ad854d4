"""Painting the new background from the colour scheme and the seed, and a subject's contact shadow."""

from __future__ import annotations

import json
import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from backdrop.emulator.imaging import RGB
from backdrop.emulator.painting.schemes import luma, mix, palette_scheme, pick, prompt_scheme, shade

# Long side of the canvas the backdrop is painted on.
PAINT_SIZE = 480


def draw_backdrop(
    size: tuple[int, int], prompt: str, *, seed: int | None, palette: dict | None
) -> Image.Image:
    """A wall (and perhaps a tabletop) with a spotlight, soft shapes and bokeh, in the palette's
    colours (or the prompt's), laid out by the seed."""
    scheme = palette_scheme(palette) or prompt_scheme(prompt)
    identity = json.dumps([seed, prompt, palette], sort_keys=True, default=str)
    rng = random.Random(identity)
    width, height = size
    scale = min(1.0, PAINT_SIZE / max(width, height))
    canvas = _paint((max(16, round(width * scale)), max(16, round(height * scale))), scheme, rng)
    return canvas if canvas.size == size else canvas.resize(size, Image.Resampling.BICUBIC)


def _paint(size: tuple[int, int], scheme: list[tuple[RGB, float]], rng: random.Random) -> Image.Image:
    width, height = size
    short = min(width, height)
    colours = [colour for colour, _ in scheme]
    weights = [weight for _, weight in scheme]
    by_light = sorted(colours, key=luma)
    # The main colour: the heaviest member of the palette, or the seed's choice among equals.
    main = max(scheme, key=lambda item: item[1])[0] if len(set(weights)) > 1 else rng.choice(colours)
    others = [c for c in colours if c != main] or [main]

    # The wall: a gradient between the main colour and a neighbour, at an angle of the seed's.
    far = rng.choice(others)
    top, low = (mix(main, far, 0.35), main) if rng.random() < 0.5 else (main, mix(main, far, 0.35))
    canvas = _gradient(size, shade(top, rng.uniform(-0.18, 0.05)), low, rng.uniform(-30, 30))

    # Large, very soft shapes of the other colours: the room out of focus.
    for _ in range(rng.randint(2, 4)):
        radius = rng.uniform(0.25, 0.5) * max(width, height)
        centre = (rng.uniform(0, width), rng.uniform(0, height * 0.8))
        _soft_disc(canvas, centre, radius, pick(scheme, rng), rng.randint(50, 110), radius * 0.35)

    # A tabletop, or a seamless sweep that only darkens towards the floor.
    horizon = None
    if rng.random() < 0.55:
        horizon = height * rng.uniform(0.6, 0.78)
        floor_colour = shade(rng.choice([main, by_light[0], by_light[-1]]), rng.uniform(-0.25, 0.1))
        floor = _gradient(size, shade(floor_colour, 0.12), shade(floor_colour, -0.2), 0)
        edge = Image.new("L", size, 0)
        ImageDraw.Draw(edge).rectangle((0, horizon, width, height), fill=255)
        canvas = Image.composite(
            floor, canvas, edge.filter(ImageFilter.GaussianBlur(max(1.0, short * 0.012)))
        )

    # A spotlight behind the subject.
    light = shade(by_light[-1], 0.2)
    glow = _radial(
        size, (width * rng.uniform(0.35, 0.65), height * rng.uniform(0.3, 0.5)), 0.75 * width, 0.65 * height
    )
    canvas = Image.composite(Image.new("RGB", size, light), canvas, glow.point(lambda v: v * 30 // 100))

    # Bokeh: lighter discs, mostly above the tabletop, with a brighter rim.
    for _ in range(rng.randint(9, 18)):
        radius = rng.uniform(0.025, 0.085) * short
        centre = (rng.uniform(0, width), rng.uniform(0, horizon or height))
        colour = mix(pick(scheme, rng), (255, 255, 255), rng.uniform(0.25, 0.55))
        _soft_disc(canvas, centre, radius, colour, rng.randint(45, 115), max(0.6, radius * 0.08), rim=True)

    # A gentle vignette.
    corners = ImageChops.invert(_radial(size, (width / 2, height / 2), 0.9 * width, 0.9 * height))
    return Image.composite(
        canvas.point(lambda v: v * 82 // 100), canvas, corners.point(lambda v: v * 60 // 100)
    )


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB, angle: float) -> Image.Image:
    ramp = Image.linear_gradient("L").resize((512, 512)).rotate(angle, resample=Image.Resampling.BILINEAR)
    ramp = ramp.crop((128, 128, 384, 384)).resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)


def _radial(size: tuple[int, int], centre: tuple[float, float], rx: float, ry: float) -> Image.Image:
    """ "L": 255 at the centre, fading to 0 at the ellipse of radii rx, ry."""
    spot = ImageChops.invert(Image.radial_gradient("L"))  # 255 in the middle, 0 at radius 128
    spot = spot.resize((max(1, round(2 * rx)), max(1, round(2 * ry))), Image.Resampling.BILINEAR)
    canvas = Image.new("L", size, 0)
    canvas.paste(spot, (round(centre[0] - rx), round(centre[1] - ry)))
    return canvas


def _soft_disc(
    canvas: Image.Image,
    centre: tuple[float, float],
    radius: float,
    colour: RGB,
    opacity: int,
    blur: float,
    *,
    rim: bool = False,
) -> None:
    """Lay a blurred disc of the colour on the canvas, in place, touching only its neighbourhood."""
    margin = radius + 3 * blur + 2
    box = (
        max(0, int(centre[0] - margin)),
        max(0, int(centre[1] - margin)),
        min(canvas.width, int(centre[0] + margin) + 1),
        min(canvas.height, int(centre[1] + margin) + 1),
    )
    if box[0] >= box[2] or box[1] >= box[3]:
        return
    mask = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    x, y = centre[0] - box[0], centre[1] - box[1]
    draw = ImageDraw.Draw(mask)
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=opacity)
    if rim and radius > 3:
        draw.ellipse(
            (x - radius, y - radius, x + radius, y + radius),
            outline=min(255, opacity + 50),
            width=max(1, round(radius * 0.08)),
        )
    mask = mask.filter(ImageFilter.GaussianBlur(blur))
    region = canvas.crop(box)
    canvas.paste(Image.composite(Image.new("RGB", region.size, colour), region, mask), box[:2])


def with_contact_shadow(backdrop: Image.Image, work_mask: Image.Image) -> Image.Image:
    """A soft shadow under a subject that stands inside the picture, as on a studio floor."""
    box = work_mask.point(lambda v: 255 if v >= 128 else 0).getbbox()
    if box is None or box[3] >= work_mask.height - 1:
        return backdrop
    left, _, right, bottom = box
    span = right - left
    centre = (left + right) / 2
    shadow = Image.new("L", work_mask.size, 0)
    ImageDraw.Draw(shadow).ellipse(
        (centre - span * 0.45, bottom - span * 0.08, centre + span * 0.45, bottom + span * 0.03), fill=150
    )
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(1.0, span * 0.05)))
    shadow = shadow.resize(backdrop.size, Image.Resampling.BILINEAR)
    return Image.composite(backdrop.point(lambda v: v * 45 // 100), backdrop, shadow)


# -- painting the new background -------------------------------------------------------------------
