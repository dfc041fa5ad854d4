"""The emulator's picture: the input's subject kept, its background replaced, by classical means.

No model weights can be downloaded here, so this is not Ideogram. The subject is told from the
background by image processing alone, on a small copy of the picture:

1. the backdrop's colours are learnt from the image border (a few colour clusters, each with a
   tolerance from its own spread; colours seen only along the bottom are taken for a subject
   cut by the frame, not backdrop);
2. the background is what can be reached from the border through calm, backdrop-like pixels (a
   flood fill that also follows slow colour drifts and soft shadows, so gradients, vignettes and
   cast shadows go too), so backdrop-coloured pixels enclosed by the subject stay subject;
3. the subject is cleaned (morphology, specks dropped), its edge refined on the full-size picture
   by the same colour test, then feathered. When that finds almost nothing or almost everything,
   or a ragged cut of a busy scene, a soft centred ellipse stands in; when the input has real
   transparency, its alpha is the mask.

The new background is drawn from the palette (or words and hash of the prompt) and the seed: a
gradient wall, perhaps a tabletop, a spotlight, soft shapes and bokeh, and a contact shadow
under a subject that stands in the picture. The same seed, prompt and palette give the same bytes.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import json
import random
import re
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

# Colours of the documented palette presets, our reading of their names.
PRESET_COLOURS = {
    "EMBER": ["#3b0a0a", "#b23a12", "#f29e4c"],
    "FRESH": ["#e8f6ef", "#7ed6a5", "#2f9c95"],
    "JUNGLE": ["#0b3d20", "#2e7d32", "#a5d66b"],
    "MAGIC": ["#2b1055", "#7597de", "#d16ba5"],
    "MELON": ["#fdf0d5", "#f79d84", "#7fb069"],
    "MOSAIC": ["#264653", "#e9c46a", "#e76f51"],
    "PASTEL": ["#fde2e4", "#cddafd", "#e2ece9"],
    "ULTRAMARINE": ["#03045e", "#0077b6", "#90e0ef"],
}
FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}

# Long side of the copy the subject is found on, and of the canvas the backdrop is painted on.
WORK_SIZE = 224
PAINT_SIZE = 480
# Where a cluster's tolerance falls on the 0–255 backdrop score (255 is three tolerances away).
TOLERANCE = 85
# Share of the picture the subject must cover for the segmentation to be believed.
MIN_SUBJECT, MAX_SUBJECT = 0.02, 0.95
# Colours that the prompt's words suggest, when no palette is given.
PROMPT_HINTS: list[tuple[tuple[str, ...], list[str]]] = [
    (("sunset", "dusk", "sunrise", "dawn"), ["#2d1b4e", "#c0466d", "#f6a35c"]),
    (("beach", "sand", "summer", "tropical"), ["#7cc6d6", "#f4e1c1", "#e9c89b"]),
    (("ocean", "sea", "underwater", "lake", "pool"), ["#0b4f6c", "#20a4c9", "#b8e3ec"]),
    (
        ("forest", "jungle", "garden", "leaf", "leaves", "plant", "moss", "grass"),
        ["#17361f", "#3f7d3a", "#a9cf7f"],
    ),
    (("night", "space", "galaxy", "stars", "midnight"), ["#070b24", "#1d2b64", "#6a5acd"]),
    (("snow", "winter", "ice", "frost", "christmas"), ["#8fb3d1", "#cfe0ef", "#f3f7fb"]),
    (("marble", "studio", "white", "minimal", "clean", "seamless"), ["#c9c6bf", "#e3e1dc", "#f5f4f1"]),
    (("wood", "wooden", "rustic", "kitchen", "cafe", "coffee", "table"), ["#3e2a1e", "#8a5a3b", "#d8b48a"]),
    (("desert", "dune", "terracotta", "clay"), ["#a0522d", "#c98e4f", "#f0d9b5"]),
    (("neon", "cyber", "cyberpunk", "club", "party"), ["#120024", "#ff2e88", "#21d4fd"]),
    (("autumn", "fall", "harvest", "pumpkin"), ["#5a1e0e", "#c4551b", "#f2b33d"]),
    (("sky", "cloud", "clouds", "air"), ["#4a90d9", "#a7cdf2", "#f2f7fd"]),
    (("pink", "rose", "blush", "valentine", "romantic"), ["#b5485d", "#f4a6b8", "#fde2e8"]),
    (("black", "dark", "luxury", "noir", "elegant"), ["#0e0e10", "#2a2a30", "#8c7853"]),
    (("gold", "golden", "festive"), ["#3a2a0a", "#b8860b", "#f5d77a"]),
]

RGB = tuple[int, int, int]


def replace_background(
    image_bytes: bytes,
    prompt: str,
    *,
    seed: int | None,
    palette: dict | None,
    output_format: str = "png",
) -> bytes:
    source = _open(image_bytes)
    picture = _as_rgb(source)
    cutout = _cut_out(source, picture)
    backdrop = draw_backdrop(picture.size, prompt, seed=seed, palette=palette)
    if cutout.stands:
        backdrop = _with_contact_shadow(backdrop, cutout.work_mask)
    result = Image.composite(picture, backdrop, cutout.mask)
    out = io.BytesIO()
    fmt = FORMATS[output_format]
    if fmt == "PNG":
        result.save(out, format=fmt, compress_level=3)
    elif fmt == "JPEG":
        result.save(out, format=fmt, quality=90)
    else:
        result.save(out, format=fmt, quality=88, method=4)
    return out.getvalue()


def subject_mask(image: Image.Image) -> Image.Image:
    """White where the subject is, black where the background is, softened at the edge."""
    return _cut_out(image, _as_rgb(image)).mask


# -- reading the input -----------------------------------------------------------------------------


def _open(image_bytes: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(image_bytes))
    image.load()
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, TypeError, KeyError, SyntaxError):
        return image  # a broken EXIF block: keep the picture as stored


def _as_rgb(image: Image.Image) -> Image.Image:
    """The picture as 8-bit RGB, whatever its mode (L, P, RGBA, CMYK, 16-bit grey, float)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        low, high = image.getextrema()
        span = (high - low) or 1
        grey = image.convert("F").point(lambda value: (value - low) * (255.0 / span)).convert("L")
        return grey.convert("RGB")
    if image.mode in ("P", "PA", "LA", "La", "RGBa", "1"):
        image = image.convert("RGBA")
    return image.convert("RGB")


