"""Paid answers kept on the container's local disk (``/tmp``) until they are stored in S3.

An ``output_write`` failure is retried on later receives of the message. The answer
was paid for, so a retry must not buy it again: it waits here, and a later attempt or a redrive
that reaches the same container stores it without a call. A different container has no copy and
calls again: nothing durable is left to keep it in once the output bucket itself is failing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from backdrop_fn.errors import OutputWriteFailed
from backdrop_fn.images import ImageType
from backdrop_fn.ports import ApiImage, KeptAnswer

# Half of the 512 MB of /tmp a Lambda function has by default; the oldest answers give way first.
MAX_KEPT_BYTES = 256 * 1024 * 1024
_COPY_CHUNK = 1024 * 1024


class DiskKeptAnswers:
    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = MAX_KEPT_BYTES) -> None:
        self._directory = Path(directory)
        self._max_bytes = max_bytes
        self._holder: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def in_temporary_directory(cls) -> DiskKeptAnswers:
        """A keep of its own, removed with the process: one container, one keep."""
        holder = tempfile.TemporaryDirectory(prefix="backdrop-kept-answers-")
        kept = cls(holder.name)
        kept._holder = holder  # lives as long as the keep
        return kept

    def keep(self, pair_id: str, answer: ApiImage, metadata: dict[str, str]) -> KeptAnswer:
        body_path, about_path = self._paths(pair_id)
        partial = self._directory / f"{pair_id}.{uuid.uuid4().hex}.partial"  # one writer a file
        about = {"image_type": dataclasses.asdict(answer.image_type), "metadata": metadata}
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as out:
                shutil.copyfileobj(answer.body, out, _COPY_CHUNK)
            about_path.write_text(json.dumps(about), encoding="utf-8")
            os.replace(partial, body_path)  # last: a body on disk is always a whole one
        except OSError as error:
            raise OutputWriteFailed(
                f"the API's answer could not be kept on local disk: {error.strerror or error}"
            ) from None
        finally:
            with contextlib.suppress(OSError):  # what remains of an answer that broke off
                partial.unlink(missing_ok=True)
        self._make_room(keeping=body_path)
        return _kept(body_path, about)

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
            path.unlink(missing_ok=True)

    def _paths(self, pair_id: str) -> tuple[Path, Path]:
        return self._directory / f"{pair_id}.body", self._directory / f"{pair_id}.json"

    def _make_room(self, *, keeping: Path) -> None:
        # Best effort: a file that another thread of a local run removed meanwhile ends the
        # pass, and the next answer kept makes room again.
        with contextlib.suppress(OSError):
            bodies = sorted(self._directory.glob("*.body"), key=lambda path: path.stat().st_mtime)
            total = sum(path.stat().st_size for path in bodies)
            for oldest in bodies:
                if total <= self._max_bytes or oldest == keeping:
                    break
                total -= oldest.stat().st_size
                oldest.unlink()
                oldest.with_suffix(".json").unlink(missing_ok=True)


def _kept(body_path: Path, about: dict[str, Any]) -> KeptAnswer:
    def open_body() -> BinaryIO:
        try:
            return body_path.open("rb")
        except OSError as error:  # gone since it was found: the next attempt calls again
            raise OutputWriteFailed(f"the kept answer could not be read: {error.strerror or error}") from None

    return KeptAnswer(
        image_type=ImageType(**about["image_type"]),
        metadata=dict(about["metadata"]),
        open=open_body,
    )
