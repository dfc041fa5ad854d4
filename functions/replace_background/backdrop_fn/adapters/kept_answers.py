"""Paid answers kept on the container's local disk (``/tmp``) until they are stored in S3.

An ``output_write`` failure is retried on later receives of the message. The answer
was paid for, so a retry must not buy it again: it waits here, and a later attempt or a redrive
that reaches the same container stores it without a call. A different container has no copy and
calls again (a counted loss): nothing durable is left to keep it in once the output bucket
itself is failing.

What is kept fits the space left. An answer that would not fit on disk (or meets a disk that
fails) is held in memory for this invocation only: it is stored all the same, and only if its
write fails too is it lost (and counted). An answer waiting for its retry never gives way to a
newer one. Only answers older than ``STALE_AFTER_SECONDS``, whose messages have long been
dead-lettered, make room. A runtime
that was killed mid-answer leaves a partial file named after its process: the next runtime of
the container removes it at start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from backdrop_fn.errors import KeptAnswerGone, OutputWriteFailed
from backdrop_fn.images import ImageType
from backdrop_fn.ports import ApiImage, KeptAnswer

logger = logging.getLogger(__name__)

# Half of the 512 MB of /tmp a Lambda function has by default.
MAX_KEPT_BYTES = 256 * 1024 * 1024
# Left free on the disk for everything else the function and its libraries write there.
DISK_RESERVE_BYTES = 32 * 1024 * 1024
# A message comes back within minutes (MAX_ATTEMPTS backoffs); an hour on, its answer waits
# only for a redrive, which may reach another container anyway.
STALE_AFTER_SECONDS = 3600
_DIRECTORY_NAME = "backdrop-kept-answers"
_COPY_CHUNK = 1024 * 1024
_MIB = 1024 * 1024


class DiskKeptAnswers:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = MAX_KEPT_BYTES,
        reserve_bytes: int = DISK_RESERVE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = Path(directory)
        self._max_bytes = max_bytes
        self._reserve_bytes = reserve_bytes
        self._clock = clock

    @classmethod
    def at_start(cls) -> DiskKeptAnswers:
        """The container's keep in its ``/tmp``, cleared of what a killed runtime left behind.

        One directory per container, not per process: whole answers kept before a runtime
        restart are still worth storing without a call.
        """
        kept = cls(Path(tempfile.gettempdir()) / _DIRECTORY_NAME)
        kept.remove_orphans()
        return kept

    def keep(self, pair_id: str, answer: ApiImage, metadata: dict[str, str]) -> KeptAnswer:
        """Read the answer to its end: onto disk where it fits, else into memory (``durable`` False).

        A disk that fills or fails mid-answer loses none of it: what reached the disk is read back,
        and the rest is read into memory. The API adapter bounds an answer by
        ``MAX_ANSWER_BYTES``: held, it takes twice that at most, far below the function's memory.
        """
        body_path, about_path = self._paths(pair_id)
        partial = self._directory / f"{pair_id}.{os.getpid()}.{uuid.uuid4().hex}.partial"
        about = {"image_type": dataclasses.asdict(answer.image_type), "metadata": metadata}
        disk = _DiskCopy(partial, self._directory, self._room)
        try:
            held: bytearray | None = None
            with disk:  # an error reading the answer itself is not the disk's: it is raised
                while chunk := answer.body.read(_COPY_CHUNK):
                    if held is None and not disk.write(chunk):
                        held = bytearray(disk.read_back())
                    if held is not None:
                        held += chunk
            if held is None:
                try:
                    about_path.write_text(json.dumps(about), encoding="utf-8")
                    os.replace(partial, body_path)  # last: a body on disk is always a whole one
                    return _kept(body_path, about)
                except OSError as error:
                    with contextlib.suppress(OSError):
                        about_path.unlink(missing_ok=True)
                    disk.failed(error)
                    held = bytearray(disk.read_back())
            body = bytes(held)
            del held
        finally:
            with contextlib.suppress(OSError):  # what remains of an answer that broke off
                partial.unlink(missing_ok=True)
        logger.warning(
            "the answer is held in memory only", extra={"pair_id": pair_id, "why": disk.why_not_kept}
        )
        return _held_in_memory(body, about)

    def find(self, pair_id: str) -> KeptAnswer | None:
        body_path, about_path = self._paths(pair_id)
        try:
            about = json.loads(about_path.read_text(encoding="utf-8"))
            if not body_path.exists():
                return None
            return _kept(body_path, about)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # nothing kept, or a remnant no one can trust: the call is made again

    def forget(self, pair_id: str) -> None:
        for path in self._paths(pair_id):
            with contextlib.suppress(OSError):  # a keep that cannot be written kept nothing
                path.unlink(missing_ok=True)

    def remove_orphans(self) -> None:
        """Remove partial answers of runtimes that are gone, and descriptions without a body."""
        with contextlib.suppress(OSError):
            for partial in self._directory.glob("*.partial"):
                if not _written_by_a_live_process(partial):
                    partial.unlink(missing_ok=True)
            for about in self._directory.glob("*.json"):
                if not about.with_suffix(".body").exists():
                    about.unlink(missing_ok=True)

    def _paths(self, pair_id: str) -> tuple[Path, Path]:
        return self._directory / f"{pair_id}.body", self._directory / f"{pair_id}.json"

    def _room(self) -> int:
        """Bytes the next answer may take: within the keep's share, and what the disk has left."""
        self._remove_stale()
        kept = sum(_size(path) for path in self._directory.glob("*.body"))
        free = shutil.disk_usage(self._directory).free - self._reserve_bytes
        return max(0, min(self._max_bytes - kept, free))

    def _remove_stale(self) -> None:
        # Best effort: a file that another thread of a local run removed meanwhile is skipped.
        stale_before = self._clock() - STALE_AFTER_SECONDS
        for body in self._directory.glob("*.body"):
            with contextlib.suppress(OSError):
                if body.stat().st_mtime < stale_before:
                    body.unlink()
                    body.with_suffix(".json").unlink(missing_ok=True)