def _alpha(image: Image.Image) -> Image.Image | None:
    """The input's own alpha, when it really cuts something out."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = image.getchannel("A")
    elif image.mode == "P" and "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
    else:
        return None
    low, _ = alpha.getextrema()
    if low > 128:
        return None
    opaque = _share(alpha.point(lambda value: 255 if value >= 128 else 0))
    return alpha if MIN_SUBJECT <= opaque <= 0.995 else None


# -- finding the subject ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cutout:
    mask: Image.Image  # full size, "L", 255 subject
    work_mask: Image.Image  # the same at work size, hard-edged
    stands: bool  # a found subject (not a fallback) that can cast a shadow


@dataclass(frozen=True)
class _Cluster:
    colour: RGB
    tolerance: float


def _cut_out(source: Image.Image, picture: Image.Image) -> _Cutout:
    alpha = _alpha(source)
    if alpha is not None:
        work = alpha.resize(_work_size(alpha.size), Image.Resampling.BOX)
        return _Cutout(alpha, work.point(lambda value: 255 if value >= 128 else 0), True)
    small = picture.resize(_work_size(picture.size), Image.Resampling.BOX, reducing_gap=2.0)
    small = small.filter(ImageFilter.MedianFilter(3))
    clusters = _backdrop_clusters(small)
    table = _score_table(clusters)
    work_mask = _segment(small, table)
    if not _believable(work_mask, clusters):
        ellipse = _ellipse_mask(picture.size)
        return _Cutout(ellipse, ellipse.resize(small.size, Image.Resampling.BOX), False)
    return _Cutout(_full_size_mask(picture, work_mask, table), work_mask, True)


def _believable(subject: Image.Image, clusters: list[_Cluster]) -> bool:
    """Whether the segmentation can be shown: not (almost) nothing or everything, and, when the
    border is a busy mix of colours (a scene, not a backdrop), not a small, ragged or
    frame-filling cut, which is what subject colours mistaken for backdrop give."""
    share = _share(subject)
    if not MIN_SUBJECT <= share <= MAX_SUBJECT:
        return False
    colours = [cluster.colour for cluster in clusters]
    spread = max((_chebyshev(a, b) for a in colours for b in colours), default=0)
    if spread <= 72:
        return True
    width, height = subject.size
    area = share * width * height
    edge = _share(ImageChops.subtract(subject, subject.filter(ImageFilter.MinFilter(3)))) * width * height
    frame = Image.new("L", subject.size, 255)
    frame.paste(0, (1, 1, width - 1, height - 1))
    touching = _share(ImageChops.darker(frame, subject)) * width * height / (2 * (width + height))
    return share >= 0.15 and touching <= 0.3 and edge <= 6 * area**0.5


def _work_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, WORK_SIZE / max(width, height))
    return max(8, round(width * scale)), max(8, round(height * scale))


def _share(mask: Image.Image) -> float:
    """The share of a 0/255 mask that is white."""
    histogram = mask.histogram()
    total = sum(histogram) or 1
    return sum(count * value for value, count in enumerate(histogram)) / (255 * total)


def _border_samples(small: Image.Image) -> list[tuple[RGB, int]]:
    """The colours of a thin band around the picture, where a photo's backdrop shows, each with
    its edge: 0 top, 1 bottom, 2 left, 3 right."""
    width, height = small.size
    band = max(1, round(min(width, height) * 0.02))
    data = small.tobytes()
    samples: list[tuple[RGB, int]] = []
    for y in range(height):
        if y < band or y >= height - band:
            edges = [(x, 0 if y < band else 1) for x in range(width)]
        else:
            edges = [(x, 2) for x in range(band)] + [(x, 3) for x in range(width - band, width)]
        for x, edge in edges:
            i = 3 * (y * width + x)
            samples.append(((data[i], data[i + 1], data[i + 2]), edge))
    return samples


def _backdrop_clusters(small: Image.Image, k: int = 6) -> list[_Cluster]:
    """k-means of the border colours, keeping the clusters that look like backdrop: seen along
    the top, or on both sides, or on much of the border. A colour found only at the bottom (and
    perhaps one side) is more likely a subject cut by the frame: a person's body, a table's edge."""
    samples = _border_samples(small)
    colours = [colour for colour, _ in samples]
    centres, nearest = _kmeans(colours, k)
    per_edge = [0, 0, 0, 0]
    counts = [[0, 0, 0, 0] for _ in centres]
    for (_, edge), j in zip(samples, nearest, strict=True):
        per_edge[edge] += 1
        counts[j][edge] += 1
    candidates = []
    for j, cluster in enumerate(_clusters(colours, centres, nearest)):
        if cluster is None:
            continue
        top, _, left, right = (counts[j][e] / max(1, per_edge[e]) for e in range(4))
        seen = sum(counts[j])
        backdrop_like = top >= 0.08 or (left >= 0.08 and right >= 0.08) or seen >= 0.3 * len(samples)
        candidates.append((backdrop_like, seen, cluster))
    kept = [cluster for backdrop_like, _, cluster in candidates if backdrop_like]
    if not kept and candidates:
        kept = [max(candidates, key=lambda item: item[1])[2]]
    return kept


def _kmeans(colours: list[RGB], k: int, rounds: int = 8) -> tuple[list[RGB], list[int]]:
    """Deterministic k-means (Chebyshev distance), started from quantiles of brightness."""
    by_luma = sorted(colours, key=lambda c: (299 * c[0] + 587 * c[1] + 114 * c[2], c))
    centres = [by_luma[(2 * j + 1) * len(by_luma) // (2 * k)] for j in range(k)]
    nearest: list[int] = []
    for _ in range(rounds):
        nearest = []
        sums = [[0, 0, 0, 0] for _ in centres]
        for r, g, b in colours:
            best, choice = 256, 0
            for j, (cr, cg, cb) in enumerate(centres):
                distance = max(abs(r - cr), abs(g - cg), abs(b - cb))
                if distance < best:
                    best, choice = distance, j
            nearest.append(choice)
            total = sums[choice]
            total[0] += r
            total[1] += g
            total[2] += b
            total[3] += 1
        new = [
            (round(t[0] / t[3]), round(t[1] / t[3]), round(t[2] / t[3])) if t[3] else centres[j]
            for j, t in enumerate(sums)
        ]
        if new == centres:
            break
        centres = new
    return centres, nearest


def _clusters(colours: list[RGB], centres: list[RGB], nearest: list[int]) -> list[_Cluster | None]:
    """Each centre as a cluster whose tolerance grows with its spread; None for the rare ones."""
    counts = [0] * len(centres)
    spreads = [0.0] * len(centres)
    for colour, j in zip(colours, nearest, strict=True):
        counts[j] += 1
        spreads[j] += _chebyshev(colour, centres[j])
    return [
        _Cluster(centre, min(50.0, max(22.0, 14.0 + 1.5 * spreads[j] / counts[j])))
        if counts[j] >= 0.04 * len(colours)
        else None
        for j, centre in enumerate(centres)
    ]


def _chebyshev(a: RGB, b: RGB) -> int:
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]), abs(a[2] - b[2]))


def _score_table(clusters: list[_Cluster]) -> ImageFilter.Color3DLUT:
    """A 3D lookup table giving, for any colour, two backdrop scores (red and green channels):
    85 where the colour is exactly at a cluster's tolerance (255 at three times it), lower when it
    is more backdrop-like: by colour alone, and by colour once a shadow (the same colour, darker)
    is allowed."""

    def score(r: float, g: float, b: float) -> tuple[float, float, float]:
        colour = (r * 255, g * 255, b * 255)
        plain = shadowed = 3.0
        for cluster in clusters:
            cr, cg, cb = cluster.colour
            plain = min(plain, _distance(colour, cr, cg, cb) / cluster.tolerance)
            energy = cr * cr + cg * cg + cb * cb
            if energy > 3 * 60 * 60:
                dim = min(1.0, max(0.35, (colour[0] * cr + colour[1] * cg + colour[2] * cb) / energy))
                shadowed = min(shadowed, _distance(colour, cr * dim, cg * dim, cb * dim) / cluster.tolerance)
        return min(1.0, plain / 3), min(1.0, min(plain, shadowed) / 3), 0.0

    return ImageFilter.Color3DLUT.generate(25, score)


def _backdrop_scores(picture: Image.Image, table: ImageFilter.Color3DLUT) -> tuple[Image.Image, Image.Image]:
    """The two backdrop scores of every pixel, as "L" maps: by colour, and with shadows allowed."""
    scores = picture.filter(table)
    return scores.getchannel("R"), scores.getchannel("G")


def _distance(colour: tuple[float, float, float], r: float, g: float, b: float) -> float:
    return max(abs(colour[0] - r), abs(colour[1] - g), abs(colour[2] - b))


def _texture(small: Image.Image) -> Image.Image:
    """ "L": the largest colour change within each pixel's 3x3 neighbourhood."""
    ranges = [
        ImageChops.subtract(
            channel.filter(ImageFilter.MaxFilter(3)), channel.filter(ImageFilter.MinFilter(3))
        )
        for channel in small.split()
    ]
    return ImageChops.lighter(ImageChops.lighter(ranges[0], ranges[1]), ranges[2])


