"""The sidecar: one strict JSON object per image (docs/REFERENCE.md#the-sidecar), parsed before any paid call.

Every rule is checked here so that a sidecar bound to fail never reaches the API, and every
error names its field, because a typo silently ignored would cost the user a wrong image.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backdrop_fn.errors import InvalidSidecar
from backdrop_fn.renditions import Rendition, check_renditions
from backdrop_fn.sidecar_json import load_json
from backdrop_fn.style_references import style_reference_problem
from backdrop_fn.validation_messages import described
from backdrop_fn.vocabulary import HEX_COLOUR, MagicPrompt, RenderingSpeed

MAX_SIDECAR_BYTES = 64 * 1024
MAX_PROMPT_CHARS = 4000
SEED_MIN, SEED_MAX = 100, 999_999
MAX_STYLE_REFERENCES = 4
PALETTE_PRESETS = ("EMBER", "FRESH", "JUNGLE", "MAGIC", "MELON", "MOSAIC", "PASTEL", "ULTRAMARINE")
# Keys the function writes itself on the output object: a sidecar may not overwrite them.
RESERVED_METADATA_KEYS = frozenset(
    {
        "source-bucket",
        "source-key",
        "source-etag",
        "sidecar-key",
        "sidecar-etag",
        "prompt-sha256",
        "rendering-speed",
        "magic-prompt",
        "seed",
        "variant",
        "rendition",
    }
)
MAX_VARIANTS = 8
# S3's object tag rules: checked before paying, since S3 would refuse the output's write after it.
MAX_TAGS = 10
MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS = 128, 256

_STYLE_CODE = re.compile(r"[0-9A-Fa-f]{8}")
_METADATA_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Letters and digits in any script, spaces, and + - = . _ : / @
_TAG_TEXT = re.compile(r"[\w\s+\-=.:/@]*")
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class PaletteMember(BaseModel):
    model_config = _STRICT

    color_hex: str
    color_weight: float | None = None

    @field_validator("color_hex")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not HEX_COLOUR.fullmatch(value):
            raise ValueError(f"must look like #rrggbb, not {value!r}")
        return value

    @field_validator("color_weight")
    @classmethod
    def _weight(cls, value: float | None) -> float | None:
        if value is not None and not 0.05 <= value <= 1.0:
            raise ValueError(f"must be between 0.05 and 1.0, not {value}")
        return value


class ColorPalette(BaseModel):
    """Either a preset ``name`` or 1–8 ``members``, never both."""

    model_config = _STRICT

    name: str | None = None
    members: list[PaletteMember] | None = None

    @field_validator("name")
    @classmethod
    def _preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PALETTE_PRESETS:
            raise ValueError(f"must be one of {', '.join(PALETTE_PRESETS)}, not {value!r}")
        return value

    @field_validator("members")
    @classmethod
    def _member_count(cls, value: list[PaletteMember] | None) -> list[PaletteMember] | None:
        if value is not None and not 1 <= len(value) <= 8:
            raise ValueError(f"must hold 1 to 8 colours, not {len(value)}")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ColorPalette:
        if (self.name is None) == (self.members is None):
            raise ValueError('give either "name" (a preset) or "members" (your colours), not both or neither')
        return self


class CallFields(BaseModel):
    """What shapes one paid call: a sidecar's fields, which each of its variants may override."""

    model_config = _STRICT

    prompt: str
    # Strict mode takes only enum members from Python; these take the JSON strings.
    rendering_speed: RenderingSpeed = Field(RenderingSpeed.DEFAULT, strict=False)
    magic_prompt: MagicPrompt = Field(MagicPrompt.AUTO, strict=False)
    seed: int | None = None
    style_codes: list[str] | None = None
    style_reference_images: list[str] | None = None
    color_palette: ColorPalette | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("must be a string (leave it out to keep the sidecar's)")
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if any(ch < " " and ch not in "\t\n\r" for ch in value) or "\x7f" in value:
            raise ValueError("must not contain control characters (such as NUL)")
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(f"must be at most {MAX_PROMPT_CHARS:,} characters, not {len(value):,}")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        if value is not None and not SEED_MIN <= value <= SEED_MAX:
            raise ValueError(f"must be between {SEED_MIN} and {SEED_MAX}")
        return value

    @field_validator("style_codes")
    @classmethod
    def _style_codes(cls, value: list[str] | None) -> list[str] | None:
        for index, code in enumerate(value or ()):
            if not _STYLE_CODE.fullmatch(code):
                raise ValueError(f"[{index}] must be 8 hexadecimal digits, not {code!r}")
        return value

    @field_validator("style_reference_images")
    @classmethod
    def _style_references(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if len(value) > MAX_STYLE_REFERENCES:
            raise ValueError(f"must hold at most {MAX_STYLE_REFERENCES} images, not {len(value)}")
        for index, reference in enumerate(value):
            problem = style_reference_problem(reference)
            if problem:
                raise ValueError(f"[{index}] {problem}")
        return value

    @model_validator(mode="after")
    def _one_style_source(self) -> CallFields:
        if self.style_codes and self.style_reference_images:
            raise ValueError("style_codes and style_reference_images cannot be used together")
        return self


class Variant(CallFields):
    """One more call for the same pair: the sidecar's fields, but those given here.

    ``seed``, ``style_codes``, ``style_reference_images`` and ``color_palette`` may be null (a
    random seed, no style, no palette); the others must be values when given.
    """

    prompt: str | None = None  # type: ignore[assignment]
    rendering_speed: RenderingSpeed | None = Field(None, strict=False)  # type: ignore[assignment]
    magic_prompt: MagicPrompt | None = Field(None, strict=False)  # type: ignore[assignment]

    @field_validator("rendering_speed", "magic_prompt")
    @classmethod
    def _given(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be a string (leave it out to keep the sidecar's)")
        return value

    def overrides(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class Sidecar(CallFields):
    metadata: dict[str, str] | None = None
    variants: list[Variant] | None = None
    # None: the stack's DEFAULT_RENDITIONS; an empty list: none at all.
    renditions: list[Rendition] | None = None
    tags: dict[str, str] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        seen: set[str] = set()
        for key in value or {}:
            if key.lower() in seen:
                raise ValueError(f"key {key!r} is given twice (S3 metadata names ignore case)")
            seen.add(key.lower())
            if not _METADATA_KEY.fullmatch(key):
                raise ValueError(
                    f"key {key!r} must be ASCII letters, digits, '.', '_' or '-' (S3 metadata names)"
                )
            if key.lower() in RESERVED_METADATA_KEYS:
                raise ValueError(f"key {key!r} is written by Backdrop itself; choose another name")
        return value

    @field_validator("variants")
    @classmethod
    def _variant_count(cls, value: list[Variant] | None) -> list[Variant] | None:
        if value is not None and not 1 <= len(value) <= MAX_VARIANTS:
            raise ValueError(f"must hold 1 to {MAX_VARIANTS} variants, not {len(value)}")
        return value

    @field_validator("renditions")
    @classmethod
    def _renditions(cls, value: list[Rendition] | None) -> list[Rendition] | None:
        if value is not None:
            check_renditions(value)
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > MAX_TAGS:
            raise ValueError(f"S3 takes at most {MAX_TAGS} tags on an object, not {len(value)}")
        for key, text in (value or {}).items():
            problem = _tag_problem(key, text)
            if problem:
                raise ValueError(f"{key!r}: {problem}")
        return value

    @model_validator(mode="after")
    def _variants_fit(self) -> Sidecar:
        for index in range(len(self.variants or ())):
            merged = self.variant(index + 1)
            if merged.style_codes and merged.style_reference_images:
                raise ValueError(
                    f"variants[{index}]: style_codes and style_reference_images cannot be used together "
                    "(one of them is the sidecar's)"
                )
        return self

    def variant(self, number: int) -> Sidecar:
        """The sidecar as its variant ``number`` (from 1) asks for it: its own call's fields."""
        variants = self.variants or []
        return self.model_copy(update=variants[number - 1].overrides())


def _tag_problem(key: str, value: str) -> str | None:
    if not 1 <= len(key) <= MAX_TAG_KEY_CHARS:
        return f"a tag key must have 1 to {MAX_TAG_KEY_CHARS} characters"
    if key.lower().startswith("aws:"):
        return "tag keys starting with 'aws:' are reserved by AWS"
    if len(value) > MAX_TAG_VALUE_CHARS:
        return f"a tag value must have at most {MAX_TAG_VALUE_CHARS} characters, not {len(value)}"
    if not (_TAG_TEXT.fullmatch(key) and _TAG_TEXT.fullmatch(value)):
        return "S3 tags take letters, digits, spaces and + - = . _ : / @ only"
    return None


# A pair's sidecar is asked for by each of its calls, their events, tags and renditions: the same
# bytes give the same (frozen) model, parsed once. Refusals are not kept, and are rare.
@functools.lru_cache(maxsize=16)
def parse_sidecar(raw: bytes) -> Sidecar:
    """Parse a sidecar's bytes, or raise InvalidSidecar with every problem named."""
    if len(raw) > MAX_SIDECAR_BYTES:
        raise InvalidSidecar(f"the sidecar is {len(raw):,} bytes; the limit is {MAX_SIDECAR_BYTES:,}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidSidecar(f"the sidecar is not UTF-8 (bad byte at offset {exc.start})") from None
    data = load_json(text)
    if not isinstance(data, dict):
        raise InvalidSidecar(f"the sidecar must be a JSON object, not {_json_kind(data)}")
    try:
        return Sidecar.model_validate(data)
    except ValidationError as exc:
        raise InvalidSidecar(described(exc, Sidecar)) from None


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return kinds.get(type(value), "null")
