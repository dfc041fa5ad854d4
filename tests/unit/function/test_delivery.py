"""One delivery decides whether a failure comes back on a later receive or is dead-lettered now."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from backdrop_fn.delivery import Delivery
from backdrop_fn.errors import BackdropError, InvalidSidecar, NotEnoughTime, OutputWriteFailed, ServerError
from backdrop_fn.timing import Deadline

CONTEXT = SimpleNamespace(aws_request_id="req-1", get_remaining_time_in_millis=lambda: 60_000)


def message(receive_count: str | None) -> dict:
    attributes = {"ApproximateReceiveCount": receive_count} if receive_count else {}
    return {"messageId": "m-1", "attributes": attributes}


def test_a_direct_event_is_its_own_last_attempt():
    delivery = Delivery.direct(CONTEXT)
    assert (delivery.attempt, delivery.is_final, delivery.request_id) == (1, True, "req-1")
    assert 59 < delivery.deadline.remaining() <= 60


def test_a_message_counts_its_receives():
    delivery = Delivery.of_message(message("3"), CONTEXT, max_attempts=5)
    assert (delivery.attempt, delivery.is_final, delivery.message_id) == (3, False, "m-1")
    assert Delivery.of_message(message("5"), CONTEXT, max_attempts=5).is_final
    assert Delivery.of_message(message(None), CONTEXT, max_attempts=5).attempt == 1


@pytest.mark.parametrize(
    ("error", "attempt", "comes_back"),
    [
        (ServerError("503"), 1, True),
        (ServerError("503"), 5, False),  # the last receive writes the DLQ record itself
        (InvalidSidecar("seed"), 1, False),  # permanent: dead-lettered at once
        (OutputWriteFailed("AccessDenied", retryable=False), 1, False),
        (NotEnoughTime("10 s left"), 5, True),  # not an attempt: even the last receive comes back
    ],
)
def test_a_queued_failure_comes_back_while_it_is_transient_and_receives_remain(
    error: BackdropError, attempt: int, comes_back: bool
):
    delivery = Delivery(Deadline(60), "r", attempt=attempt, max_attempts=5, message_id="m-1")
    assert delivery.comes_back(error) is comes_back


@pytest.mark.parametrize("error", [ServerError("503"), NotEnoughTime("10 s left")])
def test_a_direct_event_never_comes_back(error: BackdropError):
    assert not Delivery(Deadline(60), "r").comes_back(error)
