"""The subject at work size: what the backdrop, grown from the border, does not reach."""

from __future__ import annotations

from PIL import Image, ImageChops, ImageFilter

from backdrop.emulator.segmentation.colours import TOLERANCE, backdrop_scores


def segment(small: Image.Image, table: ImageFilter.Color3DLUT) -> Image.Image:
    """The subject at work size: what the backdrop, grown from the border, does not reach.

    The backdrop grows through pixels of a backdrop colour that are no busier than the border's
    backdrop is (edges and texture stop it: subjects are sharp where backdrops are plain or out
    of focus), and through near-backdrop pixels, shadows included, whose colour drifts only slowly."""
    width, height = small.size
    plain, shadowed = backdrop_scores(small, table)
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


def _texture(small: Image.Image) -> Image.Image:
    """ "L": the largest colour change within each pixel's 3x3 neighbourhood."""
    ranges = [
        ImageChops.subtract(
            channel.filter(ImageFilter.MaxFilter(3)), channel.filter(ImageFilter.MinFilter(3))
        )
        for channel in small.split()
    ]
    return ImageChops.lighter(ImageChops.lighter(ranges[0], ranges[1]), ranges[2])


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


def _unreached(reached: bytearray, width: int, height: int) -> Image.Image:
    """The pixels a flood over the padded picture did not reach, as a 0/255 mask."""
    flooded = Image.frombytes("L", (width + 2, height + 2), bytes(reached.translate(_TO_WHITE)))
    return ImageChops.invert(flooded.crop((1, 1, width + 1, height + 1)))


def _tidy(subject: Image.Image) -> Image.Image:
    """Open (drop threads and specks), close (mend nicks), then keep only sizeable pieces."""
    subject = subject.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))
    subject = subject.filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.MinFilter(3))
    return _drop_specks(subject)


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
