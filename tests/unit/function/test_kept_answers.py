"""The keep of paid answers on local disk: whole answers only, what fits, nothing orphaned."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from backdrop_fn.adapters.kept_answers import DiskKeptAnswers
from backdrop_fn.errors import ApiTimeout, OutputWriteFailed
from backdrop_fn.images import PNG, WEBP
from backdrop_fn.ports import ApiImage, KeptAnswer

METADATA = {"seed": "7", "source-key": "shop/shoe.jpg"}


def answer(body: bytes, image_type=PNG) -> ApiImage:
    return ApiImage(image_type=image_type, body=io.BytesIO(body))


class BreaksOff(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        if self.tell() > 0:
            raise ApiTimeout("the API's answer stalled before its end")
        return super().read(4)


def test_a_kept_answer_is_found_whole_with_its_type_and_metadata(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path)
    keep.keep("pair-1", answer(b"webp bytes", WEBP), METADATA)
    found = keep.find("pair-1")
    assert found is not None
    assert (found.image_type, found.metadata) == (WEBP, METADATA)
    with found.open() as body:
        assert body.read() == b"webp bytes"
    assert keep.find("pair-2") is None


def test_a_forgotten_answer_leaves_nothing_on_disk(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path)
    keep.keep("pair-1", answer(b"png"), METADATA)
    keep.forget("pair-1")
    assert keep.find("pair-1") is None
    assert list(tmp_path.iterdir()) == []


def test_an_answer_that_breaks_off_is_not_kept(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path)
    with pytest.raises(ApiTimeout):
        keep.keep("pair-1", ApiImage(image_type=PNG, body=BreaksOff(b"12345678")), METADATA)
    assert keep.find("pair-1") is None
    assert list(tmp_path.iterdir()) == []


def held_in_memory(kept: KeptAnswer) -> bytes:
    assert not kept.durable
    with kept.open() as body:
        return body.read()


def test_an_answer_waiting_for_its_retry_never_gives_way_to_a_newer_one(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path, max_bytes=25)
    assert keep.keep("first", answer(b"x" * 10), METADATA).durable
    assert keep.keep("second", answer(b"x" * 10), METADATA).durable
    assert held_in_memory(keep.keep("third", answer(b"y" * 10), METADATA)) == b"y" * 10
    assert [pair for pair in ("first", "second", "third") if keep.find(pair)] == ["first", "second"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "first.body",
        "first.json",
        "second.body",
        "second.json",
    ]


def test_answers_kept_for_over_an_hour_make_room(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path, max_bytes=25)
    keep.keep("stale", answer(b"x" * 10), METADATA)
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / "stale.body", (two_hours_ago, two_hours_ago))
    keep.keep("waiting", answer(b"x" * 10), METADATA)
    keep.keep("new", answer(b"y" * 10), METADATA)
    assert [pair for pair in ("stale", "waiting", "new") if keep.find(pair)] == ["waiting", "new"]


def test_an_answer_larger_than_the_keep_is_held_whole_in_memory_and_leaves_nothing_on_disk(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path, max_bytes=5)
    body = bytes(range(256)) * 5000  # several read chunks, the first already over the keep
    kept = keep.keep("big", answer(body, WEBP), METADATA)
    assert held_in_memory(kept) == body
    assert (kept.image_type, kept.metadata) == (WEBP, METADATA)
    assert keep.find("big") is None
    assert list(tmp_path.iterdir()) == []


def test_the_disk_s_free_space_bounds_what_is_kept(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path, reserve_bytes=10**18)  # more than any disk has free
    assert held_in_memory(keep.keep("pair-1", answer(b"png"), METADATA)) == b"png"
    assert keep.find("pair-1") is None


def test_a_disk_that_fails_mid_answer_loses_none_of_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    keep = DiskKeptAnswers(tmp_path)
    body = b"z" * (3 * 1024 * 1024 + 17)  # four read chunks
    real_open = Path.open

    def disk_fills_after_one_chunk(path: Path, *args, **kwargs):
        opened = real_open(path, *args, **kwargs)
        if path.suffix != ".partial":
            return opened
        written = 0
        real_write = opened.write

        def write(data: bytes) -> int:
            nonlocal written
            written += len(data)
            if written > 1024 * 1024:
                raise OSError(28, "No space left on device")
            return real_write(data)

        opened.write = write
        return opened

    monkeypatch.setattr(Path, "open", disk_fills_after_one_chunk)
    assert held_in_memory(keep.keep("pair-1", answer(body), METADATA)) == body
    assert list(tmp_path.iterdir()) == []


def test_an_answer_that_outgrows_the_room_after_some_chunks_is_held_whole(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path, max_bytes=2 * 1024 * 1024 + 5)  # two read chunks fit, not three
    body = bytes(range(251)) * 20_000  # about 4.8 MiB: five chunks
    assert held_in_memory(keep.keep("pair-1", answer(body), METADATA)) == body
    assert list(tmp_path.iterdir()) == []


def test_a_description_that_meets_a_full_disk_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def disk_full(path: Path, *args, **kwargs):
        path.write_bytes(b'{"image_ty')  # what a write cut short by ENOSPC leaves
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    keep = DiskKeptAnswers(tmp_path)
    assert held_in_memory(keep.keep("pair-1", answer(b"png bytes"), METADATA)) == b"png bytes"
    assert list(tmp_path.iterdir()) == []


def test_a_keep_whose_directory_cannot_be_made_holds_the_answer_in_memory(tmp_path: Path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the keep's directory should be")
    assert held_in_memory(DiskKeptAnswers(blocker).keep("pair-1", answer(b"png"), METADATA)) == b"png"


def test_partials_of_runtimes_that_are_gone_are_removed_at_start(tmp_path: Path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(ended.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        left = {
            "killed": tmp_path / f"pair-1.{dead_pid}.abc.partial",
            "same pid, earlier runtime": tmp_path / f"pair-2.{os.getpid()}.abc.partial",
            "unnamed": tmp_path / "pair-3.partial",
            "description without a body": tmp_path / "pair-4.json",
        }
        writing = tmp_path / f"pair-5.{alive.pid}.abc.partial"
        for path in [*left.values(), writing]:
            path.write_bytes(b"remnant")
        DiskKeptAnswers(tmp_path).keep("whole", answer(b"png"), METADATA)
        DiskKeptAnswers(tmp_path).remove_orphans()
        assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
            ["whole.body", "whole.json", writing.name]
        )
    finally:
        alive.kill()
        alive.wait()


def test_a_container_s_keep_is_in_its_tmp_and_survives_a_runtime_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    DiskKeptAnswers.at_start().keep("pair-1", answer(b"png"), METADATA)
    restarted = DiskKeptAnswers.at_start()
    assert restarted.find("pair-1") is not None
    assert (tmp_path / "backdrop-kept-answers" / "pair-1.body").exists()


def test_a_corrupt_description_is_not_trusted(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path)
    keep.keep("pair-1", answer(b"png"), METADATA)
    (tmp_path / "pair-1.json").write_text("{not json")
    assert keep.find("pair-1") is None


def test_a_description_without_its_body_is_nothing_kept(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path)
    keep.keep("pair-1", answer(b"png"), METADATA)
    (tmp_path / "pair-1.body").unlink()
    assert keep.find("pair-1") is None


def test_an_answer_gone_after_it_was_found_is_an_output_write_failure(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path)
    keep.keep("pair-1", answer(b"png"), METADATA)
    found = keep.find("pair-1")
    keep.forget("pair-1")  # another thread of a local run stored it meanwhile
    with pytest.raises(OutputWriteFailed, match="kept answer could not be read"):
        found.open()
