"""The paid call's request, and every check that must pass before paying for it.

A sidecar bound to fail, an image that is no image, a style reference that is not there: each is
refused here, before the API is called (docs/REFERENCE.md#the-sidecar).
"""

from __future__ import annotations

import io
import logging
from typing import Any

from backdrop_fn import images
from backdrop_fn.config import Settings
from backdrop_fn.errors import BackdropError, InvalidImage, InvalidSidecar, MissingObject
from backdrop_fn.image_metadata import input_condition, metadata_free
from backdrop_fn.input_fix import upright_srgb
from backdrop_fn.pairing import Pair
from backdrop_fn.ports import InlineImage, ObjectInfo, ObjectStore
from backdrop_fn.pricing import price_of
from backdrop_fn.sidecar import MAX_SIDECAR_BYTES, Sidecar, parse_sidecar
from backdrop_fn.style_references import is_url
from backdrop_fn.timing import TimeBudget
from backdrop_fn.vocabulary import ImageTransfer

logger = logging.getLogger(__name__)


class ApiRequest:
    def __init__(self, settings: Settings, store: ObjectStore, budget: TimeBudget) -> None:
        self._settings = settings
        self._store = store
        self._budget = budget

    def calls_of(self, pair: Pair) -> list[Pair]:
        """The pair, or one of it per variant its sidecar asks for: each a paid call of its own.

        A sidecar that cannot be used gives the pair alone, whose one failure is then recorded
        before any call is made.
        """
        try:
            variants = self._sidecar(pair).variants
        except BackdropError:
            return [pair]
        return [
            pair.as_variant(number, variant.model_dump_json(exclude_unset=True))
            for number, variant in enumerate(variants or (), start=1)
        ] or [pair]

    def estimated_usd(self, pair: Pair) -> float:
        """What buying the pair costs at list prices: every variant's call, none bought twice."""
        sidecar = self._sidecar(pair)
        speeds = [sidecar.variant(n).rendering_speed for n in range(1, len(sidecar.variants or ()) + 1)]
        return round(sum(price_of(speed.value) for speed in speeds or [sidecar.rendering_speed]), 3)

    def sidecar_of(self, pair: Pair) -> Sidecar:
        """What the pair's call asks for: its sidecar, parsed and checked, as its variant asks for
        it; the default prompt's when it has none."""
        sidecar = self._sidecar(pair)
        return sidecar if pair.variant is None else sidecar.variant(pair.variant)

    def _sidecar(self, pair: Pair) -> Sidecar:
        if pair.sidecar is None:
            sidecar = Sidecar(prompt=pair.default_prompt or "")
        elif pair.sidecar.info.size > MAX_SIDECAR_BYTES:
            size = pair.sidecar.info.size
            raise InvalidSidecar(f"the sidecar is {size:,} bytes; the limit is {MAX_SIDECAR_BYTES:,}")
        else:
            sidecar = parse_sidecar(pair.sidecar.body)
        if "rendering_speed" not in sidecar.model_fields_set:
            sidecar = sidecar.model_copy(update={"rendering_speed": self._settings.default_rendering_speed})
        return sidecar

    def payload(self, pair: Pair, sidecar: Sidecar, seed: int) -> dict[str, Any]:
        """The request's JSON body; its images are checked, and sent as URLs or inline."""
        payload: dict[str, Any] = {
            "image": self._image_field(pair.image, "image", head=pair.image_head),
            "prompt": sidecar.prompt,
            "rendering_speed": sidecar.rendering_speed.value,
            "magic_prompt": sidecar.magic_prompt.value,
            "seed": seed,
            "style_codes": list(sidecar.style_codes or []),
            "style_reference_images": [
                self._style_reference(pair.image.bucket, reference, index)
                for index, reference in enumerate(sidecar.style_reference_images or [])
            ],
        }
        if sidecar.color_palette is not None:
            payload["color_palette"] = sidecar.color_palette.model_dump(exclude_none=True)
        return payload

    def _image_field(self, obj: ObjectInfo, what: str, head: bytes | None = None) -> str | InlineImage:
        """A presigned URL the API fetches (url mode), or the bytes, streamed into the request; the
        pair's own image (its ``head`` read already) made fit to send first, when it needs it."""
        self._check_image(obj, what, head)
        fixed = None if head is None else self._fit_to_send(obj, head)
        if fixed is not None:
            return fixed
        if self._settings.image_transfer is ImageTransfer.BASE64:
            return InlineImage(size=obj.size, open=lambda: self._store.open(obj))
        return self._store.presigned_url(obj, expires_in=self._budget.presigned_url_seconds)

    def _fit_to_send(self, obj: ObjectInfo, head: bytes) -> InlineImage | None:
        """The image upright, in sRGB and without personal metadata, sent inline; None when its
        first bytes show it needs nothing, and it goes as uploaded.

        Only a turned image or one in another colour space is decoded (Pillow); one that only
        carries GPS, serials or other personal metadata gets a lossless copy without them.
        """
        condition = input_condition(head)
        if not condition.needs_decoding:
            if not condition.needs_cleaning:
                return None
            clean = metadata_free(lambda: self._store.open(obj), obj.size, tag_srgb=False)
            if clean is None:
                return None
            if clean.orientation == 1:  # a WebP's EXIF, at its end, may say it is turned after all
                logger.info(
                    "input sent without its personal metadata",
                    extra={"key": obj.key, "found": condition.reasons()},
                )
                return InlineImage(size=clean.size, open=clean.open)
        fixed = upright_srgb(self._store.read(obj)).data
        logger.info("input sent upright and in sRGB", extra={"key": obj.key, "found": condition.reasons()})
        return InlineImage(size=len(fixed), open=lambda: io.BytesIO(fixed))

    def _style_reference(self, bucket: str, reference: str, index: int) -> str | InlineImage:
        if is_url(reference):
            return reference
        obj = self._store.head(bucket, reference)
        if obj is None:
            raise MissingObject(
                f"style_reference_images[{index}]: no object {reference!r} in bucket {bucket!r}"
            )
        return self._image_field(obj, f"style_reference_images[{index}]")

    def _check_image(self, obj: ObjectInfo, what: str, head: bytes | None = None) -> None:
        """Check size, type, dimensions and completeness from the image's first and last bytes.

        ``head``: its first bytes when they were read already (with its version, in one request).
        """
        if obj.size == 0:
            raise InvalidImage(f"{what} {obj.key!r} is empty")
        if obj.size > self._settings.max_image_bytes:
            raise InvalidImage(
                f"{what} {obj.key!r} is {obj.size:,} bytes; the limit (MAX_IMAGE_BYTES) is "
                f"{self._settings.max_image_bytes:,}"
            )
        head, tail = self._ends(obj, head)
        why = images.problem(head, tail, obj.size)
        if why:
            raise InvalidImage(f"{what} {obj.key!r} is {why}")

    def _ends(self, obj: ObjectInfo, head: bytes | None) -> tuple[bytes, bytes]:
        """The image's first and last bytes, reading no more than is not known yet."""
        if head is not None and len(head) >= obj.size:
            return head, head[-images.TAIL_BYTES :]  # the head is the whole image
        if head is None and obj.size <= images.HEAD_BYTES + images.TAIL_BYTES:
            whole = self._store.read(obj)
            return whole[: images.HEAD_BYTES], whole[-images.TAIL_BYTES :]
        head = head if head is not None else self._store.read(obj, first_bytes=images.HEAD_BYTES)
        return head, self._store.read(obj, last_bytes=images.TAIL_BYTES)