class _DiskCopy:
    """The disk half of keeping an answer: written while it fits, given up at the first trouble.

    Unbuffered, so that every byte counted as written is on disk to be read back."""

    def __init__(self, partial: Path, directory: Path, room: Callable[[], int]) -> None:
        self._partial = partial
        self._directory = directory
        self._room_of = room
        self._out: BinaryIO | None = None
        self._room = 0
        self._written = 0
        self.why_not_kept = ""

    def __enter__(self) -> _DiskCopy:
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            self._room = self._room_of()
            self._out = self._partial.open("wb", buffering=0)
        except OSError as error:
            self.failed(error)
        return self

    def write(self, chunk: bytes) -> bool:
        """False, and nothing of ``chunk`` counted, once the disk is given up."""
        if self._out is None:
            return False
        if self._written + len(chunk) > self._room:
            self._give_up(
                f"the answer is over the {self._room / _MIB:.1f} MiB left for kept answers "
                "(the keep's share of /tmp, or the disk's free space)"
            )
            return False
        try:
            left = memoryview(chunk)
            while left:
                written = self._out.write(left)
                if not written:  # a raw write that takes nothing: the disk is full
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                left = left[written:]
        except OSError as error:
            self.failed(error)
            return False
        self._written += len(chunk)
        return True

    def read_back(self) -> bytes:
        """What was written whole, read back from the disk that gave up."""
        if not self._written:
            return b""
        try:
            with self._partial.open("rb") as written:
                data = written.read(self._written)
        except OSError as error:
            data, why = b"", error.strerror or str(error)
        else:
            why = f"{len(data)} of its {self._written} bytes came back"
        if len(data) != self._written:
            raise OutputWriteFailed(f"the API's answer could not be kept on local disk nor read back: {why}")
        return data

    def failed(self, error: OSError) -> None:
        self._give_up(f"it could not be kept on local disk: {error.strerror or error}")

    def _give_up(self, why: str) -> None:
        self.why_not_kept = self.why_not_kept or why
        if self._out is not None:
            with contextlib.suppress(OSError):
                self._out.close()
            self._out = None

    def __exit__(self, *exc_info: object) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except OSError as error:
                self.failed(error)


def _written_by_a_live_process(partial: Path) -> bool:
    # ``<pair>.<pid>.<uuid>.partial``: at start, this process has written nothing yet, so a
    # partial bearing its own pid was left by an earlier runtime that had the same one.
    try:
        pid = int(partial.name.split(".")[-3])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, and someone else's
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _held_in_memory(body: bytes, about: dict[str, Any]) -> KeptAnswer:
    return KeptAnswer(
        image_type=ImageType(**about["image_type"]),
        metadata=dict(about["metadata"]),
        open=lambda: io.BytesIO(body),
        durable=False,
    )


def _kept(body_path: Path, about: dict[str, Any]) -> KeptAnswer:
    def open_body() -> BinaryIO:
        try:
            return body_path.open("rb")
        except OSError as error:  # gone since it was found: the next attempt calls again
            raise KeptAnswerGone(f"the kept answer could not be read: {error.strerror or error}") from None

    return KeptAnswer(
        image_type=ImageType(**about["image_type"]),
        metadata=dict(about["metadata"]),
        open=open_body,
    )
