"""The handler's batch loop on fakes: each message answered on its own, failures reported, never lost."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from backdrop_fn.errors import ClaimNotReleased, ServerError
from backdrop_fn.handling import handle
from backdrop_fn.runtime import Runtime
from backdrop_fn.vocabulary import ATTEMPTS_BEFORE
from tests.unit.function.conftest import World, s3_record
from tests.unit.function.fakes import JPEG_BYTES

SIDECAR = {"prompt": "a sunny beach", "seed": 1234}


@dataclass
class RecordingBackoff:
    """The work-queue port: backoffs set and messages sent again, remembered."""

    delays: list[tuple[str, int, float]] = field(default_factory=list)
    requeued: list[tuple[str, int, int]] = field(default_factory=list)

    def delay(self, receipt_handle: str, attempt: int, *, at_least_seconds: float = 0) -> None:
        self.delays.append((receipt_handle, attempt, at_least_seconds))

    def requeue(self, body: str, *, attempts_before: int, delay_seconds: int) -> None:
        self.requeued.append((body, attempts_before, delay_seconds))


@dataclass
class Context:
    seconds_left: float = 300.0
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds_left * 1000)


@pytest.fixture
def backoff() -> RecordingBackoff:
    return RecordingBackoff()


@pytest.fixture
def runtime(world: World, backoff: RecordingBackoff) -> Runtime:
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", SIDECAR)
    world.upload("b.jpg", JPEG_BYTES)
    world.upload("b.jpg.json", SIDECAR)
    return Runtime(settings=world.settings, pipeline=world.pipeline, claims=world.claims, work_queue=backoff)


def message(
    message_id: str, body: Any, receive_count: int = 1, attempts_before: int | None = None
) -> dict[str, Any]:
    attributes = {}
    if attempts_before is not None:
        attributes[ATTEMPTS_BEFORE] = {"stringValue": str(attempts_before), "dataType": "Number"}
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
        "messageAttributes": attributes,
        "eventSource": "aws:sqs",
    }


def batch(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(messages)}


def s3_notification(key: str) -> dict[str, Any]:
    return {"Records": [s3_record(key)]}


def test_a_batch_of_good_messages_reports_no_failure(runtime: Runtime, world: World):
    answer = handle(
        runtime,
        batch(message("m1", s3_notification("a.jpg")), message("m2", s3_notification("b.jpg"))),
        Context(),
    )
    assert answer == {"batchItemFailures": []}
    assert world.api.calls == 2


def test_only_the_message_that_failed_transiently_comes_back_with_a_backoff(
    runtime: Runtime, world: World, backoff: RecordingBackoff
):
    world.api.errors.append(ServerError("API 503", http_status=503))
    answer = handle(
        runtime,
        batch(
            message("m1", s3_notification("a.jpg"), receive_count=2), message("m2", s3_notification("b.jpg"))
        ),
        Context(),
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert backoff.delays == [("handle-m1", 2, 0)]
    assert world.dlq.sent == []
    assert world.store.outputs.keys() == {("out-bucket", "b.png")}  # its neighbour went through


def test_on_the_last_receive_a_transient_failure_is_dead_lettered_and_acknowledged(
    runtime: Runtime, world: World, backoff: RecordingBackoff
):
    world.api.errors.append(ServerError("API 503", http_status=503))
    answer = handle(runtime, batch(message("m1", s3_notification("a.jpg"), receive_count=5)), Context())
    assert answer == {"batchItemFailures": []}
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["attempts"]) == ("server_error", 5)
    assert backoff.delays == []


def test_a_body_that_is_not_an_event_is_dead_lettered_once_not_retried(runtime: Runtime, world: World):
    answer = handle(
        runtime, batch(message("m1", "not json"), message("m2", s3_notification("b.jpg"))), Context()
    )
    assert answer == {"batchItemFailures": []}
    ((record, _),) = world.dlq.sent
    assert record["event"] == {"unrecognised": "not json"}
    assert world.api.calls == 1


def test_a_bug_outside_the_pipeline_reports_the_message_so_it_is_not_lost(runtime: Runtime, world: World):
    broken = message("m1", s3_notification("a.jpg"))
    del broken["body"]  # a record the loop cannot read: whatever fails, the message comes back
    answer = handle(runtime, batch(broken, message("m2", s3_notification("b.jpg"))), Context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert world.api.calls == 1


def test_a_message_whose_claim_is_stuck_stays_away_until_the_invocation_ends(
    runtime: Runtime, world: World, backoff: RecordingBackoff, monkeypatch: pytest.MonkeyPatch
):
    def stuck(identity: dict[str, Any], work: Any) -> Any:
        raise ClaimNotReleased("the idempotency table failed after the work did")

    monkeypatch.setattr(world.claims, "run_once", stuck)
    answer = handle(runtime, batch(message("m1", s3_notification("a.jpg"))), Context(seconds_left=300))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    ((_, _, at_least),) = backoff.delays
    assert 299 < at_least <= 300


def test_a_direct_event_answers_with_its_outcomes(runtime: Runtime, world: World):
    answer = handle(runtime, s3_notification("a.jpg"), Context())
    assert answer == {
        "outcomes": [
            {
                "status": "processed",
                "image_key": "a.jpg",
                "variant": None,
                "output_key": "a.png",
                "error_class": None,
            }
        ]
    }


def test_every_invocation_tells_the_claims_its_deadline(runtime: Runtime, monkeypatch: pytest.MonkeyPatch):
    seen: list[Any] = []
    monkeypatch.setattr(runtime.claims, "register_lambda_context", seen.append)
    context = Context()
    handle(runtime, batch(), context)
    handle(runtime, s3_notification("a.jpg"), context)
    assert seen == [context, context]


def test_a_receive_with_too_little_time_is_sent_back_uncounted_and_acknowledged(
    runtime: Runtime, world: World, backoff: RecordingBackoff
):
    body = s3_notification("a.jpg")
    answer = handle(runtime, batch(message("m1", body, receive_count=3, attempts_before=1)), Context(10))
    assert answer == {"batchItemFailures": []}  # the copy replaces it
    assert backoff.requeued == [(json.dumps(body), 3, 5)]  # 1 before, 2 real receives; not this one
    assert (world.api.calls, world.dlq.sent) == (0, [])


def test_attempts_of_earlier_copies_count_toward_the_last_attempt(runtime: Runtime, world: World):
    world.api.errors.append(ServerError("API 503", http_status=503))
    answer = handle(runtime, batch(message("m1", s3_notification("a.jpg"), attempts_before=4)), Context())
    assert answer == {"batchItemFailures": []}
    ((record, error_class),) = world.dlq.sent
    assert (error_class, record["attempts"]) == ("server_error", 5)