def _segment(small: Image.Image, table: ImageFilter.Color3DLUT) -> Image.Image:
    """The subject at work size: what the backdrop, grown from the border, does not reach.

    The backdrop grows through pixels of a backdrop colour that are no busier than the border's
    backdrop is (edges and texture stop it: subjects are sharp where backdrops are plain or out
    of focus), and through near-backdrop pixels, shadows included, whose colour drifts only slowly."""
    width, height = small.size
    plain, shadowed = _backdrop_scores(small, table)
    texture = _texture(small)
    busy = _busiest_backdrop(plain, texture)
    calm = texture.point(lambda v: 1 if v <= busy else 0)
    # A soft shadow's own slope is texture too: allow it a little more.
    fairly_calm = texture.point(lambda v: 1 if v <= busy + 8 else 0)
    padded_width, padded_height = width + 2, height + 2
    # Backdrop-coloured and calm; or so close to a backdrop colour that the texture does not matter.
    strong = ImageChops.lighter(
        ImageChops.darker(plain.point(lambda v: 1 if v <= TOLERANCE else 0), calm),
        plain.point(lambda v: 1 if v <= TOLERANCE // 2 else 0),
    )
    # Near the backdrop's colours (within three tolerances: a sky darkening to the zenith), or a
    # shadow cast on it; and calm, so that a textured floor or lawn of a similar grey is not taken.
    weak = ImageChops.lighter(
        ImageChops.darker(plain.point(lambda v: 1 if v < 255 else 0), calm),
        ImageChops.darker(shadowed.point(lambda v: 1 if v <= TOLERANCE else 0), fairly_calm),
    )
    colours = Image.new("RGB", (padded_width, padded_height))
    colours.paste(small, (1, 1))
    background = _grow(
        _padded(strong, padded_width, padded_height),
        _padded(weak, padded_width, padded_height),
        colours.tobytes(),
        padded_width,
        _ring(width, height),
        step=5,
    )
    subject = _unreached(background, width, height)
    # Thin rims of shadow left along the subject's foot: shadow-coloured, and gone in a 5x5 opening.
    opened = subject.filter(ImageFilter.MinFilter(5)).filter(ImageFilter.MaxFilter(5))
    shadow_like = shadowed.point(lambda v: 255 if v <= TOLERANCE else 0)
    rims = ImageChops.darker(shadow_like, ImageChops.subtract(subject, opened))
    subject = ImageChops.subtract(subject, rims)
    return _tidy(subject)


def _unreached(reached: bytearray, width: int, height: int) -> Image.Image:
    """The pixels a flood over the padded picture did not reach, as a 0/255 mask."""
    flooded = Image.frombytes("L", (width + 2, height + 2), bytes(reached.translate(_TO_WHITE)))
    return ImageChops.invert(flooded.crop((1, 1, width + 1, height + 1)))


def _tidy(subject: Image.Image) -> Image.Image:
    """Open (drop threads and specks), close (mend nicks), then keep only sizeable pieces."""
    subject = subject.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))
    subject = subject.filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.MinFilter(3))
    return _drop_specks(subject)


