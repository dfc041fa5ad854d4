"""Renditions: the sizes and formats a storefront takes, made from a result already paid for.

What a rendition is, its key and its content type cost nothing to import: the sidecar checks
them before any paid call. Pillow is imported only by ``render``, when a result has renditions
to make, so the cold import of a plain pair stays as it was (docs/PERFORMANCE.md, figure 1a).

Choices this module makes (docs/REFERENCE.md#renditions):

- Neither ``width`` nor ``height``: the result's own size, in another format.
- ``fit``: ``contain`` (the default) fits inside the box, keeping the aspect, without padding;
  ``cover`` fills the box and crops the overflow, centred; ``pad`` fits inside the box and pads
  to exactly the box. ``cover`` and ``pad`` need both sides: with one, there is nothing to crop
  or pad.
- Never larger than the result: a box larger than it gives the result's size (``cover``: the
  largest centred crop of the box's aspect); only ``pad``'s canvas reaches the box.
- ``background``: fills the padding and whatever the result leaves transparent. Default: white
  for ``jpeg`` (which has no transparency, and refuses ``"transparent"``), transparent for
  ``png``, ``webp`` and ``avif``.
- ``quality``: refused for ``png`` (lossless). Default: 90 for ``jpeg`` and ``webp``, 75 (the
  encoder's own) for ``avif``.
"""

from __future__ import annotations

import io
import math
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, BinaryIO, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backdrop_fn.errors import InternalError
from backdrop_fn.images import MAX_PIXELS
from backdrop_fn.vocabulary import HEX_COLOUR

if TYPE_CHECKING:
    from PIL import Image

MAX_RENDITIONS = 8
MAX_SIDE = 8192
MAX_NAME_CHARS = 64
# Pillow's own choice for thumbnails: whole-pixel averaging (fast) down to twice the size, then a
# bicubic pass; indistinguishable from Lanczos all the way at a fraction of its time.
REDUCING_GAP = 2.0

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
TRANSPARENT = "transparent"
WHITE = "#ffffff"
# EXIF orientations that turn the picture a quarter: its width and height swap.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112


