"""What `backdrop watch` remembers between runs, and how it reads the function's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backdrop.watch import FunctionLog, WatchState, content_md5, pair_stem


@pytest.mark.parametrize(
    ("key", "stem"),
    [
        ("shop/shoe.jpg", "shop/shoe"),
        ("shop/shoe.JPG.json", "shop/shoe"),
        ("shop/shoe.json", "shop/shoe"),
        ("shop/notes.v1/readme.json", "shop/notes.v1/readme"),
        ("a.b.webp", "a.b"),
    ],
)
def test_an_image_and_its_sidecars_share_a_stem(key: str, stem: str):
    assert pair_stem(key) == stem


def test_the_state_survives_a_restart_and_knows_what_a_result_came_from(tmp_path: Path):
    out = tmp_path / "out"
    (out / "shoe.png").parent.mkdir(parents=True)
    (out / "shoe.png").write_bytes(b"result")
    state = WatchState.load(out / ".backdrop-watch.json")
    state.uploaded = {"shoe.jpg": content_md5(b"image"), "shoe.jpg.json": content_md5(b"v1")}
    state.record_result(
        "shoe.jpg",
        out / "shoe.png",
        {"shoe.jpg": f'"{content_md5(b"image")}"', "shoe.jpg.json": content_md5(b"v1")},
    )
    state.save()

    again = WatchState.load(out / ".backdrop-watch.json")
    assert again.result_from("shoe.jpg", content_md5(b"image")) == "shoe.png"
    assert again.result_from("shoe.jpg.json", content_md5(b"v2")) is None  # a changed sidecar
    (out / "shoe.png").unlink()
    assert again.result_from("shoe.jpg", content_md5(b"image")) is None  # the result was deleted


def test_an_unreadable_state_starts_afresh(tmp_path: Path):
    path = tmp_path / ".backdrop-watch.json"
    path.write_text("{not json")
    assert WatchState.load(path).results == {}


def test_the_log_is_read_line_by_line_as_it_grows(tmp_path: Path):
    path = tmp_path / "function.log"
    log = FunctionLog(path)
    assert log.new_entries() == []  # not there yet
    first = json.dumps({"message": "image waits for its sidecar", "key": "a.png"})
    path.write_text(first + "\nnot json\n" + '{"message": "proc')
    assert log.new_entries() == [{"message": "image waits for its sidecar", "key": "a.png"}]
    with path.open("a") as more:
        more.write('essed"}\n[1, 2]\n')
    assert log.new_entries() == [{"message": "processed"}]
