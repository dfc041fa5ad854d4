"""The subject's mask: from the input's own alpha, the segmentation, or a soft ellipse."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from backdrop.emulator.imaging import band_range
from backdrop.emulator.segmentation.colours import (
    TOLERANCE,
    Cluster,
    backdrop_clusters,
    backdrop_scores,
    chebyshev,
    score_table,
)
from backdrop.emulator.segmentation.grow import segment

# Long side of the copy the subject is found on.
WORK_SIZE = 224
# Share of the picture the subject must cover for the segmentation to be believed.
MIN_SUBJECT, MAX_SUBJECT = 0.02, 0.95


@dataclass(frozen=True)
class Cutout:
    mask: Image.Image  # full size, "L", 255 subject
    work_mask: Image.Image  # the same at work size, hard-edged
    stands: bool  # a found subject (not a fallback) that can cast a shadow


def cut_out(source: Image.Image, picture: Image.Image) -> Cutout:
    alpha = _own_alpha(source)
    if alpha is not None:
        work = alpha.resize(_work_size(alpha.size), Image.Resampling.BOX)
        return Cutout(alpha, work.point(lambda value: 255 if value >= 128 else 0), True)
    small = picture.resize(_work_size(picture.size), Image.Resampling.BOX, reducing_gap=2.0)
    small = small.filter(ImageFilter.MedianFilter(3))
    clusters = backdrop_clusters(small)
    table = score_table(clusters)
    work_mask = segment(small, table)
    if not _believable(work_mask, clusters):
        ellipse = _ellipse_mask(picture.size)
        return Cutout(ellipse, ellipse.resize(small.size, Image.Resampling.BOX), False)
    return Cutout(_full_size_mask(picture, work_mask, table), work_mask, True)


def _own_alpha(image: Image.Image) -> Image.Image | None:
    """The input's own alpha, when it really cuts something out."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = image.getchannel("A")
    elif image.mode == "P" and "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
    else:
        return None
    low, _ = band_range(alpha)
    if low > 128:
        return None
    opaque = _share(alpha.point(lambda value: 255 if value >= 128 else 0))
    return alpha if MIN_SUBJECT <= opaque <= 0.995 else None


# -- finding the subject ---------------------------------------------------------------------------


def _believable(subject: Image.Image, clusters: list[Cluster]) -> bool:
    """Whether the segmentation can be shown: not (almost) nothing or everything, and, when the
    border is a busy mix of colours (a scene, not a backdrop), not a small, ragged or
    frame-filling cut, which is what subject colours mistaken for backdrop give."""
    share = _share(subject)
    if not MIN_SUBJECT <= share <= MAX_SUBJECT:
        return False
    colours = [cluster.colour for cluster in clusters]
    spread = max((chebyshev(a, b) for a in colours for b in colours), default=0)
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
        colour_says = backdrop_scores(picture, table)[1].point(lambda v: 255 if v > TOLERANCE else 0)
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
