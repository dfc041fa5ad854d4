"""Object-key rules: what a key is, where its sidecar lives, where its output goes.

See docs/REFERENCE.md#inputs-and-pairing and docs/REFERENCE.md#output-keys-and-metadata.
"""

from __future__ import annotations

from enum import Enum
from urllib.parse import quote

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
SIDECAR_EXTENSION = ".json"

_PRINTABLE_ASCII = frozenset(chr(c) for c in range(0x20, 0x7F))
# What stays literal inside an encoded value: "%" (and the space) is encoded there, so the value
# decodes exactly.
_ENCODED_SAFE = "".join(sorted(_PRINTABLE_ASCII - {"%", " "}))


class KeyKind(Enum):
    IMAGE = "image"
    SIDECAR = "sidecar"
    IGNORED = "ignored"


def classify(key: str) -> KeyKind:
    """Images by their case-insensitive extension, sidecars by ``.json``; folders and the rest are ignored.

    ``.json`` is matched exactly because the sidecar of ``K`` is named ``K + ".json"``: an
    ``X.JSON`` could never be found from its image's side.
    """
    if not key or key.endswith("/"):
        return KeyKind.IGNORED
    if key.lower().endswith(IMAGE_EXTENSIONS):
        return KeyKind.IMAGE
    if key.endswith(SIDECAR_EXTENSION):
        return KeyKind.SIDECAR
    return KeyKind.IGNORED


def image_extension(key: str) -> str:
    """The image extension of ``key`` as written (``.JPG`` stays ``.JPG``), or an empty string."""
    lowered = key.lower()
    for extension in IMAGE_EXTENSIONS:
        if lowered.endswith(extension):
            return key[-len(extension) :]
    return ""


def strip_image_extension(key: str) -> str:
    extension = image_extension(key)
    return key[: -len(extension)] if extension else key


def sidecar_candidates(image_key: str) -> tuple[str, str]:
    """The two sidecar keys of an image, in the order of precedence (``K.json`` wins over the stem)."""
    return image_key + SIDECAR_EXTENSION, strip_image_extension(image_key) + SIDECAR_EXTENSION


def image_places_for_sidecar(sidecar_key: str) -> tuple[str | None, str]:
    """Where the images that may own ``sidecar_key`` are: ``(exact image key or None, prefix to list)``.

    ``shop/a.jpg.json`` may belong to the image ``shop/a.jpg`` itself; ``shop/a.json`` to the
    ``shop/a.<ext>`` images found by listing ``shop/a.`` (filter them with ``may_own_sidecar``).
    """
    base = sidecar_key[: -len(SIDECAR_EXTENSION)]
    exact = base if classify(base) is KeyKind.IMAGE else None
    return exact, base + "."


def may_own_sidecar(image_key: str, sidecar_key: str) -> bool:
    """Whether ``sidecar_key`` is one of the two sidecar names of ``image_key``.

    ``shop/a.jpg.json`` belongs to ``shop/a.jpg`` (the ``K.json`` rule); ``shop/a.json`` to any
    ``shop/a.<image ext>`` (the stem rule).
    """
    return classify(image_key) is KeyKind.IMAGE and sidecar_key in sidecar_candidates(image_key)


def output_key(prefix: str, image_key: str, extension: str, variant: int | None = None) -> str:
    """``OUTPUT_PREFIX + <input key without extension> + "." + <ext of the returned image>``;
    a sidecar's variant n from 2 on adds ``".v" + n`` before the extension (``shoe-1.v2.png``)."""
    numbered = f".v{variant}" if variant is not None and variant >= 2 else ""
    return f"{prefix}{strip_image_extension(image_key)}{numbered}.{extension}"


def metadata_value(value: str) -> str:
    """S3 user metadata must be printable ASCII: anything else is percent-encoded as UTF-8.

    A value that is printable ASCII is kept as it is, so ``shop/shoe-1.jpg`` reads naturally;
    any other value (``schuh ü.jpg``, or one with a line break) is encoded whole, ``%`` included,
    so that ``urllib.parse.unquote`` gives it back exactly (docs/REFERENCE.md#output-keys-and-metadata).
    """
    if _PRINTABLE_ASCII.issuperset(value):
        return value
    return quote(value, safe=_ENCODED_SAFE)
