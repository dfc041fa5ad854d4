"""The keep of paid answers on local disk: whole answers only, the oldest give way, remnants ignored."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from backdrop_fn.adapters.kept_answers import DiskKeptAnswers
from backdrop_fn.errors import ApiTimeout, OutputWriteFailed
from backdrop_fn.images import PNG, WEBP
from backdrop_fn.ports import ApiImage

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


def test_the_oldest_answers_give_way_when_the_keep_is_full(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path, max_bytes=25)
    for age, pair_id in enumerate(["old", "middle", "new"]):
        keep.keep(pair_id, answer(b"x" * 10), METADATA)
        os.utime(tmp_path / f"{pair_id}.body", (1000 + age, 1000 + age))
    keep.keep("newest", answer(b"y" * 10), METADATA)
    assert [pair for pair in ("old", "middle", "new", "newest") if keep.find(pair)] == ["new", "newest"]


def test_an_answer_larger_than_the_keep_is_still_kept_until_stored(tmp_path: Path):
    keep = DiskKeptAnswers(tmp_path, max_bytes=5)
    keep.keep("big", answer(b"z" * 50), METADATA)
    assert keep.find("big") is not None


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


def test_each_container_has_a_keep_of_its_own():
    first, second = DiskKeptAnswers.in_temporary_directory(), DiskKeptAnswers.in_temporary_directory()
    first.keep("pair-1", answer(b"png"), METADATA)
    assert first.find("pair-1") is not None
    assert second.find("pair-1") is None