def _busiest_backdrop(plain: Image.Image, texture: Image.Image) -> int:
    """How much texture the backdrop itself has: a high percentile of it along the border."""
    width, height = plain.size
    ring = Image.new("L", plain.size, 255)
    band = max(1, round(min(width, height) * 0.02))
    ring.paste(0, (band, band, width - band, height - band))
    on_backdrop = ImageChops.multiply(ring, plain.point(lambda v: 255 if v <= TOLERANCE else 0))
    histogram = texture.histogram(mask=on_backdrop)
    total = sum(histogram)
    if not total:
        return 255
    running = 0
    for value, count in enumerate(histogram):
        running += count
        if running >= 0.9 * total:
            return min(255, max(12, round(value * 1.5) + 4))
    return 255


_TO_WHITE = bytes([0, *([255] * 255)])


def _padded(mask: Image.Image, width: int, height: int) -> bytes:
    """The mask's bytes inside a one-pixel frame of zeros, so neighbours never fall outside."""
    frame = Image.new("L", (width, height), 0)
    frame.paste(mask, (1, 1))
    return frame.tobytes()


def _ring(width: int, height: int) -> list[int]:
    """Indices, in the padded picture, of the original picture's outermost pixels."""
    row = width + 2
    top = [row + 1 + x for x in range(width)]
    bottom = [row * height + 1 + x for x in range(width)]
    sides = [row * (y + 1) + 1 for y in range(height)] + [row * (y + 1) + width for y in range(height)]
    return top + bottom + sides


