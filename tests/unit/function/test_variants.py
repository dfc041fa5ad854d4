"""A sidecar's variants: each its own paid call, output key, identity, outcome, event and DLQ record."""

from __future__ import annotations

import json
import logging

import pytest

from backdrop_fn.errors import BadRequest, ServerError
from backdrop_fn.outcome import Status
from backdrop_fn.pricing import price_of
from tests.unit.function.conftest import OUTPUT_BUCKET, World, statuses
from tests.unit.function.fakes import JPEG_BYTES

THREE_SCENES = {
    "prompt": "on a marble counter",
    "seed": 1234,
    "rendering_speed": "TURBO",
    "variants": [
        {},
        {"prompt": "on a beach at dawn", "seed": 555},
        {"prompt": "in a forest", "rendering_speed": "QUALITY"},
    ],
}


def three_scenes(world: World, sidecar: dict | None = None) -> None:
    world.upload("shop/shoe.jpg", JPEG_BYTES)
    world.upload("shop/shoe.jpg.json", sidecar or THREE_SCENES)


def test_each_variant_is_a_paid_call_of_its_own_at_its_own_output_key(world: World):
    three_scenes(world)
    outcomes = world.event("shop/shoe.jpg")
    assert statuses(outcomes) == [Status.PROCESSED] * 3
    asked = [(p["prompt"], p["seed"], p["rendering_speed"]) for p in world.api.payloads]
    assert asked == [
        ("on a marble counter", 1234, "TURBO"),
        ("on a beach at dawn", 555, "TURBO"),
        ("in a forest", 1234, "QUALITY"),
    ]
    assert [o.output_key for o in outcomes] == ["shop/shoe.png", "shop/shoe.v2.png", "shop/shoe.v3.png"]
    assert [world.output(o.output_key)["metadata"]["variant"] for o in outcomes] == ["1", "2", "3"]
    assert world.output("shop/shoe.v3.png")["metadata"]["rendering-speed"] == "QUALITY"


def test_a_duplicate_event_buys_no_variant_again(world: World):
    three_scenes(world)
    world.event("shop/shoe.jpg")
    assert statuses(world.event("shop/shoe.jpg.json")) == [Status.DUPLICATE] * 3
    assert world.api.calls == 3


def test_a_typo_in_the_third_variant_costs_nothing_for_the_first_two(world: World):
    sidecar = {**THREE_SCENES, "variants": [{}, {"prompt": "beach"}, {"sede": 7}]}
    three_scenes(world, sidecar)
    assert statuses(world.event("shop/shoe.jpg")) == [Status.FAILED]
    assert world.api.calls == 0
    ((record, error_class),) = world.dlq.sent
    assert error_class == "invalid_sidecar"
    assert "variants[2].sede: unknown field (did you mean 'seed'?)" in record["error"]["message"]
    assert "variant" not in record  # the whole sidecar failed, not one variant


def test_one_failing_variant_neither_fails_nor_rebuys_the_others(world: World):
    three_scenes(world)
    world.api.errors_for_prompt["on a beach at dawn"] = [BadRequest("API 400: no beach", http_status=400)]
    assert statuses(world.event("shop/shoe.jpg")) == [Status.PROCESSED, Status.FAILED, Status.PROCESSED]
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["variant"]) == ("bad_request", 2)
    assert statuses(world.event("shop/shoe.jpg")) == [Status.DUPLICATE] * 3
    assert world.api.calls == 3


def test_a_passing_failure_of_one_variant_brings_the_message_back_for_that_one_alone(world: World):
    three_scenes(world)
    world.api.errors_for_prompt["on a beach at dawn"] = [ServerError("API 503", http_status=503)]
    with pytest.raises(ServerError):
        world.event("shop/shoe.jpg", attempt=1, final=False)
    assert world.api.calls == 3  # the third variant was not held up by the second
    outcomes = world.event("shop/shoe.jpg", attempt=2, final=False)
    assert statuses(outcomes) == [Status.DUPLICATE, Status.PROCESSED, Status.DUPLICATE]
    assert world.api.calls == 4
    assert (OUTPUT_BUCKET, "shop/shoe.v2.png") in world.store.outputs


def test_redriving_a_variants_record_runs_that_variant_alone(world: World):
    three_scenes(world)
    world.api.errors_for_prompt["on a beach at dawn"] = [BadRequest("API 400", http_status=400)]
    world.api.errors_for_prompt["in a forest"] = [BadRequest("API 400", http_status=400)]
    world.event("shop/shoe.jpg")
    assert [record["variant"] for record in world.dlq.records] == [2, 3]
    outcomes = world.event("shop/shoe.jpg", replay_of="record-of-variant-2", replay_variant=2)
    assert statuses(outcomes) == [Status.DUPLICATE, Status.PROCESSED, Status.DUPLICATE]
    assert [p["prompt"] for p in world.api.payloads[3:]] == ["on a beach at dawn"]


def test_each_variant_publishes_its_own_event_with_the_pairs_estimated_cost(world: World):
    three_scenes(world)
    world.event("shop/shoe.jpg")
    details = world.bus.details("Backdrop Image Processed")
    pair_cost = round(2 * price_of("TURBO") + price_of("QUALITY"), 3)
    assert [(d["variant"], d["output"]["key"]) for d in details] == [
        (1, "shop/shoe.png"),
        (2, "shop/shoe.v2.png"),
        (3, "shop/shoe.v3.png"),
    ]
    assert {d["cost"]["pair_estimated_usd"] for d in details} == {pair_cost}
    assert [d["cost"]["estimated_usd"] for d in details] == [0.037, 0.037, 0.113]


def test_the_pairs_estimated_cost_is_logged_before_any_of_its_calls(
    world: World, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    three_scenes(world)
    calls_when_logged = []
    original = logging.Logger.handle

    def handle(logger: logging.Logger, record: logging.LogRecord) -> None:
        if record.getMessage() == "pair found":
            calls_when_logged.append((world.api.calls, record.calls, record.estimated_usd))
        original(logger, record)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logging.Logger, "handle", handle)
        world.event("shop/shoe.jpg")
    assert calls_when_logged == [(0, 3, 0.187)]


def test_a_pair_without_variants_keeps_the_identity_it_always_had(world: World):
    """Claims stored before variants existed still recognise their pairs."""
    image_etag = world.upload("a.jpg", JPEG_BYTES)
    sidecar_etag = world.upload("a.jpg.json", {"prompt": "a beach", "seed": 1234})
    world.event("a.jpg")
    (identity,) = world.claims.done
    assert json.loads(identity) == {
        "bucket": "in-bucket",
        "image_key": "a.jpg",
        "image_etag": image_etag,
        "sidecar_key": "a.jpg.json",
        "sidecar_etag": sidecar_etag,
        "default_prompt_sha256": None,
    }


def test_each_variant_is_claimed_by_its_position_and_content(world: World):
    three_scenes(world)
    world.event("shop/shoe.jpg")
    identities = [json.loads(identity) for identity in world.claims.done]
    assert [identity["variant"] for identity in identities] == [1, 2, 3]
    assert len({identity["variant_sha256"] for identity in identities}) == 3


def test_tags_are_set_on_every_output_object_of_the_pair(world: World):
    three_scenes(world, {**THREE_SCENES, "tags": {"sku": "SHOE-1", "campaign": "spring 2027"}})
    world.event("shop/shoe.jpg")
    for key in ("shop/shoe.png", "shop/shoe.v2.png", "shop/shoe.v3.png"):
        assert world.output(key)["tags"] == {"sku": "SHOE-1", "campaign": "spring 2027"}
