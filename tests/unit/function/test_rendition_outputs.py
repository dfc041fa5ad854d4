"""Renditions of each result: written beside it, from the answer paid for, never bought again."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from PIL import Image

from backdrop_fn.adapters.kept_answers import DiskKeptAnswers
from backdrop_fn.errors import OutputWriteFailed
from backdrop_fn.outcome import Status
from tests.unit.function.conftest import OUTPUT_BUCKET, World, statuses
from tests.unit.function.fakes import JPEG_BYTES

SQUARE_JPEG = {"format": "jpeg", "width": 4, "height": 4, "fit": "pad"}
SHOP_WEBP = {"name": "shop", "format": "webp", "width": 4}
SIDECAR = {"prompt": "a beach", "seed": 1234, "renditions": [SQUARE_JPEG, SHOP_WEBP], "tags": {"sku": "S-1"}}


def a_pair(world: World, sidecar: dict | None = None) -> None:
    world.upload("shop/shoe.jpg", JPEG_BYTES)
    world.upload("shop/shoe.jpg.json", sidecar or SIDECAR)


def picture(world: World, key: str) -> Image.Image:
    return Image.open(io.BytesIO(world.output(key)["body"]))


def test_renditions_are_written_beside_each_variants_result_with_its_metadata_and_tags(world: World):
    a_pair(world, {**SIDECAR, "variants": [{}, {"prompt": "snow"}]})
    assert statuses(world.event("shop/shoe.jpg")) == [Status.PROCESSED] * 2
    assert world.api.calls == 2  # renditions are made, not bought
    for stem, variant in (("shop/shoe", "1"), ("shop/shoe.v2", "2")):
        square, shop = world.output(f"{stem}@4x4.jpg"), world.output(f"{stem}@shop.webp")
        assert (square["content_type"], picture(world, f"{stem}@4x4.jpg").size) == ("image/jpeg", (4, 4))
        assert (shop["content_type"], picture(world, f"{stem}@shop.webp").size) == ("image/webp", (4, 3))
        assert square["metadata"]["variant"] == shop["metadata"]["variant"] == variant
        assert (square["metadata"]["rendition"], shop["metadata"]["rendition"]) == ("4x4", "shop")
        assert square["metadata"]["source-key"] == "shop/shoe.jpg"
        assert square["tags"] == shop["tags"] == {"sku": "S-1"}


def test_each_event_lists_its_results_renditions(world: World):
    a_pair(world)
    world.event("shop/shoe.jpg")
    (detail,) = world.bus.details("Backdrop Image Processed")
    listed = [(r["key"], r["content_type"]) for r in detail["renditions"]]
    assert listed == [("shop/shoe@4x4.jpg", "image/jpeg"), ("shop/shoe@shop.webp", "image/webp")]
    assert [r["bytes"] for r in detail["renditions"]] == [len(world.output(key)["body"]) for key, _ in listed]


def test_the_stacks_default_renditions_apply_when_the_sidecar_gives_none(world: World):
    world.configure(DEFAULT_RENDITIONS='[{"format": "png", "width": 2, "name": "thumb"}]')
    a_pair(world, {"prompt": "a beach"})
    world.event("shop/shoe.jpg")
    assert picture(world, "shop/shoe@thumb.png").size == (2, 2)


def test_an_empty_list_in_the_sidecar_asks_for_no_renditions_at_all(world: World):
    world.configure(DEFAULT_RENDITIONS='[{"format": "png", "width": 2, "name": "thumb"}]')
    a_pair(world, {"prompt": "a beach", "renditions": []})
    world.event("shop/shoe.jpg")
    assert sorted(key for _, key in world.store.outputs) == ["shop/shoe.png"]


def test_a_failed_rendition_write_is_retried_from_the_kept_answer_without_paying_again(world: World):
    a_pair(world)
    world.store.failing_writes["shop/shoe@shop.webp"] = [OutputWriteFailed("S3 503", retryable=True)]
    with pytest.raises(OutputWriteFailed):
        world.event("shop/shoe.jpg", attempt=1, final=False)
    assert statuses(world.event("shop/shoe.jpg", attempt=2, final=False)) == [Status.PROCESSED]
    assert world.api.calls == 1
    assert (OUTPUT_BUCKET, "shop/shoe@shop.webp") in world.store.outputs


def test_renditions_already_written_are_not_made_again(world: World):
    a_pair(world)
    world.store.failing_writes["shop/shoe@shop.webp"] = [OutputWriteFailed("S3 503", retryable=True)]
    with pytest.raises(OutputWriteFailed):
        world.event("shop/shoe.jpg", attempt=1, final=False)
    versions_before = len(world.store.output_versions[(OUTPUT_BUCKET, "shop/shoe@4x4.jpg")])
    world.event("shop/shoe.jpg", attempt=2, final=False)
    assert len(world.store.output_versions[(OUTPUT_BUCKET, "shop/shoe@4x4.jpg")]) == versions_before


def test_a_result_stored_by_a_container_that_died_gets_its_renditions_from_the_stored_result(
    world: World, tmp_path: Path
):
    a_pair(world)
    world.store.failing_writes["shop/shoe@4x4.jpg"] = [OutputWriteFailed("S3 503", retryable=True)]
    with pytest.raises(OutputWriteFailed):
        world.event("shop/shoe.jpg", attempt=1, final=False)
    world.kept = DiskKeptAnswers(tmp_path / "another-container")  # where no answer is kept
    assert statuses(world.event("shop/shoe.jpg", attempt=2, final=False)) == [Status.PROCESSED]
    assert world.api.calls == 1
    assert picture(world, "shop/shoe@4x4.jpg").size == (4, 4)
    assert ("shop/shoe.png", "stream") in world.store.reads  # made from the stored result


def test_rendition_keys_s3_cannot_take_are_refused_before_paying(world: World):
    long_name = {"name": "n" * 64, "format": "png", "width": 2}
    key = "k" * 960 + ".jpg"  # its output key fits in S3, its rendition's does not
    world.upload(key, JPEG_BYTES)
    world.upload(key + ".json", {"prompt": "a beach", "renditions": [long_name]})
    assert statuses(world.event(key)) == [Status.FAILED]
    assert world.api.calls == 0
    ((record, error_class),) = world.dlq.sent
    assert error_class == "output_write"
    assert "rendition's key would be" in record["error"]["message"]


def test_a_pair_without_renditions_never_loads_the_imaging_code(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    a_pair(world, {"prompt": "a beach"})
    sys.modules.pop("backdrop_fn.srgb", None)
    # input_fix itself is imported with the pipeline (it loads Pillow only when called): what
    # must not happen is the call.
    fixes: list[bytes] = []
    monkeypatch.setattr("backdrop_fn.api_request.upright_srgb", fixes.append)
    world.event("shop/shoe.jpg")
    assert "backdrop_fn.srgb" not in sys.modules
    assert fixes == []