class RenditionFormat(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    AVIF = "avif"


class Fit(StrEnum):
    CONTAIN = "contain"
    COVER = "cover"
    PAD = "pad"


@dataclass(frozen=True)
class _Encoding:
    extension: str
    content_type: str
    pillow_format: str
    default_quality: int | None
    has_alpha: bool


_ENCODINGS = {
    RenditionFormat.PNG: _Encoding("png", "image/png", "PNG", None, True),
    RenditionFormat.JPEG: _Encoding("jpg", "image/jpeg", "JPEG", 90, False),
    RenditionFormat.WEBP: _Encoding("webp", "image/webp", "WEBP", 90, True),
    RenditionFormat.AVIF: _Encoding("avif", "image/avif", "AVIF", 75, True),
}


class Rendition(BaseModel):
    """One size and format of a result (CONTRACT.md §9); the module's docstring gives the defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str | None = None
    # Strict mode takes only enum members from Python; these take the JSON strings.
    format: RenditionFormat = Field(strict=False)
    width: int | None = None
    height: int | None = None
    fit: Fit = Field(Fit.CONTAIN, strict=False)
    background: str | None = None
    quality: int | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > MAX_NAME_CHARS:
            raise ValueError(f"must be at most {MAX_NAME_CHARS} characters, not {len(value)}")
        if not _NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} must be ASCII letters, digits, '.', '_' or '-', starting with a letter or "
                "digit (it becomes part of an S3 key)"
            )
        return value

    @field_validator("width", "height")
    @classmethod
    def _side(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_SIDE:
            raise ValueError(f"must be between 1 and {MAX_SIDE} pixels, not {value}")
        return value

    @field_validator("background")
    @classmethod
    def _background(cls, value: str | None) -> str | None:
        if value is not None and value != TRANSPARENT and not HEX_COLOUR.fullmatch(value):
            raise ValueError(f'must look like #rrggbb or be "transparent", not {value!r}')
        return value

    @field_validator("quality")
    @classmethod
    def _quality(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 100:
            raise ValueError(f"must be between 1 and 100, not {value}")
        return value

    @model_validator(mode="after")
    def _fits_its_format(self) -> Rendition:
        if self.background == TRANSPARENT and not _ENCODINGS[self.format].has_alpha:
            raise ValueError(
                'background: jpeg has no transparency; give a colour such as "#ffffff", or leave '
                "it out for white"
            )
        if self.quality is not None and self.format is RenditionFormat.PNG:
            raise ValueError("quality: png is lossless, so quality does not apply; leave it out")
        if self.fit is not Fit.CONTAIN and (self.width is None or self.height is None):
            raise ValueError(f"fit: {self.fit.value} needs both width and height (the box to fill)")
        return self


def check_renditions(renditions: Sequence[Rendition]) -> Sequence[Rendition]:
    """``renditions`` when they can all be written, else ``ValueError`` naming the problem.

    At most ``MAX_RENDITIONS``, and no two giving the same key (the same name, or the same box
    without a name, in formats with the same extension). Meant for a pydantic field validator,
    which turns the ``ValueError`` into the field's message. An empty list is allowed: it asks
    for no renditions, even when the stack has default ones.
    """
    if len(renditions) > MAX_RENDITIONS:
        raise ValueError(f"must hold at most {MAX_RENDITIONS} renditions, not {len(renditions)}")
    first_with: dict[str, int] = {}
    for index, rendition in enumerate(renditions):
        suffix = _key_suffix(rendition)
        if suffix in first_with:
            raise ValueError(
                f"[{index}] would be written at the same key as [{first_with[suffix]}] "
                f'("…@{suffix}"); give one of them another "name"'
            )
        first_with[suffix] = index
    return renditions


def rendition_label(rendition: Rendition) -> str:
    """What tells this rendition apart in its key: its name, or ``<width>x<height>`` (``auto``
    for a side not given). Also the value of the output object's ``rendition`` metadata."""
    if rendition.name is not None:
        return rendition.name
    return f"{rendition.width or 'auto'}x{rendition.height or 'auto'}"


def rendition_key(output_key: str, rendition: Rendition) -> str:
    """Where a rendition of the result at ``output_key`` is written (CONTRACT.md §9).

    ``shop/shoe-1.png`` → ``shop/shoe-1@2000x2000.jpg``; ``shop/shoe-1.v2.png`` named ``amazon`` →
    ``shop/shoe-1.v2@amazon.jpg``.
    """
    stem, _extension = posixpath.splitext(output_key)
    return f"{stem}@{_key_suffix(rendition)}"


def content_type(rendition: Rendition) -> str:
    """The ``Content-Type`` a rendition is written with."""
    return _ENCODINGS[rendition.format].content_type


def _key_suffix(rendition: Rendition) -> str:
    return f"{rendition_label(rendition)}.{_ENCODINGS[rendition.format].extension}"


# -- making them --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class _Geometry:
    """Where a rendition's pixels come from and where they go."""

    crop: tuple[float, float, float, float]  # the region of the result used
    size: tuple[int, int]  # that region, scaled
    canvas: tuple[int, int]  # the rendition's size: ``size`` but for ``pad``

    @property
    def scale(self) -> float:
        return self.size[0] / (self.crop[2] - self.crop[0])


def _geometry(width: int, height: int, rendition: Rendition) -> _Geometry:
    box_width, box_height = rendition.width, rendition.height
    if rendition.fit is Fit.COVER and box_width and box_height:
        # The largest centred region of the box's aspect, then scaled down to the box if larger.
        crop_width = min(width, height * box_width / box_height)
        crop_height = min(height, width * box_height / box_width)
        left, top = (width - crop_width) / 2, (height - crop_height) / 2
        scale = min(1.0, box_width / crop_width)
        size = _rounded(crop_width * scale, crop_height * scale)
        return _Geometry((left, top, left + crop_width, top + crop_height), size, size)
    scale = min(1.0, (box_width or math.inf) / width, (box_height or math.inf) / height)
    size = _rounded(width * scale, height * scale)
    canvas = (box_width or size[0], box_height or size[1]) if rendition.fit is Fit.PAD else size
    return _Geometry((0, 0, width, height), size, canvas)


def _rounded(width: float, height: float) -> tuple[int, int]:
    return max(1, round(width)), max(1, round(height))


def render(
    open: Callable[[], BinaryIO], renditions: Sequence[Rendition]
) -> Iterator[tuple[Rendition, RenderedImage]]:
    """Each rendition of the result ``open()`` reads, one at a time, in the order given.

    Memory: the result is decoded once (a JPEG only to the largest size any rendition needs) and
    held while the renditions are made from it; each rendition's pixels and bytes are let go as
    soon as the next one is asked for, so the caller should write each before asking for the next.
    Three renditions of a 24 MP PNG peak at about 165 MB above the idle process, 70 MB more than
    decoding it alone (docs/PERFORMANCE.md, figure 8). A result over the function's input limit
    (``images.MAX_PIXELS``, 64 MP: the API answers no larger than what it was sent) is not
    decoded: in a 512 MB function it could not be.

    Every rendition is in sRGB (converted from the result's own profile, if it has one), tagged
    with the sRGB profile, and carries no EXIF, XMP, comment or text: nothing of the input's
    metadata can reach it. The result's EXIF orientation, if any, is applied.

    Errors: a result Pillow cannot decode or over the limit, or a rendition it cannot encode, raises
    ``InternalError``
    (permanent: the same bytes fail the same way; the result itself is already kept and written).
    What ``open`` raises passes through unchanged.
    """
    if not renditions:
        return  # before Pillow is imported: a result without renditions never loads it
    from PIL import Image

    stream = open()
    try:
        with stream, Image.open(stream) as opened:
            source, profile = _decoded(opened, renditions)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InternalError(f"the result cannot be decoded for its renditions: {exc}") from None
    for rendition in renditions:
        geometry = _geometry(source.width, source.height, rendition)
        try:
            rendered = _rendered(source, profile, rendition, geometry)
        except (OSError, ValueError) as exc:
            raise InternalError(
                f"the {rendition_label(rendition)} rendition ({rendition.format.value}) cannot be made: {exc}"
            ) from None
        yield rendition, rendered
        del rendered


def _decoded(opened: Image.Image, renditions: Sequence[Rendition]) -> tuple[Image.Image, bytes | None]:
    """The result's pixels, upright, no larger than its renditions need; and its ICC profile.

    Every step works in place or lets the previous picture go: at most two full-size copies are
    alive at once, and only for a moment.
    """
    from PIL import ImageOps

    from backdrop_fn.srgb import has_alpha

    width, height = opened.size
    if width * height > MAX_PIXELS:
        raise ValueError(f"it is {width:,} x {height:,} pixels, over the limit of {MAX_PIXELS:,}")
    if opened.getexif().get(_ORIENTATION_TAG) in _QUARTER_TURNS:
        width, height = height, width
    needed = max(_geometry(width, height, rendition).scale for rendition in renditions)
    if opened.format == "JPEG" and needed < 1:
        # JPEG decodes at 1/2, 1/4 or 1/8 of its size almost for free, and never below the request.
        opened.draft(opened.mode, (math.ceil(opened.width * needed), math.ceil(opened.height * needed)))
    profile = opened.info.get("icc_profile") or None
    opened.load()
    ImageOps.exif_transpose(opened, in_place=True)
    if opened.mode == "RGBA":
        bands = cast(tuple[tuple[int, int], ...], opened.getextrema())
        alpha_low = bands[3][0]
        # Resizing RGBA premultiplies a copy of the whole picture each time: once is enough, and
        # none at all when every pixel is opaque.
        return opened.convert("RGB" if alpha_low == 255 else "RGBa"), profile
    if opened.mode not in ("RGB", "L", "LA", "CMYK"):
        return opened.convert("RGBA" if has_alpha(opened) else "RGB"), profile
    return opened, profile


def _rendered(
    source: Image.Image, profile: bytes | None, rendition: Rendition, geometry: _Geometry
) -> RenderedImage:
    from PIL import Image

    from backdrop_fn.image_metadata import srgb_profile
    from backdrop_fn.srgb import has_alpha, in_srgb, without_metadata

    encoding = _ENCODINGS[rendition.format]
    scaled = source.resize(
        geometry.size, Image.Resampling.BICUBIC, box=geometry.crop, reducing_gap=REDUCING_GAP
    )
    if scaled.mode == "RGBa":
        scaled = scaled.convert("RGBA")
    picture = in_srgb(scaled, profile)
    background = rendition.background or (TRANSPARENT if encoding.has_alpha else WHITE)
    if background != TRANSPARENT and (has_alpha(picture) or geometry.canvas != geometry.size):
        canvas = Image.new("RGB", geometry.canvas, background)
        canvas.paste(picture, _centred(geometry), picture if has_alpha(picture) else None)
        picture = canvas
    elif geometry.canvas != geometry.size:
        canvas = Image.new("RGBA", geometry.canvas, (0, 0, 0, 0))
        canvas.paste(picture, _centred(geometry))
        picture = canvas
    quality = rendition.quality or encoding.default_quality
    options = {} if quality is None else {"quality": quality}
    out = io.BytesIO()
    without_metadata(picture).save(out, format=encoding.pillow_format, icc_profile=srgb_profile(), **options)
    return RenderedImage(out.getvalue(), encoding.content_type, picture.width, picture.height)


def _centred(geometry: _Geometry) -> tuple[int, int]:
    return (geometry.canvas[0] - geometry.size[0]) // 2, (geometry.canvas[1] - geometry.size[1]) // 2
