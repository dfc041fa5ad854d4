"""What one image of the backfill comes to: sent, or skipped and why, judged by the function's rules.

- **Already processed**: an output of the image is there, and its metadata names the same
  versions (``source-etag``, ``sidecar-etag``; ``prompt-sha256`` for DEFAULT_PROMPT). The
  function's idempotency forgets a pair after 7 days; this check does not, so an old bucket's
  results are never bought again.
- **Sent by an earlier run**: the ledger says this very pair was sent, within the work queue's
  retention (a message older than that cannot still be waiting).
- **Waiting for a sidecar**, **invalid** (the function's own parser, and its message), a manifest
  row whose image is **missing**, or whose sidecar **differs** from one already beside the image.
- Otherwise **to send**, at the speed the function would pay.

Reads go through the function's own S3 adapter, so a sidecar is read as the function reads it
(at most 64 KiB and one byte).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from backdrop.backfill.ledger import Ledger, PairVersion, Work
from backdrop.backfill.manifest import Row
from backdrop.backfill.walk import Found, Listed
from backdrop_fn import keys
from backdrop_fn.errors import BackdropError, InvalidSidecar
from backdrop_fn.images import ANSWER_TYPES
from backdrop_fn.pairing import NoRoomForSidecar, PairFinder, sha256
from backdrop_fn.ports import ObjectStore, StoredObject
from backdrop_fn.sidecar import MAX_SIDECAR_BYTES, Sidecar, parse_sidecar


class Outcome(StrEnum):
    TO_SEND = "to send"
    PROCESSED = "already processed"
    SENT_EARLIER = "sent by an earlier run"
    WAITING = "waiting for a sidecar"
    INVALID = "invalid sidecar"
    CONFLICT = "sidecar differs from the manifest"
    MISSING_IMAGE = "image not in the bucket"
    UNREADABLE = "could not be read"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    key: str  # the image's key, or "line N" for a manifest row without one
    speed: str | None = None  # what the pair is (or was) paid at, when known
    detail: str = ""  # why, for the outcomes that are a problem
    work: Work | None = None  # to send


@dataclass(frozen=True)
class StackSettings:
    """What the deployed function runs with that decides a pair, its key and its price."""

    bucket: str
    output_bucket: str
    output_prefix: str = ""
    default_prompt: str | None = None
    default_speed: str = "DEFAULT"
    input_prefix: str = ""  # InputPrefix: the function may read nothing else

    def not_an_input(self, key: str) -> str | None:
        """Why the function would never take this key as an input; None when it would."""
        if not key.startswith(self.input_prefix):
            return f"outside InputPrefix {self.input_prefix!r}, the only keys the function may read"
        if self.output_bucket == self.bucket and key.startswith(self.output_prefix):
            return f"under OutputPrefix {self.output_prefix!r}, where the results go: never an input"
        return None


class Assessor:
    """Judges images one at a time; safe to call from several threads at once."""

    def __init__(
        self,
        store: ObjectStore,
        settings: StackSettings,
        ledger: Ledger,
        *,
        outputs_indexed: bool,
        resend: bool = False,
    ) -> None:
        self._store = store
        self._settings = settings
        self._ledger = ledger
        self._outputs_indexed = outputs_indexed  # the ledger holds the output bucket's keys
        self._resend = resend
        self._finder = PairFinder(store, default_prompt=None)

    def listed(self, found: Found) -> Verdict:
        """An image of the bucket's listing, with the sidecar the listing showed beside it."""
        if found.sidecar is None and self._settings.default_prompt is None:
            return Verdict(Outcome.WAITING, found.image.key)
        sidecar = found.sidecar
        pair = self._version(found.image, sidecar.key if sidecar else None, sidecar.etag if sidecar else None)
        return self._guarded(
            pair.image_key, lambda: self._judge(pair, found.image.size, self._reader(sidecar))
        )

    def row(self, row: Row) -> Verdict:
        """A manifest row: its image, and the sidecar it describes, written beside the image if need be."""
        if row.key is None or row.fields is None:
            return Verdict(
                Outcome.INVALID, row.key or f"line {row.line}", detail=f"line {row.line}: {row.problem}"
            )
        elsewhere = self._settings.not_an_input(row.key)
        if elsewhere is not None:
            return Verdict(Outcome.INVALID, row.key, detail=f"line {row.line}: {elsewhere}")
        body = row.sidecar_body()
        try:
            wanted = parse_sidecar(body)
        except InvalidSidecar as error:
            return Verdict(Outcome.INVALID, row.key, detail=f"line {row.line}: {error.message}")
        key = row.key
        return self._guarded(key, lambda: self._row_in_bucket(key, body, wanted))

    def _guarded(self, key: str, judge: Callable[[], Verdict]) -> Verdict:
        try:
            return judge()
        except NoRoomForSidecar as error:
            return Verdict(Outcome.INVALID, error.image.key, detail=error.message)
        except BackdropError as error:  # S3 refused or failed a read, after boto3's retries
            return Verdict(Outcome.UNREADABLE, key, detail=error.message)

    def _row_in_bucket(self, key: str, body: bytes, wanted: Sidecar) -> Verdict:
        image = self._store.head(self._settings.bucket, key)
        if image is None:
            return Verdict(Outcome.MISSING_IMAGE, key)
        existing = self._finder.pair_of(image, b"")
        listed = Listed(image.key, image.etag, image.size)
        if existing is None or existing.sidecar is None:
            pair = self._version(listed, key + keys.SIDECAR_EXTENSION, None)
            return self._to_send(pair, image.size, wanted, body)
        found = existing.sidecar
        if not _same_fields(found, wanted):
            return Verdict(
                Outcome.CONFLICT,
                key,
                detail=f"{found.info.key} is already there with other fields: "
                "make the row say what it says, or delete it",
            )
        pair = self._version(listed, found.info.key, found.info.etag)
        return self._judge(pair, image.size, lambda: found)

    def _reader(self, sidecar: Listed | None) -> Callable[[], StoredObject | None]:
        def read() -> StoredObject | None:
            if sidecar is None:
                return None
            return self._store.read_small(self._settings.bucket, sidecar.key, limit=MAX_SIDECAR_BYTES)

        return read

    def _judge(self, pair: PairVersion, size: int, read: Callable[[], StoredObject | None]) -> Verdict:
        results = self._results_of_image(pair)
        if any(_result_of(pair, metadata) for metadata in results):
            return Verdict(Outcome.PROCESSED, pair.image_key, speed=_speed_of(results, pair))
        if not self._resend:
            speed = self._ledger.sent_speed(pair)
            if speed is not None:
                return Verdict(Outcome.SENT_EARLIER, pair.image_key, speed=speed)
        if pair.sidecar_key is None:
            return self._to_send(pair, size, None, None)
        stored = read()
        if stored is None:  # deleted since the listing
            return Verdict(Outcome.WAITING, pair.image_key)
        try:
            sidecar = parse_sidecar(stored.body)
        except InvalidSidecar as error:
            return Verdict(Outcome.INVALID, pair.image_key, detail=f"{stored.info.key}: {error.message}")
        pair = PairVersion(pair.image_key, pair.image_etag, stored.info.key, stored.info.etag)
        speed = self._speed(sidecar)
        if any(_recorded_without_sidecar_etag(sidecar, speed, metadata) for metadata in results):
            return Verdict(Outcome.PROCESSED, pair.image_key, speed=speed)
        return self._to_send(pair, size, sidecar, None)

    def _to_send(self, pair: PairVersion, size: int, sidecar: Sidecar | None, body: bytes | None) -> Verdict:
        speed = self._speed(sidecar)
        return Verdict(Outcome.TO_SEND, pair.image_key, speed=speed, work=Work(pair, size, speed, body))

    def _speed(self, sidecar: Sidecar | None) -> str:
        """As the function decides it: the sidecar's, else DEFAULT_RENDERING_SPEED."""
        if sidecar is not None and "rendering_speed" in sidecar.model_fields_set:
            return sidecar.rendering_speed.value
        return self._settings.default_speed

    def _version(self, image: Listed, sidecar_key: str | None, sidecar_etag: str | None) -> PairVersion:
        prompt = None if sidecar_key else sha256(self._settings.default_prompt or "")
        return PairVersion(image.key, image.etag, sidecar_key, sidecar_etag, prompt)

    def _results_of_image(self, pair: PairVersion) -> list[dict[str, str]]:
        """The metadata of every output there is at the image's output keys (one per answer type)."""
        settings = self._settings
        candidates = [
            keys.output_key(settings.output_prefix, pair.image_key, answer.extension)
            for answer in ANSWER_TYPES
        ]
        if self._outputs_indexed:
            candidates = self._ledger.outputs_among(candidates)
        found = (self._store.describe(settings.output_bucket, key) for key in candidates)
        return [
            metadata
            for _, metadata in filter(None, found)
            if metadata.get("source-bucket") == settings.bucket
            and metadata.get("source-key") == keys.metadata_value(pair.image_key)
            and metadata.get("source-etag") == pair.image_etag
        ]


