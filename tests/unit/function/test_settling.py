"""Settling: only an image that would be paid with DEFAULT_PROMPT waits for a sidecar that may come."""

from __future__ import annotations

import json

import pytest

from backdrop_fn.delivery import Delivery
from backdrop_fn.errors import PairSettling
from backdrop_fn.events import WorkItem
from backdrop_fn.handling import handle
from backdrop_fn.outcome import Status
from backdrop_fn.runtime import Runtime
from backdrop_fn.timing import Deadline
from tests.unit.function.conftest import BUCKET, World, s3_record, statuses
from tests.unit.function.fakes import JPEG_BYTES
from tests.unit.function.test_handling import Context, RecordingBackoff, batch, message

SIDECAR = {"prompt": "a sunny beach", "seed": 1234}


@pytest.fixture
def settling(world: World) -> World:
    world.configure(DEFAULT_PROMPT="a white studio", PAIR_SETTLE_SECONDS=10)
    return world


def test_a_fresh_image_without_a_sidecar_waits_before_the_default_prompt_is_used(settling: World):
    settling.upload("a.jpg", JPEG_BYTES)
    settling.clock.sleep(3)
    with pytest.raises(PairSettling) as waiting:
        settling.event("a.jpg", attempt=1, final=False, message_id="m1")
    # Until it is 10 s old, counted from the end of the second S3 dates it to (LastModified).
    assert waiting.value.come_back_after_seconds == 8
    assert settling.api.calls == 0
    assert settling.claims.done == {}
    settling.clock.sleep(8)
    assert statuses(settling.event("a.jpg", attempt=1, final=False, message_id="m1")) == [Status.PROCESSED]
    assert settling.api.payloads[0]["prompt"] == "a white studio"


def test_a_slow_upload_settles_from_its_event_not_from_when_s3_says_it_began(settling: World):
    settling.upload("big.jpg", JPEG_BYTES)  # a multipart upload: S3 dates it from its start
    settling.clock.sleep(9.25)
    finished = settling.wall_time().isoformat().replace("+00:00", "Z")  # to the microsecond
    item = WorkItem(BUCKET, "big.jpg", None, None, {**s3_record("big.jpg"), "eventTime": finished})
    delivery = Delivery(
        Deadline(300, clock=settling.clock), "req-1", attempt=1, max_attempts=5, message_id="m1"
    )
    with pytest.raises(PairSettling) as waiting:
        settling.pipeline.process(item, delivery)
    assert waiting.value.come_back_after_seconds == 10


def test_a_time_given_to_the_whole_second_counts_from_the_end_of_that_second(settling: World):
    """EventBridge dates S3's events to the second: 12:00:09 may stand for 12:00:09.99."""
    settling.upload("big.jpg", JPEG_BYTES)
    settling.clock.sleep(9.5)
    event = {"source": "aws.s3", "detail-type": "Object Created", "time": "2026-12-01T12:00:09Z"}
    item = WorkItem(BUCKET, "big.jpg", None, None, event)
    delivery = Delivery(
        Deadline(300, clock=settling.clock), "req-1", attempt=1, max_attempts=5, message_id="m1"
    )
    with pytest.raises(PairSettling) as waiting:
        settling.pipeline.process(item, delivery)
    assert waiting.value.come_back_after_seconds == 11  # from 12:00:10, not 12:00:09


def test_a_sidecar_that_comes_while_the_image_settles_is_the_one_paid_for(settling: World):
    settling.upload("a.jpg", JPEG_BYTES)
    with pytest.raises(PairSettling):
        settling.event("a.jpg", attempt=1, final=False, message_id="m1")
    settling.clock.sleep(2)
    settling.upload("a.jpg.json", SIDECAR)
    assert statuses(settling.event("a.jpg.json", attempt=1, final=False, message_id="m2")) == [
        Status.PROCESSED
    ]
    settling.clock.sleep(8)
    assert statuses(settling.event("a.jpg", attempt=1, final=False, message_id="m1")) == [Status.DUPLICATE]
    assert [payload["prompt"] for payload in settling.api.payloads] == ["a sunny beach"]


def test_a_pair_with_its_sidecar_starts_at_once(settling: World):
    settling.upload("a.jpg", JPEG_BYTES)
    settling.upload("a.jpg.json", SIDECAR)
    assert statuses(settling.event("a.jpg", attempt=1, final=False, message_id="m1")) == [Status.PROCESSED]


def test_a_direct_invocation_cannot_come_back_so_it_does_not_wait(settling: World):
    settling.upload("a.jpg", JPEG_BYTES)
    assert statuses(settling.event("a.jpg")) == [Status.PROCESSED]


def test_a_settling_message_comes_back_uncounted_when_the_image_is_old_enough(settling: World):
    backoff = RecordingBackoff()
    runtime = Runtime(
        settings=settling.settings, pipeline=settling.pipeline, claims=settling.claims, work_queue=backoff
    )
    settling.upload("a.jpg", JPEG_BYTES)
    settling.clock.sleep(4)
    body = {"Records": [s3_record("a.jpg")]}
    answer = handle(runtime, batch(message("m1", body, receive_count=2)), Context())
    assert answer == {"batchItemFailures": []}  # the copy replaces it
    assert backoff.requeued == [(json.dumps(body), 1, 7)]  # one real receive before; back in 7 s
    assert backoff.delays == []


def test_with_no_settling_an_image_just_uploaded_is_processed_at_once(world: World):
    world.configure(DEFAULT_PROMPT="a white studio", PAIR_SETTLE_SECONDS=0)
    world.upload("a.jpg", JPEG_BYTES)  # dated to this very second: it may be up to 1 s younger
    assert statuses(world.event("a.jpg", attempt=1, final=False, message_id="m1")) == [Status.PROCESSED]
