"""Turns to call the API on DynamoDB (moto server): one plan's rate, shared by every container."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest

from backdrop.emulator import Emulator, Reply
from backdrop.local.stack import LOCAL_NAMES
from backdrop_fn.adapters.pace import HEADROOM, PACE_ITEM_ID, DynamoDbPace
from backdrop_fn.adapters.segmind import SegmindClient
from backdrop_fn.errors import InfrastructureUnavailable, NotEnoughTime, NoTurnInTime, ServerError
from backdrop_fn.spend_record import KEY_PREFIX as SPEND
from backdrop_fn.timing import Deadline
from tests.integration.conftest import REGION, Stack, photo
from tests.integration.function.at_once import WAIT_FOR_THE_MOMENT, run_at_once
from tests.integration.function.test_adapters import FixedKey, claims_table, payload
from tests.unit.function.fakes import FakeClock, RecordingMetrics

ROOT = Path(__file__).resolve().parents[3]
START = 1_796_000_000.0  # Unix seconds
TABLE = LOCAL_NAMES["IdempotencyTable"]


class FrozenClock(FakeClock):
    """Containers that all ask at the same moment: sleeping is recorded, and moves nothing."""

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def pace(client, clock: FakeClock, requests_per_minute: int = 60) -> DynamoDbPace:
    return DynamoDbPace(
        "pace", client=client, requests_per_minute=requests_per_minute, clock=clock, sleep=clock.sleep
    )


def next_turn(client) -> float:
    item = client.get_item(TableName="pace", Key={"id": {"S": PACE_ITEM_ID}})["Item"]
    return float(item["next_turn"]["N"])


def test_turns_come_a_little_slower_than_the_plan_allows(aws: str):
    """97 %: a request sent a little late must not make one too many in a window the API counts."""
    turns = pace(claims_table("pace"), FakeClock(START), requests_per_minute=50)
    assert 50 * turns.interval_seconds == pytest.approx(60 / 0.97)


def test_turns_asked_for_at_once_are_one_interval_apart(aws: str):
    clock = FrozenClock(START)
    turns = pace(claims_table("pace"), clock, requests_per_minute=30)
    for _ in range(4):
        turns.take_turn(max_wait_seconds=60)
    interval = turns.interval_seconds
    assert clock.sleeps == pytest.approx([interval, 2 * interval, 3 * interval])  # the first goes at once


def test_a_turn_further_off_than_the_wait_is_not_taken_and_says_when_to_come_back(aws: str):
    client = claims_table("pace")
    clock = FrozenClock(START)
    turns = pace(client, clock, requests_per_minute=20)  # a turn about each 3.09 s
    interval = turns.interval_seconds
    for _ in range(3):
        turns.take_turn(max_wait_seconds=60)  # now, then one and two intervals on
    with pytest.raises(NoTurnInTime) as refused:
        turns.take_turn(max_wait_seconds=3 * interval - 0.1)
    assert refused.value.come_back_after_seconds == 10  # 9.28 s, rounded up
    assert "REQUESTS_PER_MINUTE is 20" in refused.value.message
    assert next_turn(client) == pytest.approx(START + 3 * interval)  # nothing was taken
    turns.take_turn(max_wait_seconds=3 * interval)
    assert clock.sleeps[-1] == pytest.approx(3 * interval)


def test_after_an_idle_spell_one_request_goes_at_once_and_the_next_waits_its_interval(aws: str):
    clock = FakeClock(START)
    turns = pace(claims_table("pace"), clock, requests_per_minute=20)
    turns.take_turn(max_wait_seconds=60)
    clock.now += 600  # the API was down, or nothing was uploaded
    turns.take_turn(max_wait_seconds=60)
    turns.take_turn(max_wait_seconds=60)
    turns.take_turn(max_wait_seconds=60)
    assert clock.sleeps == pytest.approx([turns.interval_seconds] * 2)  # no burst of saved-up turns


def test_a_wait_of_zero_still_takes_a_turn_that_is_free_now(aws: str):
    clock = FrozenClock(START)
    turns = pace(claims_table("pace"), clock)
    turns.take_turn(max_wait_seconds=0)
    with pytest.raises(NoTurnInTime):
        turns.take_turn(max_wait_seconds=0)
    assert clock.sleeps == []


def test_a_failing_table_is_passing_trouble(aws: str):
    client = boto3.client("dynamodb", region_name=REGION)
    with pytest.raises(InfrastructureUnavailable, match="for the pace"):
        DynamoDbPace("no-such-table", client=client, requests_per_minute=5).take_turn(60)


TAKE_ONE = (
    """
import sys
import boto3
from backdrop_fn.adapters.pace import DynamoDbPace
waits = []
pace = DynamoDbPace("pace", client=boto3.client("dynamodb"), requests_per_minute=600,
                    clock=lambda: float(sys.argv[1]), sleep=waits.append)
"""
    + WAIT_FOR_THE_MOMENT
    + """