def _result_of(pair: PairVersion, metadata: dict[str, str]) -> bool:
    """Whether an output of this image version is this pair's, by the versions it records."""
    if pair.sidecar_key is None:
        return "sidecar-etag" not in metadata and metadata.get("prompt-sha256") == pair.prompt_sha256
    return metadata.get("sidecar-etag") == pair.sidecar_etag and metadata.get(
        "sidecar-key", keys.metadata_value(pair.sidecar_key)
    ) == keys.metadata_value(pair.sidecar_key)


def _recorded_without_sidecar_etag(sidecar: Sidecar, speed: str, metadata: dict[str, str]) -> bool:
    """An output whose metadata had no room left for ``sidecar-etag`` (a long key): this pair's
    when the prompt and the speed it was made with are this sidecar's."""
    return (
        "sidecar-etag" not in metadata
        and metadata.get("prompt-sha256") == sha256(sidecar.prompt)
        and metadata.get("rendering-speed") == speed
    )


def _speed_of(results: list[dict[str, str]], pair: PairVersion) -> str | None:
    for metadata in results:
        if _result_of(pair, metadata):
            return metadata.get("rendering-speed")
    return None


def _same_fields(stored: StoredObject, wanted: Sidecar) -> bool:
    """Whether a sidecar in the bucket says what a manifest row says, field by field as written."""
    try:
        found = parse_sidecar(stored.body)
    except InvalidSidecar:
        return False
    return found.model_dump(exclude_unset=True) == wanted.model_dump(exclude_unset=True)