def _grow(strong: bytes, weak: bytes, colours: bytes, row: int, seeds: list[int], step: int) -> bytearray:
    """Flood from the seeds through backdrop-like pixels, and through near-backdrop pixels whose
    colour drifts only slowly from their flooded neighbour (gradients, vignettes, soft shadows)."""
    reached = bytearray(len(strong))
    stack = [i for i in seeds if strong[i]]
    for i in stack:
        reached[i] = 1
    offsets = (1, -1, row, -row)
    while stack:
        i = stack.pop()
        r, g, b = colours[3 * i], colours[3 * i + 1], colours[3 * i + 2]
        for offset in offsets:
            j = i + offset
            if reached[j]:
                continue
            if strong[j] or (
                weak[j]
                and abs(colours[3 * j] - r) <= step
                and abs(colours[3 * j + 1] - g) <= step
                and abs(colours[3 * j + 2] - b) <= step
            ):
                reached[j] = 1
                stack.append(j)
    return reached


def _drop_specks(subject: Image.Image) -> Image.Image:
    """Keep the pieces of the subject that matter: none smaller than a share of the largest."""
    width, height = subject.size
    row = width + 2
    data = _padded(subject.point(lambda v: 1 if v >= 128 else 0), row, height + 2)
    label = [0] * len(data)
    sizes = [0]
    for start in range(len(data)):
        if not data[start] or label[start]:
            continue
        sizes.append(0)
        current = len(sizes) - 1
        label[start] = current
        stack = [start]
        while stack:
            i = stack.pop()
            sizes[current] += 1
            for j in (i + 1, i - 1, i + row, i - row):
                if data[j] and not label[j]:
                    label[j] = current
                    stack.append(j)
    if len(sizes) == 1:
        return subject
    threshold = max(0.0015 * width * height, 0.008 * max(sizes))
    keep = bytes(255 if sizes[n] >= threshold else 0 for n in range(len(sizes)))
    if all(keep[1:]):
        return subject
    kept = bytes(keep[n] if n else 0 for n in label)
    return Image.frombytes("L", (row, height + 2), kept).crop((1, 1, width + 1, height + 1))


