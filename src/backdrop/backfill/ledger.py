"""The backfill's ledger: one SQLite file per work queue and bucket, on the operator's disk.

It holds what earlier runs sent (``sent``: one row an image, with the versions of its pair), so
that a run after an interruption sends only the rest; and, for the current run only, the plan
(``plan``: the pairs to send, in order) and the output bucket's keys (``outputs``), so that
neither is held in memory whatever the size of the bucket. SQLite keeps them on disk, indexed,
with a page cache of a fixed size.

A pair counts as sent only once SQS has accepted its message: each batch's rows are committed
right after ``SendMessageBatch`` answers. A run stopped between the two (a second Ctrl-C, a
crash) sends that batch again next time; the function's idempotency makes that second delivery
cost nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    image_key TEXT PRIMARY KEY,
    image_etag TEXT NOT NULL,
    sidecar_key TEXT NOT NULL,
    sidecar_etag TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL,
    speed TEXT NOT NULL,
    sent_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TEMP TABLE outputs (key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE manifest_keys (key TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID;
CREATE TEMP TABLE plan (
    seq INTEGER PRIMARY KEY,
    image_key TEXT NOT NULL,
    image_etag TEXT NOT NULL,
    image_size INTEGER NOT NULL,
    sidecar_key TEXT NOT NULL,
    sidecar_etag TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL,
    speed TEXT NOT NULL,
    sidecar_body BLOB
);
"""
# Rows of the plan written, or keys of the output index, before each commit.
_CHUNK = 1000
# Each database's page cache (the file's, and the temporary tables'), in KiB.
_CACHE_KIB = 1024


@dataclass(frozen=True)
class PairVersion:
    """What makes a pair's result (the function's identity of a pair): both halves' versions.

    A pair paid with DEFAULT_PROMPT has no sidecar, and that prompt's SHA-256 instead. A sidecar
    that a manifest row is about to write has its key, but no ETag until it is written.
    """

    image_key: str
    image_etag: str
    sidecar_key: str | None
    sidecar_etag: str | None
    prompt_sha256: str | None = None

    def row(self) -> tuple[str, str, str, str, str]:
        return (
            self.image_key,
            self.image_etag,
            self.sidecar_key or "",
            self.sidecar_etag or "",
            self.prompt_sha256 or "",
        )


@dataclass(frozen=True)
class Work:
    """One pair to send: its versions, the image's size (for the S3 record), the speed it will be
    paid at, and the sidecar to write beside the image first (a manifest row's), if any."""

    pair: PairVersion
    image_size: int
    speed: str
    sidecar_body: bytes | None = None


def default_path(work_queue_url: str, bucket: str) -> Path:
    """``$XDG_STATE_HOME/backdrop/backfill/<bucket>-<hash>.sqlite``: one ledger per queue and bucket."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    digest = hashlib.sha256(f"{work_queue_url}\n{bucket}".encode()).hexdigest()[:12]
    return Path(state) / "backdrop" / "backfill" / f"{bucket}-{digest}.sqlite"


class Ledger:
    """The file, opened for one run. Safe to share between the planning threads."""

    def __init__(self, path: Path, *, remember_seconds: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._remember_seconds = remember_seconds
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A commit a batch: WAL with NORMAL syncs at checkpoints, and loses at most the last
        # batches on a power cut, which a re-run then sends again at no cost.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # The page caches are all the memory the ledger takes, whatever its size on disk: fixed.
        for database in ("main", "temp"):
            self._db.execute(f"PRAGMA {database}.cache_size = -{_CACHE_KIB}")
        self._planned = 0

    def close(self) -> None:
        with self._lock:
            self._db.commit()
            self._db.close()

    # -- what earlier runs sent ------------------------------------------------------------------

    def sent_speed(self, pair: PairVersion) -> str | None:
        """The speed this very pair was sent at by an earlier run still remembered, or None."""
        with self._lock:
            found = self._db.execute(
                "SELECT speed FROM sent WHERE image_key = ? AND image_etag = ? AND sidecar_key = ? "
                "AND sidecar_etag = ? AND prompt_sha256 = ? AND sent_at >= ?",
                (*pair.row(), time.time() - self._remember_seconds),
            ).fetchone()
        return None if found is None else str(found[0])

    def record_sent(self, works: Iterable[Work]) -> None:
        now = time.time()
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO sent VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*work.pair.row(), work.speed, now) for work in works],
            )
            self._db.commit()

    # -- this run's output index -----------------------------------------------------------------

    def index_outputs(self, keys: Iterable[str]) -> int:
        """Note the output bucket's keys; how many were noted."""
        count = 0
        batch: list[tuple[str]] = []
        for key in keys:
            batch.append((key,))
            if len(batch) == _CHUNK:
                count += self._add_outputs(batch)
                batch = []
        return count + self._add_outputs(batch)

    def _add_outputs(self, batch: list[tuple[str]]) -> int:
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO outputs VALUES (?)", batch)
            self._db.commit()
        return len(batch)

    def outputs_among(self, keys: Iterable[str]) -> list[str]:
        """Those of ``keys`` that the output bucket had when it was listed."""
        with self._lock:
            return [
                key
                for key in keys
                if self._db.execute("SELECT 1 FROM outputs WHERE key = ?", (key,)).fetchone() is not None
            ]

    # -- this run's manifest ---------------------------------------------------------------------

    def first_line_of(self, key: str, line: int) -> int | None:
        """The earlier manifest line that named this key, or None (and this line is noted)."""
        with self._lock:
            found = self._db.execute("SELECT line FROM manifest_keys WHERE key = ?", (key,)).fetchone()
            if found is None:
                self._db.execute("INSERT INTO manifest_keys VALUES (?, ?)", (key, line))
        return None if found is None else int(found[0])

    # -- this run's plan -------------------------------------------------------------------------

    def plan(self, work: Work) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO plan (image_key, image_etag, image_size, sidecar_key, sidecar_etag, "
                "prompt_sha256, speed, sidecar_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _plan_row(work),
            )
            self._planned += 1
            if self._planned % _CHUNK == 0:
                self._db.commit()

    def planned(self, *, chunk: int = _CHUNK) -> Iterator[Work]:
        """The plan, in the order it was made, read a chunk at a time."""
        after = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT seq, image_key, image_etag, sidecar_key, sidecar_etag, prompt_sha256, "
                    "image_size, speed, sidecar_body FROM plan WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, chunk),
                ).fetchall()
            if not rows:
                return
            for seq, image_key, image_etag, sidecar_key, sidecar_etag, prompt, size, speed, body in rows:
                after = seq
                pair = PairVersion(
                    image_key, image_etag, sidecar_key or None, sidecar_etag or None, prompt or None
                )
                yield Work(pair, size, speed, body)


def _plan_row(work: Work) -> tuple[object, ...]:
    image_key, image_etag, sidecar_key, sidecar_etag, prompt = work.pair.row()
    return (
        image_key,
        image_etag,
        work.image_size,
        sidecar_key,
        sidecar_etag,
        prompt,
        work.speed,
        work.sidecar_body,
    )
