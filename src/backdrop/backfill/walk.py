"""The pairing walk: a bucket's listing in, each image with the sidecar the function would take out.

S3 lists keys in UTF-8 byte order (Python's ``str`` order), so an image and both its sidecar
names (``K.json``, ``<stem>.json``) lie close together, but not always next to each other, and
not always after the image: ``a.json`` comes before ``a.png`` and after ``a.jpg``. The walk holds
an image only until the listing has passed both its sidecar names, and a sidecar only until it
has passed every image that could own it (the largest is ``<stem>.webp``) and no held image
still names it. What is held at once is thus bounded by how deeply names nest in one another
(``a.json``, ``a.b.json``, ``a.b.c.json``…), never by the size of the bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from backdrop_fn import keys
from backdrop_fn.events import S3_KEY_LIMIT

# The largest image name that a stem can have: its owners all sort at or before ``stem + this``.
_LAST_IMAGE_SUFFIX = "." + max(extension.lstrip(".") for extension in keys.IMAGE_EXTENSIONS)


@dataclass(frozen=True)
class Listed:
    """One object of a listing page."""

    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class Found:
    """An image and the sidecar the function would pair it with; None when the listing has none."""

    image: Listed
    sidecar: Listed | None


@dataclass
class WalkCounts:
    objects: int = 0
    images: int = 0
    sidecars: int = 0
    sidecars_without_image: int = 0
    ignored: int = 0
    most_held: int = 0  # the most images and sidecars held at once: the walk's memory


@dataclass
class _HeldImage:
    image: Listed
    candidates: tuple[str, ...]  # its sidecar names S3 can hold, in the function's precedence

    def passed(self, current: str) -> bool:
        return all(candidate <= current for candidate in self.candidates)


@dataclass
class _HeldSidecar:
    sidecar: Listed
    used: bool = False

    def owners_passed(self, current: str) -> bool:
        stem = self.sidecar.key[: -len(keys.SIDECAR_EXTENSION)]
        return stem + _LAST_IMAGE_SUFFIX < current


class PairingWalk:
    """Pairs a sorted listing as it streams by; ``counts`` says what it saw."""

    def __init__(self) -> None:
        self.counts = WalkCounts()
        self._images: list[_HeldImage] = []
        self._sidecars: dict[str, _HeldSidecar] = {}

    def pairs(self, listing: Iterable[Listed]) -> Iterator[Found]:
        for listed in listing:
            self._take(listed)
            yield from self._decide(listed.key)
            self._release(listed.key)
        yield from self._decide(None)
        self._release(None)

    def _take(self, listed: Listed) -> None:
        self.counts.objects += 1
        kind = keys.classify(listed.key)
        if kind is keys.KeyKind.IMAGE:
            self.counts.images += 1
            candidates = tuple(key for key in keys.sidecar_candidates(listed.key) if _fits(key))
            self._images.append(_HeldImage(listed, candidates))
        elif kind is keys.KeyKind.SIDECAR:
            self.counts.sidecars += 1
            self._sidecars[listed.key] = _HeldSidecar(listed)
        else:
            self.counts.ignored += 1
        self.counts.most_held = max(self.counts.most_held, len(self._images) + len(self._sidecars))

    def _decide(self, current: str | None) -> Iterator[Found]:
        """The held images whose sidecar names the listing has passed (all of them at its end)."""
        still: list[_HeldImage] = []
        for held in self._images:
            if current is not None and not held.passed(current):
                still.append(held)
                continue
            yield Found(held.image, self._taken_by(held))
        self._images = still

    def _taken_by(self, held: _HeldImage) -> Listed | None:
        for candidate in held.candidates:
            sidecar = self._sidecars.get(candidate)
            if sidecar is not None:
                sidecar.used = True
                return sidecar.sidecar
        return None

    def _release(self, current: str | None) -> None:
        if not self._sidecars:
            return
        named = {candidate for held in self._images for candidate in held.candidates}
        for key, held in list(self._sidecars.items()):
            if key in named or (current is not None and not held.owners_passed(current)):
                continue
            del self._sidecars[key]
            if not held.used:
                self.counts.sidecars_without_image += 1


def _fits(key: str) -> bool:
    """Whether S3 can hold the key at all: a longer sidecar name is never listed."""
    return len(key.encode("utf-8")) <= S3_KEY_LIMIT
