"""The spend caps as the pipeline meets them: a call that would pass one is not made."""

from __future__ import annotations

import pytest

from backdrop_fn.errors import RateLimited, ServerError
from backdrop_fn.outcome import Status
from tests.unit.function.conftest import World, statuses
from tests.unit.function.fakes import JPEG_BYTES, InMemorySpendGuard

QUALITY = {"prompt": "a sunny beach", "seed": 1234, "rendering_speed": "QUALITY"}  # $0.113


def upload_pair(world: World, name: str) -> None:
    world.upload(f"{name}.jpg", JPEG_BYTES)
    world.upload(f"{name}.jpg.json", QUALITY)


def test_a_call_that_would_pass_the_cap_is_not_made_and_goes_to_the_dlq_at_once(world: World):
    world.spend = InMemorySpendGuard(cap_usd=0.25)  # two QUALITY calls fit, not three
    for name in ("a", "b", "c"):
        upload_pair(world, name)
    assert statuses(world.event("a.jpg")) == [Status.PROCESSED]
    assert statuses(world.event("b.jpg")) == [Status.PROCESSED]
    # Receives left, yet dead-lettered now: no receive can help before the cap is raised.
    assert statuses(world.event("c.jpg", attempt=1, final=False, message_id="m3")) == [Status.FAILED]
    assert world.api.calls == 2
    ((record, error_class),) = world.dlq.sent
    assert error_class == "budget_exceeded"
    assert record["error"]["retryable"] is True
    assert "$0.23 of $0.25" in record["error"]["message"]
    assert record["cost"] == {"paid_calls": 0, "estimated_usd": 0.0}  # nothing bought for it
    assert round(world.spend.spent_usd, 3) == 0.226


def test_a_redrive_after_the_cap_is_raised_buys_the_pair(world: World):
    world.spend = InMemorySpendGuard(cap_usd=0.05)
    upload_pair(world, "a")
    assert statuses(world.event("a.jpg")) == [Status.FAILED]
    world.spend.cap_usd = 1.0
    assert statuses(world.event("a.jpg", replay_of="dlq-message-1")) == [Status.PROCESSED]
    assert world.api.calls == 1


@pytest.mark.parametrize(
    "uncharged", [RateLimited("API 429", http_status=429), ServerError("API 503", http_status=503)]
)
def test_a_call_the_api_did_not_charge_gives_its_price_back(world: World, uncharged):
    upload_pair(world, "a")
    world.api.errors = [uncharged]
    with pytest.raises(type(uncharged)):
        world.event("a.jpg", attempt=1, final=False, message_id="m1")
    assert world.spend.reserved == []
    assert world.metrics.total("EstimatedSpendUsd") == 0


def test_each_charged_call_adds_its_estimated_price_to_the_spend_metric(world: World):
    for name in ("a", "b"):
        upload_pair(world, name)
        world.event(f"{name}.jpg")
    assert round(world.metrics.total("EstimatedSpendUsd"), 3) == 0.226
    assert round(world.spend.spent_usd, 3) == 0.226
