"""One completion event per outcome (CONTRACT.md §8): at least once, never a second paid call."""

from __future__ import annotations

import logging

import pytest

from backdrop_fn.completion import FAILED, PROCESSED
from backdrop_fn.errors import EventNotPublished, InfrastructureUnavailable
from backdrop_fn.outcome import Status
from backdrop_fn.ports import Purchases
from tests.unit.function.conftest import BUCKET, OUTPUT_BUCKET, World, statuses
from tests.unit.function.fakes import PNG_BYTES

SIDECAR = {"prompt": "a linen table in soft light", "seed": 4321, "metadata": {"sku": "MUG-7"}}


def pair(world: World, key: str = "shop/mug.png", sidecar: dict | None = None) -> tuple[str, str]:
    image_etag = world.upload(key, PNG_BYTES)
    sidecar_etag = world.upload(key + ".json", sidecar or SIDECAR)
    return image_etag, sidecar_etag


def test_a_processed_pair_publishes_one_event_saying_where_what_and_what_it_cost(world: World):
    image_etag, sidecar_etag = pair(world)
    assert statuses(world.event("shop/mug.png")) == [Status.PROCESSED]
    (detail,) = world.bus.details(PROCESSED)
    completed_at = detail.pop("completed_at")
    latency = detail.pop("api_latency_ms")
    assert detail == {
        "version": 1,
        "input": {"bucket": BUCKET, "key": "shop/mug.png", "version_id": None, "etag": image_etag},
        "sidecar": {"key": "shop/mug.png.json", "etag": sidecar_etag},
        "variant": None,
        "output": {
            "bucket": OUTPUT_BUCKET,
            "key": "shop/mug.png",
            "version_id": "v1",  # the version this write made: the output bucket keeps versions
            "content_type": "image/png",
            "bytes": len(world.output("shop/mug.png")["body"]),
        },
        "renditions": [],
        "seed": 4321,
        "rendering_speed": "DEFAULT",
        "metadata": {"sku": "MUG-7"},
        "cost": {"paid_calls": 1, "estimated_usd": 0.075, "pair_estimated_usd": 0.075},
        "attempts": 1,
        "request_id": "req-1",
    }
    assert completed_at.endswith("Z")
    assert isinstance(latency, int)
    assert world.bus.details(FAILED) == []


def test_the_other_half_s_event_and_duplicates_publish_nothing_more(world: World):
    pair(world)
    world.event("shop/mug.png")
    world.event("shop/mug.png.json")
    world.event("shop/mug.png")
    assert len(world.bus.published) == 1


def test_a_failure_publishes_its_dlq_record(world: World):
    pair(world, sidecar={"prompt": "a table", "sead": 7})
    assert statuses(world.event("shop/mug.png")) == [Status.FAILED]
    (detail,) = world.bus.details(FAILED)
    assert detail == world.dlq.records[0]
    assert detail["error"]["class"] == "invalid_sidecar"
    assert world.bus.details(PROCESSED) == []


def test_an_event_the_bus_refuses_comes_back_for_the_event_alone(world: World):
    pair(world)
    world.bus.refusals = 2  # when the pair is done, and when it is tried again at once
    with pytest.raises(EventNotPublished):
        world.event("shop/mug.png", final=False)
    assert world.api.calls == 1
    assert world.metrics.total("EventsUnpublished") == 1
    assert len(world.pending_events.kept) == 1

    assert statuses(world.event("shop/mug.png", attempt=2, final=False)) == [Status.DUPLICATE]
    assert world.api.calls == 1  # the API is never called again for it
    (detail,) = world.bus.details(PROCESSED)
    assert detail["output"]["key"] == "shop/mug.png"
    assert world.pending_events.kept == {}
    world.event("shop/mug.png", attempt=3, final=False)
    assert len(world.bus.published) == 1  # published once: nothing waits any more


def test_an_event_refused_once_is_published_by_the_same_delivery(world: World):
    pair(world)
    world.bus.refusals = 1
    assert statuses(world.event("shop/mug.png", final=False)) == [Status.PROCESSED]
    assert len(world.bus.details(PROCESSED)) == 1
    assert world.metrics.total("EventsUnpublished") == 1
    assert world.pending_events.kept == {}


def test_a_failure_whose_event_is_refused_sends_no_second_dlq_record(world: World):
    pair(world, sidecar={"prompt": "a table", "sead": 7})
    world.bus.refusals = 2
    with pytest.raises(EventNotPublished):
        world.event("shop/mug.png", final=False)
    world.event("shop/mug.png", attempt=2, final=False)
    assert len(world.dlq.records) == 1
    assert world.bus.details(FAILED) == world.dlq.records


def test_on_its_last_delivery_an_unpublished_event_is_logged_and_the_pair_stays_done(
    world: World, caplog: pytest.LogCaptureFixture
):
    pair(world)
    world.bus.refusals = 2
    with caplog.at_level(logging.ERROR):
        assert statuses(world.event("shop/mug.png", final=True)) == [Status.PROCESSED]
    assert world.dlq.records == []
    assert "given up with the message's last delivery" in caplog.text


def test_an_event_that_can_be_neither_published_nor_kept_is_logged_whole(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    pair(world)
    world.bus.refusals = 1

    def table_down(*_: object) -> None:
        raise InfrastructureUnavailable("the idempotency table failed")

    monkeypatch.setattr(world.pending_events, "keep", table_down)
    with caplog.at_level(logging.ERROR):
        assert statuses(world.event("shop/mug.png", final=False)) == [Status.PROCESSED]
    (lost,) = [record for record in caplog.records if "completion event lost" in record.message]
    assert '"sku":"MUG-7"' in lost.detail  # type: ignore[attr-defined]


def test_a_result_stored_by_a_container_that_died_before_telling_is_told_by_the_next_attempt(world: World):
    pair(world)
    world.event("shop/mug.png")
    (purchase_id,) = world.ledger.counts
    world.ledger.counts[purchase_id] = Purchases(paid=1, lost=0)  # the claim never completed
    world.claims.done.clear()
    world.bus.published.clear()  # as if that container had died before publishing
    assert statuses(world.event("shop/mug.png", attempt=2)) == [Status.PROCESSED]
    assert world.api.calls == 1
    (detail,) = world.bus.details(PROCESSED)
    assert detail["output"]["key"] == "shop/mug.png"
    assert detail["output"]["version_id"] == "v1"
    assert detail["seed"] == 4321
    assert detail["api_latency_ms"] is None  # no call was made by this attempt
    assert detail["attempts"] == 2


def test_a_kept_event_that_cannot_be_read_on_the_last_delivery_leaves_the_pair_processed(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    pair(world)
    world.bus.refusals = 2
    with pytest.raises(EventNotPublished):
        world.event("shop/mug.png", final=False)

    def table_down(*_: object) -> None:
        raise EventNotPublished("could not read an unpublished event: ThrottlingException")

    monkeypatch.setattr(world.pending_events, "take", table_down)
    assert statuses(world.event("shop/mug.png", attempt=2, final=True)) == [Status.DUPLICATE]
    assert world.dlq.records == []  # a stored result is never dead-lettered for its event
    assert world.api.calls == 1
