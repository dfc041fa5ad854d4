"""At most two purchases per pair: a second only when the first answer was lost, and then counted."""

from __future__ import annotations

import pytest

from backdrop_fn.errors import (
    ApiTimeout,
    BadRequest,
    InfrastructureUnavailable,
    InternalError,
    OutputWriteFailed,
    RateLimited,
    ServerError,
)
from backdrop_fn.outcome import Status
from backdrop_fn.ports import Purchases
from tests.unit.function.conftest import World, statuses
from tests.unit.function.fakes import JPEG_BYTES

SIDECAR = {"prompt": "a sunny beach", "seed": 1234}


def a_pair(world: World) -> None:
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)


def retried(world: World, attempt: int) -> None:
    """One receive of a queued message whose failure comes back."""
    with pytest.raises((ServerError, ApiTimeout, OutputWriteFailed)):
        world.event("a.jpg", attempt=attempt, final=False)


def test_an_answer_lost_twice_is_not_bought_a_third_time(world: World):
    a_pair(world)
    world.api.lost_answers = [
        ServerError("the API's answer broke off before its end"),
        ApiTimeout("the API's answer stalled before its end"),
    ]
    retried(world, attempt=1)
    retried(world, attempt=2)
    assert statuses(world.event("a.jpg", attempt=3, final=False)) == [Status.FAILED]
    assert world.api.calls == 2
    assert world.metrics.total("PaidAnswersLost") == 2
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["error"]["retryable"]) == ("server_error", False)
    assert "bought 2 times" in record["error"]["message"]


def test_calls_the_api_did_not_charge_do_not_count(world: World):
    a_pair(world)
    world.api.errors = [ServerError("API 503", http_status=503), RateLimited("API 429", http_status=429)]
    retried(world, attempt=1)
    with pytest.raises(RateLimited):
        world.event("a.jpg", attempt=2, final=False)
    assert statuses(world.event("a.jpg", attempt=3, final=False)) == [Status.PROCESSED]
    assert world.api.calls == 3
    assert world.ledger.paid() == 1
    assert world.metrics.total("PaidAnswersLost") == 0


def test_a_purchase_whose_container_died_is_counted_lost_when_bought_again(world: World):
    a_pair(world)
    world.event("a.jpg")
    (purchase_id,) = world.ledger.counts
    # What a runtime killed mid-call leaves: a purchase counted, no loss recorded, no answer kept
    # and no claim completed (it expired with the invocation).
    world.ledger.counts[purchase_id] = Purchases(paid=1, lost=0)
    world.claims.done.clear()
    world.store.outputs.clear()
    assert statuses(world.event("a.jpg")) == [Status.PROCESSED]
    assert world.metrics.total("PaidAnswersLost") == 1
    assert world.ledger.counts[purchase_id] == Purchases(paid=2, lost=1)


def test_a_charged_answer_that_is_not_an_image_counts_as_bought(world: World):
    a_pair(world)
    world.api.errors = [InternalError("the API answered 200 with text/html", http_status=200)]
    assert statuses(world.event("a.jpg")) == [Status.FAILED]
    assert world.ledger.paid() == 1


def test_a_redrive_may_buy_the_pair_again(world: World):
    a_pair(world)
    world.api.lost_answers = [ServerError("broke off"), ServerError("broke off")]
    retried(world, attempt=1)
    retried(world, attempt=2)
    world.event("a.jpg", attempt=3, final=False)  # refused: the DLQ record is written
    assert statuses(world.event("a.jpg", replay_of="redrive-1")) == [Status.PROCESSED]
    assert world.api.calls == 3


def test_a_dlq_outage_after_a_charged_failure_sends_the_record_later_without_paying_again(world: World):
    a_pair(world)
    world.api.errors = [InternalError("the API answered 200 with text/html", http_status=200)]
    world.dlq.outages = [InfrastructureUnavailable("could not write the DLQ record: EndpointConnectionError")]
    with pytest.raises(InfrastructureUnavailable):  # the message comes back
        world.event("a.jpg", attempt=1, final=False, message_id="m1")
    assert statuses(world.event("a.jpg", attempt=2, final=False, message_id="m1")) == [Status.FAILED]
    assert world.api.calls == 1
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["error"]["http_status"]) == ("internal", 200)
    assert record["attempts"] == 1  # the record of the attempt that paid, as it was then
    assert world.metrics.total("PaidAnswersLost") == 0


# -- what a failure cost --------------------------------------------------------------------------


def test_a_dlq_record_says_what_the_pair_was_charged(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {**SIDECAR, "rendering_speed": "QUALITY"})
    world.api.lost_answers = [ServerError("broke off"), ApiTimeout("stalled")]
    retried(world, attempt=1)
    retried(world, attempt=2)
    world.event("a.jpg", attempt=3, final=False)
    ((record, _),) = world.dlq.sent
    assert record["cost"] == {"paid_calls": 2, "estimated_usd": 0.226}


def test_a_failure_the_api_did_not_charge_costs_nothing(world: World):
    a_pair(world)
    world.api.errors = [BadRequest("API 400: the image could not be read", http_status=400)]
    world.event("a.jpg")
    ((record, error_class),) = world.dlq.sent
    assert error_class == "bad_request"
    assert record["cost"] == {"paid_calls": 0, "estimated_usd": 0.0}


def test_an_invalid_sidecar_costs_nothing(world: World):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", {"prompt": "x", "seed": 5})
    world.event("a.jpg")
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["cost"]) == ("invalid_sidecar", {"paid_calls": 0, "estimated_usd": 0.0})


def test_a_record_without_a_pair_has_no_cost(world: World):
    world.event("gone.jpg")  # deleted before it was processed: missing_object
    ((record, error_class),) = world.dlq.sent
    assert error_class == "missing_object"
    assert "cost" not in record


# -- a container that ended after storing its answer ----------------------------------------------


def a_pair_stored_by_a_container_that_then_died(world: World, *, counted: Purchases) -> str:
    a_pair(world)
    world.event("a.jpg")
    (purchase_id,) = world.ledger.counts
    world.ledger.counts[purchase_id] = counted  # what the ledger says when the claim never completed
    world.claims.done.clear()
    return purchase_id


def test_a_result_stored_before_its_container_died_is_not_bought_again(world: World):
    purchase_id = a_pair_stored_by_a_container_that_then_died(world, counted=Purchases(paid=1, lost=0))
    assert statuses(world.event("a.jpg")) == [Status.PROCESSED]
    assert world.api.calls == 1
    assert world.ledger.counts[purchase_id].paid == 1  # the reservation made to look is released
    assert world.metrics.total("PaidAnswersLost") == 0


def test_a_result_stored_by_the_second_purchase_is_not_refused_as_bought_twice(world: World):
    a_pair_stored_by_a_container_that_then_died(world, counted=Purchases(paid=2, lost=1))
    assert statuses(world.event("a.jpg")) == [Status.PROCESSED]
    assert world.dlq.sent == []
    assert world.api.calls == 1