def _full_size_mask(
    picture: Image.Image, work_mask: Image.Image, table: ImageFilter.Color3DLUT
) -> Image.Image:
    """The work-size mask enlarged; near its edge, the full-size pixels' own colour decides."""
    size = picture.size
    scale = max(size) / max(work_mask.size)
    coarse = work_mask.filter(ImageFilter.GaussianBlur(0.9)).resize(size, Image.Resampling.BILINEAR)
    hard = coarse.point(lambda v: 255 if v >= 128 else 0)
    if scale <= 1.2:
        refined = hard
    else:
        band = coarse.point(lambda v: 255 if 6 < v < 249 else 0)
        colour_says = _backdrop_scores(picture, table)[1].point(lambda v: 255 if v > TOLERANCE else 0)
        refined = Image.composite(colour_says, hard, band).filter(ImageFilter.MedianFilter(3))
    feather = max(0.6, max(size) / 1100)
    soft = refined.filter(ImageFilter.GaussianBlur(feather))
    # Pull the soft edge a little inwards, so that less of the old backdrop shows as a halo.
    return soft.point(lambda v: 0 if v < 48 else 255 if v > 240 else round((v - 48) * 255 / 192))


def _ellipse_mask(size: tuple[int, int]) -> Image.Image:
    """The fallback subject: a soft centred ellipse, as a portrait vignette would cut it."""
    width, height = size
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse((width * 0.16, height * 0.08, width * 0.84, height * 0.96), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(max(1.0, max(size) / 60)))


def _with_contact_shadow(backdrop: Image.Image, work_mask: Image.Image) -> Image.Image:
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


