"""A result's renditions (CONTRACT.md §9), written beside it from the answer already paid for.

A rendition never causes a paid call: it is made from the kept answer, or, when an earlier
attempt stored the result and ended, from the stored result itself. One already written for this
result (its metadata names the same source, sidecar and seed) is not made again, so a retry after
a failed write makes only what is missing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import BinaryIO

from backdrop_fn.config import Settings
from backdrop_fn.errors import OutputWriteFailed
from backdrop_fn.output import S3_KEY_LIMIT, StoredOutput, written_with
from backdrop_fn.ports import ObjectStore
from backdrop_fn.renditions import Rendition, content_type, render, rendition_key, rendition_label
from backdrop_fn.sidecar import Sidecar


class RenditionOutputs:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self._defaults = list(settings.default_renditions)
        self._store = store

    def asked(self, sidecar: Sidecar | None) -> list[Rendition]:
        """The sidecar's renditions, or the stack's when it gives none."""
        if sidecar is None or sidecar.renditions is None:
            return self._defaults
        return sidecar.renditions

    def check_keys(self, output_key: str, renditions: Sequence[Rendition]) -> None:
        """Refuse, before paying, renditions whose keys S3 could not take."""
        for rendition in renditions:
            length = len(rendition_key(output_key, rendition).encode("utf-8"))
            if length > S3_KEY_LIMIT:
                raise OutputWriteFailed(
                    f"the {rendition_label(rendition)} rendition's key would be {length:,} bytes, over "
                    f"S3's {S3_KEY_LIMIT:,}: shorten the image key, OUTPUT_PREFIX or the rendition's name",
                    retryable=False,
                )

    def write(
        self,
        result: StoredOutput,
        open_result: Callable[[], BinaryIO],
        renditions: Sequence[Rendition],
        *,
        metadata: dict[str, str],
        variant: int | None,
        tags: dict[str, str] | None,
    ) -> list[StoredOutput]:
        """Write each rendition not written yet; all of them, in the order asked, for the event."""
        stored = [self._written(result, rendition, metadata) for rendition in renditions]
        missing = [index for index, found in enumerate(stored) if found is None]
        made = render(open_result, [renditions[index] for index in missing])
        for index, (rendition, image) in zip(missing, made, strict=True):
            key = rendition_key(result.key, rendition)
            size = self._store.write_output(
                result.bucket,
                key,
                io.BytesIO(image.data),
                content_type=image.content_type,
                metadata={**metadata, "variant": str(variant or 1), "rendition": rendition_label(rendition)},
                tags=tags,
            )
            stored[index] = StoredOutput(result.bucket, key, image.content_type, size)
        return [found for found in stored if found is not None]

    def _written(
        self, result: StoredOutput, rendition: Rendition, metadata: dict[str, str]
    ) -> StoredOutput | None:
        key = rendition_key(result.key, rendition)
        found = self._store.describe(result.bucket, key)
        if found is None or not written_with(found[1], metadata):
            return None
        info, _ = found
        return StoredOutput(result.bucket, key, content_type(rendition), info.size, info.version_id)
