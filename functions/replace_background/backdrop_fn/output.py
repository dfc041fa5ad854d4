"""The output object: its key, its metadata within S3's budget, and its write from the kept answer.

See docs/REFERENCE.md#output-keys-and-metadata.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from backdrop_fn import keys
from backdrop_fn.config import Settings
from backdrop_fn.errors import BackdropError, InvalidImage, InvalidSidecar, OutputWriteFailed
from backdrop_fn.image_metadata import metadata_free
from backdrop_fn.images import ANSWER_TYPES
from backdrop_fn.pairing import Pair, sha256
from backdrop_fn.ports import KeptAnswer, ObjectStore, OutputOwners
from backdrop_fn.sidecar import RESERVED_METADATA_KEYS, Sidecar

logger = logging.getLogger(__name__)

# S3 refuses a PUT whose user metadata (names and values, in bytes) is larger than this,
# and keys longer than this many bytes.
S3_METADATA_LIMIT = 2048
S3_KEY_LIMIT = 1024
# What a rendition adds to its result's metadata at most: "variant" (1-8) and "rendition" (a name
# of up to 64 characters, or "8192x8192").
_RENDITION_METADATA_BYTES = len("variant") + 1 + len("rendition") + 64
_PAIR_METADATA_LIMIT = S3_METADATA_LIMIT - _RENDITION_METADATA_BYTES
# An owner that disappears while another takes over is looked at again, this many times at most.
_OWNER_ROUNDS = 3


@dataclass(frozen=True)
class StoredOutput:
    bucket: str
    key: str
    content_type: str
    bytes: int
    version_id: str | None = None


class Output:
    def __init__(self, settings: Settings, store: ObjectStore, owners: OutputOwners) -> None:
        self._bucket = settings.output_bucket
        self._prefix = settings.output_prefix
        self._store = store
        self._owners = owners

    def key(self, image_key: str, extension: str, variant: int | None = None) -> str:
        return keys.output_key(self._prefix, image_key, extension, variant)

    def claim_key(self, bucket: str, image_key: str, variant: int | None = None) -> None:
        """Refuse, before paying, an output key S3 cannot take or another image's result holds.

        Images whose keys differ only in their extension (``shoe.jpg``, ``shoe.webp``) share an
        output key: the first one processed keeps it while it exists, the others fail.
        """
        self.check_key(image_key, variant)
        stem = f"{self._bucket}/{self._prefix}{keys.strip_image_extension(image_key)}"
        me = f"{bucket}/{image_key}"
        owner = self._owners.claim(stem, me)
        for _ in range(_OWNER_ROUNDS):
            if owner is None:
                return
            owner_bucket, _, owner_key = owner.partition("/")
            if self._store.head(owner_bucket, owner_key) is not None:
                named = owner_key if owner_bucket == bucket else f"s3://{owner}"
                raise InvalidImage(
                    f"its output key {self.key(image_key, '<ext>')!r} belongs to {named!r}, processed "
                    "first: rename one of the two images, or delete the other one"
                )
            owner = self._owners.claim(stem, me, replacing=owner)  # that image is gone: take over
        raise InvalidImage(f"its output key {self.key(image_key, '<ext>')!r} keeps changing owner: try again")

    def check_key(self, image_key: str, variant: int | None = None) -> None:
        """Refuse, before paying, an image whose output key S3 could not take."""
        # The longest output extension, so that whatever type the API returns, the key fits.
        longest = len(self.key(image_key, "webp", variant).encode("utf-8"))
        if longest > S3_KEY_LIMIT:
            raise OutputWriteFailed(
                f"the output key would be {longest:,} bytes, over S3's "
                f"{S3_KEY_LIMIT:,}: shorten the image key or OUTPUT_PREFIX",
                retryable=False,
            )

    def write(
        self,
        image_key: str,
        answer: KeptAnswer,
        *,
        variant: int | None = None,
        tags: dict[str, str] | None = None,
    ) -> StoredOutput:
        """Store the kept answer at the output key of the image (and variant), tagged as asked."""
        out_key = self.key(image_key, answer.image_type.extension, variant)
        with as_published(answer.open, out_key)() as body:
            written = self._store.write_output(
                self._bucket,
                out_key,
                body,
                content_type=answer.image_type.content_type,
                metadata=answer.metadata,
                tags=tags,
            )
        return StoredOutput(self._bucket, out_key, answer.image_type.content_type, written)

    def opener(self, stored: StoredOutput) -> Callable[[], BinaryIO]:
        """How to read a stored result back (for its renditions)."""

        def open_result() -> BinaryIO:
            found = self._store.describe(stored.bucket, stored.key)
            if found is None:
                raise OutputWriteFailed(
                    f"the result s3://{stored.bucket}/{stored.key} was deleted before its renditions "
                    "were made",
                    retryable=False,
                )
            return self._store.open(found[0])

        return open_result

    def version_of(self, stored: StoredOutput) -> StoredOutput:
        """The written output with its version id, for its completion event; a streamed upload
        does not say it, so it is asked for, and a failed look leaves it unknown."""
        try:
            found = self._store.describe(stored.bucket, stored.key)
        except BackdropError:
            return stored
        return stored if found is None else dataclasses.replace(stored, version_id=found[0].version_id)

    def stored_result(
        self, image_key: str, metadata: dict[str, str], variant: int | None = None
    ) -> tuple[StoredOutput, dict[str, str]] | None:
        """The output that already holds this pair's result, and the metadata it was written with,
        if any (the seed aside: a pair without one gets a new one each time)."""
        for image_type in ANSWER_TYPES:
            out_key = self.key(image_key, image_type.extension, variant)
            found = self._store.describe(self._bucket, out_key)
            if found is not None and written_with(found[1], metadata, ignoring=frozenset({"seed"})):
                info, written = found
                stored = StoredOutput(
                    self._bucket, out_key, image_type.content_type, info.size, info.version_id
                )
                return stored, written
        return None

    def withdraw(self, out_key: str, metadata: dict[str, str]) -> bool:
        """Remove the version this pair just wrote, if it is still the current one.

        The version before it (a newer pair's result written meanwhile, or the last one) becomes
        current again. Only a versioned bucket can say which version is ours; without one, the
        result stays. Returns whether it was withdrawn.
        """
        found = self._store.describe(self._bucket, out_key)
        if found is None:
            return False
        current, current_metadata = found
        if not written_with(current_metadata, metadata) or current.version_id in (None, "null"):
            return False
        self._store.delete_version(self._bucket, out_key, current.version_id)
        return True


def as_published(open_image: Callable[[], BinaryIO], key: str) -> Callable[[], BinaryIO]:
    """The image as an output is stored: without any metadata it may carry (an API may copy the
    input's), and tagged sRGB when it says nothing of its colours. Pixels are left as they are."""
    with open_image() as body:
        size = body.seek(0, io.SEEK_END)
    try:
        clean = metadata_free(open_image, size, tag_srgb=True)
    except InvalidImage as error:
        # Paid for and the API's own: stored as it came rather than lost.
        logger.warning(
            "an answer's metadata could not be walked: stored as it came",
            extra={"key": key, "error": error.message},
        )
        return open_image
    return open_image if clean is None else clean.open


def written_with(
    found: dict[str, str], metadata: dict[str, str], *, ignoring: frozenset[str] = frozenset()
) -> bool:
    """Whether an output object's metadata is this pair's: what the function itself writes (source
    and sidecar versions, prompt, seed) tells one pair's result from another's."""
    compared = RESERVED_METADATA_KEYS - ignoring
    return all(found.get(name) == value for name, value in metadata.items() if name in compared)


def output_metadata(pair: Pair, sidecar: Sidecar, seed: int) -> dict[str, str]:
    """The reference's metadata first, then ours while there is room, then the sidecar's.

    S3 takes 2 KB of user metadata, of which a rendition adds its ``variant`` and ``rendition``.
    A long non-ASCII key grows threefold when encoded, so the nice-to-have entries give way before
    the sidecar's own metadata is blamed.
    """
    written = {
        "source-bucket": pair.image.bucket,
        "source-key": keys.metadata_value(pair.image.key),
        "source-etag": pair.image.etag,
        "prompt-sha256": sha256(sidecar.prompt),
        "rendering-speed": sidecar.rendering_speed.value,
        "seed": str(seed),
    }
    if pair.variant is not None:
        written["variant"] = str(pair.variant)
    if _size(written) > _PAIR_METADATA_LIMIT:
        raise InvalidImage(
            f"the image key is too long to record as S3 metadata once percent-encoded "
            f"({_size(written):,} of {_PAIR_METADATA_LIMIT:,} bytes): shorten it"
        )
    extras = {"magic-prompt": sidecar.magic_prompt.value}
    if pair.sidecar is not None:
        extras["sidecar-etag"] = pair.sidecar.info.etag
        extras["sidecar-key"] = keys.metadata_value(pair.sidecar.info.key)
    for name, value in extras.items():
        if _size(written) + len(name) + len(value) <= _PAIR_METADATA_LIMIT:
            written[name] = value
    own = {name.lower(): keys.metadata_value(value) for name, value in (sidecar.metadata or {}).items()}
    if _size(written) + _size(own) > _PAIR_METADATA_LIMIT:
        raise InvalidSidecar(
            f"metadata: {_size(own):,} bytes once encoded, but only "
            f"{_PAIR_METADATA_LIMIT - _size(written):,} of S3's {S3_METADATA_LIMIT:,} "
            "are left after the image's own and a rendition's; shorten the sidecar's metadata"
        )
    return {**written, **own}


def _size(metadata: dict[str, str]) -> int:
    return sum(len(name.encode("utf-8")) + len(value.encode("utf-8")) for name, value in metadata.items())
