"""Turns to call the API, shared by every container: one item in the idempotency table.

The item holds ``next_turn``, the earliest time (Unix seconds) the next request may go. Taking a
turn is one conditional update, or two, each atomic on DynamoDB however many containers take
turns at once:
- when ``next_turn`` has passed, the turn is now, and ``next_turn`` becomes now + one interval;
- otherwise the turn is ``next_turn``, which moves on by one interval, unless it is further off
  than the container can wait: then nothing is taken, and the message goes back to the queue.

Requests go one interval apart, with no burst: after an outage the backlog drains at the plan's
rate, not in a storm of 429s. It is a token bucket that holds one token; a larger one would let a
burst through a window the API counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backdrop_fn.errors import InfrastructureUnavailable, NoTurnInTime

PACE_ITEM_ID = "backdrop.pace"
# Turns come at 97 % of the plan's rate: a request that leaves a little late (a slow wake-up, a
# slow network) must not put one request too many into a window the API counts. Against a
# one-minute window that is 1.8 s of slack.
HEADROOM = 0.97
# SQS delays a message at most this long.
_MAX_COME_BACK_SECONDS = 900


class DynamoDbPace:
    def __init__(
        self,
        table_name: str,
        *,
        client: Any,
        requests_per_minute: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table_name
        self._dynamodb = client
        self._requests_per_minute = requests_per_minute
        self.interval_seconds = 60.0 / (requests_per_minute * HEADROOM)
        self._clock = clock
        self._sleep = sleep

    def take_turn(self, max_wait_seconds: float) -> None:
        wait = self._book(self._clock(), max_wait_seconds) - self._clock()
        if wait > 0:
            self._sleep(wait)

    def _book(self, now: float, max_wait_seconds: float) -> float:
        """The time of the turn taken: now, or the next one if it is at most the wait away."""
        if self._update(
            "SET next_turn = :after",
            "attribute_not_exists(next_turn) OR next_turn <= :now",
            {":now": _number(now), ":after": _number(now + self.interval_seconds)},
        ):
            return now
        booked = self._update(
            "ADD next_turn :interval",
            "next_turn <= :latest",
            {":interval": _number(self.interval_seconds), ":latest": _number(now + max_wait_seconds)},
        )
        if booked:
            return float(booked["next_turn"]["N"]) - self.interval_seconds
        raise self._no_turn(now)

    def _update(self, update: str, condition: str, values: dict[str, Any]) -> dict[str, Any] | None:
        """The updated attributes, or None when the condition failed."""
        try:
            answer = self._dynamodb.update_item(
                TableName=self._table,
                Key={"id": {"S": PACE_ITEM_ID}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise _unavailable(error) from None
        except BotoCoreError as error:
            raise _unavailable(error) from None
        return dict(answer["Attributes"])

    def _no_turn(self, now: float) -> NoTurnInTime:
        try:
            item = self._dynamodb.get_item(
                TableName=self._table, Key={"id": {"S": PACE_ITEM_ID}}, ConsistentRead=True
            ).get("Item", {})
            next_turn = float(item["next_turn"]["N"])
        except (ClientError, BotoCoreError, KeyError, ValueError):
            next_turn = now + self.interval_seconds
        seconds = min(_MAX_COME_BACK_SECONDS, max(1, math.ceil(next_turn - now)))
        return NoTurnInTime(
            f"the next turn to call the API is {next_turn - now:.0f} s away (REQUESTS_PER_MINUTE is "
            f"{self._requests_per_minute}): the message comes back in {seconds} s",
            come_back_after_seconds=seconds,
        )


class Unpaced:
    """No REQUESTS_PER_MINUTE: every request goes at once, and MaximumConcurrency is the only brake."""

    def take_turn(self, max_wait_seconds: float) -> None:
        return None


def _number(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}"}


def _unavailable(error: Exception) -> InfrastructureUnavailable:
    return InfrastructureUnavailable(f"the idempotency table failed for the pace: {type(error).__name__}")