pace.take_turn(max_wait_seconds=60)
print(round(waits[0], 3) if waits else 0.0)
"""
)


def test_containers_taking_turns_at_once_each_get_a_turn_of_their_own(aws: str):
    """Twelve processes ask at the same moment (one frozen clock): each is given a different turn,
    one interval (60 / (600 × 0.97) s) after the other, with none shared and none skipped."""
    claims_table("pace")
    waits = sorted(float(printed) for printed in run_at_once(TAKE_ONE, str(START), copies=12))
    interval = 60 / (600 * HEADROOM)
    assert waits == pytest.approx([turn * interval for turn in range(12)], abs=1e-3)


class Turns:
    """The client's side of the pace: the waits it allows, and refusals from the given turn on
    (0: every turn refused)."""

    def __init__(self, *, refuse_from: int | None = None) -> None:
        self.max_waits: list[float] = []
        self._refuse_from = refuse_from

    def take_turn(self, max_wait_seconds: float) -> None:
        self.max_waits.append(max_wait_seconds)
        if self._refuse_from is not None and len(self.max_waits) > self._refuse_from:
            raise NoTurnInTime("the next turn is 90 s away", come_back_after_seconds=90)


def paced_client(emulator: Emulator, turns: Turns, clock: FakeClock) -> SegmindClient:
    return SegmindClient(
        emulator.url,
        FixedKey(),
        RecordingMetrics(),
        pace=turns,
        clock=clock,
        sleep=clock.sleep,
        jitter=lambda: 0.0,
    )


def test_every_request_to_the_api_a_retry_too_waits_for_its_turn(emulator: Emulator):
    turns, clock = Turns(), FakeClock(1000.0)
    emulator.script(Reply(503, {"error": "x"}), Reply(429, {"error": "x"}))
    paced_client(emulator, turns, clock).replace_background(payload(), Deadline(300, clock))
    assert len(turns.max_waits) == len(emulator.requests) == 3


def test_a_request_with_no_turn_in_time_is_not_sent(emulator: Emulator):
    clock = FakeClock(1000.0)
    with pytest.raises(NoTurnInTime) as refused:
        paced_client(emulator, Turns(refuse_from=0), clock).replace_background(
            payload(), Deadline(300, clock)
        )
    assert refused.value.come_back_after_seconds == 90
    assert emulator.requests == []


def test_a_retry_with_no_turn_in_time_is_not_made_and_the_sent_request_counts(emulator: Emulator):
    """The first request was sent (and may have been charged): the message must come nearer its
    last attempt, as for any failure, not go back uncounted to loop, paying, for ever."""
    clock = FakeClock(1000.0)
    emulator.script(Reply(503, {"error": "busy"}))
    with pytest.raises(ServerError) as failed:
        paced_client(emulator, Turns(refuse_from=1), clock).replace_background(
            payload(), Deadline(300, clock)
        )
    assert not isinstance(failed.value, NotEnoughTime)
    assert failed.value.retryable
    assert len(emulator.requests) == 1


def test_the_wait_for_a_turn_leaves_time_for_the_request_and_its_write(emulator: Emulator):
    turns, clock = Turns(), FakeClock(1000.0)
    client = paced_client(emulator, turns, clock)
    client.replace_background(payload(), Deadline(300, clock))
    client.replace_background(payload(), Deadline(40, clock))
    client.replace_background(payload(), Deadline(20, clock))
    # At most a minute; else what the deadline leaves after 10 s for the write and 15 for the
    # request; with less than that, only a turn that is free now.
    assert turns.max_waits == [60.0, 15.0, 0.0]


def test_a_message_whose_turn_is_far_off_goes_back_uncounted_and_costs_nothing(stack: Stack):
    stack.configure(REQUESTS_PER_MINUTE="5", DAILY_BUDGET_USD="10")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    # Other containers hold the next five minutes of turns.
    dynamodb.put_item(
        TableName=TABLE, Item={"id": {"S": PACE_ITEM_ID}, "next_turn": {"N": str(time.time() + 300)}}
    )
    stack.upload("queued.png", photo())
    stack.upload("queued.png.json", {"prompt": "a calm studio"})
    messages = stack.received()
    messages[0]["Attributes"]["ApproximateReceiveCount"] = "5"  # even the last attempt comes back

    assert stack.deliver(messages) == {"batchItemFailures": []}  # copies on the queue replace them
    assert stack.api_calls == 0
    assert stack.dlq() == []
    assert stack.received() == []  # the copies wait for the turns to free up
    delayed = stack.sqs.get_queue_attributes(
        QueueUrl=stack.work_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert delayed["ApproximateNumberOfMessagesDelayed"] == "2"
    spend = [item for item in dynamodb.scan(TableName=TABLE)["Items"] if item["id"]["S"].startswith(SPEND)]
    assert [int(item["month_total"]["N"]) for item in spend] in ([], [0])  # reserved, then released
