"""An image and its sidecar: which objects make a pair, and what identifies a pair's result.

The key rules (which sidecar names an image has, which images a sidecar may belong to) are in
``keys.py``; this module reads the store to find the halves that exist.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from backdrop_fn import images, keys
from backdrop_fn.errors import InvalidImage
from backdrop_fn.events import S3_KEY_LIMIT
from backdrop_fn.failures import FailureSource
from backdrop_fn.ports import ObjectInfo, ObjectStore, StoredObject
from backdrop_fn.sidecar import MAX_SIDECAR_BYTES


class NoRoomForSidecar(InvalidImage):
    """An image whose key is so long that neither of its sidecar keys fits in S3: it would wait
    for its sidecar forever."""

    def __init__(self, image: ObjectInfo) -> None:
        super().__init__(
            f"the image key is too long for a sidecar: neither {keys.SIDECAR_EXTENSION!r} sidecar key "
            f"fits in S3's {S3_KEY_LIMIT} bytes (set DEFAULT_PROMPT, or use a shorter key)"
        )
        self.image = image

    def identity(self, replay_of: str | None) -> dict[str, Any]:
        """One DLQ record per version of the image (and per redrive of that record)."""
        return {
            "bucket": self.image.bucket,
            "no_sidecar_possible": self.image.key,
            "image_etag": self.image.etag,
            "replay_of": replay_of,
        }

    def failure_source(self) -> FailureSource:
        return FailureSource(bucket=self.image.bucket, key=self.image.key, etag=self.image.etag)


@dataclass(frozen=True)
class Pair:
    image: ObjectInfo
    image_head: bytes = field(repr=False)  # its first bytes, read with its version
    sidecar: StoredObject | None = None  # None: the image is processed with DEFAULT_PROMPT
    default_prompt: str | None = None
    # Which of the sidecar's variants this is (from 1), and a digest of what the variant asks for;
    # None when the sidecar has no variants. Each variant is bought, stored and told of on its own.
    variant: int | None = None
    variant_sha256: str | None = None

    def identity(self) -> dict[str, Any]:
        """What makes a result: both halves' versions (ETags), not the message that carried them,
        and the variant's position and content."""
        identity: dict[str, Any] = {
            "bucket": self.image.bucket,
            "image_key": self.image.key,
            "image_etag": self.image.etag,
            "sidecar_key": self.sidecar.info.key if self.sidecar else None,
            "sidecar_etag": self.sidecar.info.etag if self.sidecar else None,
            "default_prompt_sha256": None if self.sidecar else sha256(self.default_prompt or ""),
        }
        if self.variant is not None:  # a pair without variants keeps the identity it always had
            identity |= {"variant": self.variant, "variant_sha256": self.variant_sha256}
        return identity

    def as_variant(self, number: int, asks_for: str) -> Pair:
        """The pair's variant ``number``; ``asks_for``: the variant's own fields, as JSON."""
        return dataclasses.replace(self, variant=number, variant_sha256=sha256(asks_for))

    def pair_id(self) -> str:
        """The identity as one short name, for the answer kept until it is stored."""
        return sha256(json.dumps(self.identity(), sort_keys=True))

    def failure_source(self) -> FailureSource:
        return FailureSource(
            bucket=self.image.bucket,
            key=self.image.key,
            etag=self.image.etag,
            sidecar_key=self.sidecar.info.key if self.sidecar else None,
        )


class PairFinder:
    def __init__(self, store: ObjectStore, default_prompt: str | None) -> None:
        self._store = store
        self._default_prompt = default_prompt

    def images_owning(self, bucket: str, sidecar_key: str) -> list[str]:
        """The images that may own this sidecar: the exact one is not looked up here (its own read
        tells whether it exists), the stem ones are found by listing."""
        exact, stem_prefix = keys.image_places_for_sidecar(sidecar_key)
        found = [exact] if exact else []
        found.extend(
            key
            for key in self._store.list_keys(bucket, stem_prefix)
            if key != exact and keys.may_own_sidecar(key, sidecar_key)
        )
        return found

    def image(self, bucket: str, image_key: str) -> tuple[ObjectInfo, bytes] | None:
        """The image's current version and first bytes, or None when there is no such image."""
        return self._store.peek(bucket, image_key, first_bytes=images.HEAD_BYTES)

    def pair_of(self, image: ObjectInfo, image_head: bytes) -> Pair | None:
        """The image with its sidecar, or with the default prompt; None while it waits for a sidecar.

        Raises NoRoomForSidecar when it could wait only forever.
        """
        sidecar = self._sidecar(image.bucket, image.key)
        if sidecar is None and self._default_prompt is None:
            if not _sidecar_keys(image.key):
                raise NoRoomForSidecar(image)
            return None
        return Pair(image, image_head, sidecar, None if sidecar else self._default_prompt)

    def is_current(self, pair: Pair) -> bool:
        """Whether the pair's halves are still the newest: no other version of the image, and the
        same sidecar (or still none) is the one the image would take now."""
        image = self._store.head(pair.image.bucket, pair.image.key)
        if image is not None and image.etag != pair.image.etag:
            return False
        for candidate in _sidecar_keys(pair.image.key):
            sidecar = self._store.head(pair.image.bucket, candidate)
            if sidecar is not None:
                taken = pair.sidecar.info if pair.sidecar else None
                return taken is not None and (taken.key, taken.etag) == (sidecar.key, sidecar.etag)
        return True  # deleted since: nothing newer will be written

    def _sidecar(self, bucket: str, image_key: str) -> StoredObject | None:
        for candidate in _sidecar_keys(image_key):
            found = self._store.read_small(bucket, candidate, limit=MAX_SIDECAR_BYTES)
            if found is not None:
                return found
        return None


def _sidecar_keys(image_key: str) -> list[str]:
    """The image's sidecar keys that S3 can hold: asking for a longer one is refused, not "absent"."""
    return [key for key in keys.sidecar_candidates(image_key) if len(key.encode("utf-8")) <= S3_KEY_LIMIT]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