def draw_backdrop(
    size: tuple[int, int], prompt: str, *, seed: int | None, palette: dict | None
) -> Image.Image:
    """A wall (and perhaps a tabletop) with a spotlight, soft shapes and bokeh, in the palette's
    colours (or the prompt's), laid out by the seed."""
    scheme = _palette_scheme(palette) or _prompt_scheme(prompt)
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
    by_light = sorted(colours, key=_luma)
    # The main colour: the heaviest member of the palette, or the seed's choice among equals.
    main = max(scheme, key=lambda item: item[1])[0] if len(set(weights)) > 1 else rng.choice(colours)
    others = [c for c in colours if c != main] or [main]

    # The wall: a gradient between the main colour and a neighbour, at an angle of the seed's.
    far = rng.choice(others)
    top, low = (_mix(main, far, 0.35), main) if rng.random() < 0.5 else (main, _mix(main, far, 0.35))
    canvas = _gradient(size, _shade(top, rng.uniform(-0.18, 0.05)), low, rng.uniform(-30, 30))

    # Large, very soft shapes of the other colours: the room out of focus.
    for _ in range(rng.randint(2, 4)):
        radius = rng.uniform(0.25, 0.5) * max(width, height)
        centre = (rng.uniform(0, width), rng.uniform(0, height * 0.8))
        _soft_disc(canvas, centre, radius, _pick(scheme, rng), rng.randint(50, 110), radius * 0.35)

    # A tabletop, or a seamless sweep that only darkens towards the floor.
    horizon = None
    if rng.random() < 0.55:
        horizon = height * rng.uniform(0.6, 0.78)
        floor_colour = _shade(rng.choice([main, by_light[0], by_light[-1]]), rng.uniform(-0.25, 0.1))
        floor = _gradient(size, _shade(floor_colour, 0.12), _shade(floor_colour, -0.2), 0)
        edge = Image.new("L", size, 0)
        ImageDraw.Draw(edge).rectangle((0, horizon, width, height), fill=255)
        canvas = Image.composite(
            floor, canvas, edge.filter(ImageFilter.GaussianBlur(max(1.0, short * 0.012)))
        )

    # A spotlight behind the subject.
    light = _shade(by_light[-1], 0.2)
    glow = _radial(
        size, (width * rng.uniform(0.35, 0.65), height * rng.uniform(0.3, 0.5)), 0.75 * width, 0.65 * height
    )
    canvas = Image.composite(Image.new("RGB", size, light), canvas, glow.point(lambda v: v * 30 // 100))

    # Bokeh: lighter discs, mostly above the tabletop, with a brighter rim.
    for _ in range(rng.randint(9, 18)):
        radius = rng.uniform(0.025, 0.085) * short
        centre = (rng.uniform(0, width), rng.uniform(0, horizon or height))
        colour = _mix(_pick(scheme, rng), (255, 255, 255), rng.uniform(0.25, 0.55))
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


def _palette_scheme(palette: dict | None) -> list[tuple[RGB, float]]:
    if not palette:
        return []
    if "name" in palette:
        return [(_rgb(hex_), 1.0) for hex_ in PRESET_COLOURS[palette["name"]]]
    return [(_rgb(m["color_hex"]), float(m.get("color_weight", 1.0))) for m in palette["members"]]


def _prompt_scheme(prompt: str) -> list[tuple[RGB, float]]:
    """Colours the prompt's words suggest, else a harmony around a hue from the prompt's hash."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    words = re.findall(r"[a-z]+", prompt.lower())
    for word in words:
        for keys, hexes in PROMPT_HINTS:
            if word in keys:
                return [(_rgb(hex_), 1.0) for hex_ in hexes]
    hue = digest[0] / 255
    spread = 0.05 + digest[1] / 255 * 0.12
    saturation = 0.3 + digest[2] / 255 * 0.4
    scheme = []
    for j, (shift, lightness) in enumerate(((0.0, 0.45), (spread, 0.68), (-spread, 0.85))):
        jitter = (digest[3 + j] / 255 - 0.5) * 0.12
        r, g, b = colorsys.hls_to_rgb((hue + shift) % 1.0, min(0.92, lightness + jitter), saturation)
        scheme.append(((round(r * 255), round(g * 255), round(b * 255)), 1.0))
    return scheme


def _pick(scheme: list[tuple[RGB, float]], rng: random.Random) -> RGB:
    return rng.choices([colour for colour, _ in scheme], weights=[weight for _, weight in scheme])[0]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _shade(colour: RGB, amount: float) -> RGB:
    """Lighter towards white for a positive amount, darker towards black for a negative one."""
    return _mix(colour, (255, 255, 255), amount) if amount >= 0 else _mix(colour, (0, 0, 0), -amount)


def _luma(colour: RGB) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _rgb(hex_colour: str) -> RGB:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
