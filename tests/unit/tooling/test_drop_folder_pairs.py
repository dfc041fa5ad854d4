"""The drop folder's pure rules: which files make a pair, what a pair costs, which outputs are whose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backdrop.drop.outcomes import event_pattern, owner_of
from backdrop.drop.stack_folder import FolderPair, estimated_cost, folder_pairs


def test_an_image_pairs_with_its_own_json_before_its_stems_and_out_is_never_read(tmp_path: Path):
    for name in ("shop/a.jpg", "shop/a.jpg.json", "shop/a.json", "b.png", "b.json", "c.webp", "d.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "e.png").write_bytes(b"a result")
    (tmp_path / "notes.txt").write_text("neither")

    pairs = folder_pairs(tmp_path, tmp_path / "out")

    assert pairs == [
        FolderPair("b.png", "b.json"),
        FolderPair("c.webp", None),
        FolderPair("shop/a.jpg", "shop/a.jpg.json"),
        FolderPair(None, "d.json"),
    ]
    assert folder_pairs(tmp_path, tmp_path / "out", only=[tmp_path / "b.json"]) == [
        FolderPair("b.png", "b.json")
    ]


@pytest.mark.parametrize(
    ("sidecar", "usd"),
    [
        ({"prompt": "p"}, 0.075),
        ({"prompt": "p", "rendering_speed": "TURBO"}, 0.037),
        (
            {"prompt": "p", "rendering_speed": "TURBO", "variants": [{}, {"rendering_speed": "QUALITY"}]},
            0.150,
        ),
        (None, 0.075),
    ],
)
def test_a_pair_costs_one_call_at_its_speed_or_one_per_variant(sidecar: dict | None, usd: float):
    body = json.dumps(sidecar).encode() if sidecar is not None else b"{not json"
    assert estimated_cost(body) == pytest.approx(usd)


@pytest.mark.parametrize(
    ("key", "owner"),
    [
        ("out/shop/a.png", "shop/a.jpg"),
        ("out/shop/a.v2.png", "shop/a.jpg"),
        ("out/shop/a@2000x2000.jpg", "shop/a.jpg"),
        ("out/shop/a.v2@amazon.jpg", "shop/a.jpg"),
        ("out/shop/ab.png", None),
        ("out/shop/a/b.png", None),
    ],
)
def test_an_output_variant_or_rendition_belongs_to_the_image_of_its_base(key: str, owner: str | None):
    assert owner_of(key, {"out/shop/a": "shop/a.jpg"}) == owner


def test_the_run_subscribes_to_its_own_keys_only_when_it_has_a_prefix():
    assert "$or" not in event_pattern("")
    assert event_pattern("drops/")["$or"] == [
        {"detail": {"input": {"key": [{"prefix": "drops/"}]}}},
        {"detail": {"source": {"key": [{"prefix": "drops/"}]}}},
    ]
