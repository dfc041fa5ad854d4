"""The spend guard on DynamoDB: one item per UTC month, in the idempotency table (``spend_record``).

One conditional update reserves a call against both caps at once: however many containers
reserve together, the sum never passes a cap.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backdrop_fn.errors import BudgetExceeded, InfrastructureUnavailable
from backdrop_fn.ports import SpendReservation
from backdrop_fn.pricing import price_of
from backdrop_fn.spend_record import MICRO, MONTH_TOTAL, day_calls, day_total, item_id, month_calls, month_of

logger = logging.getLogger(__name__)

# A month's record outlives the month by this long, for `backdrop spend` to look back.
KEPT_AFTER_MONTH_SECONDS = 90 * 24 * 3600


class DynamoDbSpendGuard:
    def __init__(
        self,
        table_name: str,
        *,
        client: Any,
        daily_cap_usd: float | None = None,
        monthly_cap_usd: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        credits_seen: Callable[[], tuple[float, float] | None] = lambda: None,
    ) -> None:
        self._table = table_name
        self._dynamodb = client
        self._daily_cap = _micro(daily_cap_usd)
        self._monthly_cap = _micro(monthly_cap_usd)
        self._clock = clock
        self._credits_seen = credits_seen

    def reserve(self, rendering_speed: str) -> SpendReservation:
        now = self._clock()
        price = _micro(price_of(rendering_speed)) or 0
        if any(cap is not None and price > cap for cap in (self._daily_cap, self._monthly_cap)):
            # The update's condition passes a period's first call unchecked: one over a cap on its
            # own (a cap of 0 stops every call) is refused here.
            raise self._exceeded(now, rendering_speed, price)
        names = _names(now.day, rendering_speed)
        values: dict[str, Any] = {
            ":price": {"N": str(price)},
            ":one": {"N": "1"},
            ":expires": {"N": str(_end_of_month(now) + KEPT_AFTER_MONTH_SECONDS)},
        }
        conditions = []
        for cap, total, label in ((self._daily_cap, "#day", "day"), (self._monthly_cap, "#month", "month")):
            if cap is not None:
                conditions.append(f"(attribute_not_exists({total}) OR {total} <= :{label}_left)")
                values[f":{label}_left"] = {"N": str(cap - price)}
        update = (
            "ADD #day :price, #month :price, #month_calls :one, #day_calls :one SET expiration = :expires"
        )
        credits = self._credits_seen()
        if credits is not None:  # the API's own count, as last seen here: for `backdrop spend`
            update += ", credits = :credits, credits_at = :credits_at"
            values[":credits"] = {"N": repr(credits[0])}
            values[":credits_at"] = {"N": str(int(credits[1]))}
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": _key(month_of(now)),
            "UpdateExpression": update,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if conditions:
            request["ConditionExpression"] = " AND ".join(conditions)
        try:
            item = self._dynamodb.update_item(**request)["Attributes"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise self._exceeded(now, rendering_speed, price) from None
            raise _unavailable(error) from None
        except BotoCoreError as error:
            raise _unavailable(error) from None
        today, month = _number(item, names["#day"]), _number(item, names["#month"])
        return SpendReservation(
            month=month_of(now),
            day=now.day,
            micro_usd=price,
            rendering_speed=rendering_speed,
            spent_today_micro_usd=today,
            spent_this_month_micro_usd=month,
            used_percent=self._used_percent(today, month),
        )

    def release(self, reservation: SpendReservation) -> None:
        names = _names(reservation.day, reservation.rendering_speed)
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=_key(reservation.month),
                UpdateExpression=(
                    "ADD #day :minus, #month :minus, #month_calls :minus_one, #day_calls :minus_one"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":minus": {"N": str(-reservation.micro_usd)},
                    ":minus_one": {"N": "-1"},
                },
            )
        except (ClientError, BotoCoreError) as error:
            # Errs on the side of spending less: the price stays counted, as if it was charged.
            logger.warning("a reserved price could not be released", extra={"error": str(error)})

    def _exceeded(self, now: datetime, rendering_speed: str, price: int) -> BudgetExceeded:
        try:
            found = self._dynamodb.get_item(
                TableName=self._table, Key=_key(month_of(now)), ConsistentRead=True
            )
            item = found.get("Item", {})
        except (ClientError, BotoCoreError):
            item = {}
        names = _names(now.day, rendering_speed)
        today, month = _number(item, names["#day"]), _number(item, names["#month"])
        call = f"a {rendering_speed} call (~${price / MICRO:.3f})"
        if self._daily_cap is not None and today + price > self._daily_cap:
            return BudgetExceeded(
                f"the daily budget is spent: ${today / MICRO:.2f} of ${self._daily_cap / MICRO:.2f} today "
                f"(UTC), and {call} would pass it; raise DailyBudgetUsd or wait for tomorrow, then "
                "redrive this record"
            )
        cap = self._monthly_cap or 0
        return BudgetExceeded(
            f"the monthly budget is spent: ${month / MICRO:.2f} of ${cap / MICRO:.2f} this month (UTC), "
            f"and {call} would pass it; raise MonthlyBudgetUsd or wait for next month, then redrive "
            "this record"
        )

    def _used_percent(self, today: int, month: int) -> float | None:
        shares = [
            100.0 * spent / cap if cap else 100.0
            for spent, cap in ((today, self._daily_cap), (month, self._monthly_cap))
            if cap is not None
        ]
        return round(max(shares), 1) if shares else None


def _names(day: int, rendering_speed: str) -> dict[str, str]:
    return {
        "#month": MONTH_TOTAL,
        "#day": day_total(day),
        "#month_calls": month_calls(rendering_speed),
        "#day_calls": day_calls(day, rendering_speed),
    }


def _key(month: str) -> dict[str, dict[str, str]]:
    return {"id": {"S": item_id(month)}}


def _end_of_month(now: datetime) -> int:
    last_day = calendar.monthrange(now.year, now.month)[1]
    return int(datetime(now.year, now.month, last_day, 23, 59, 59, tzinfo=UTC).timestamp())


def _micro(usd: float | None) -> int | None:
    return None if usd is None else round(usd * MICRO)


def _number(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {"N": "0"})["N"])


def _unavailable(error: Exception) -> InfrastructureUnavailable:
    return InfrastructureUnavailable(f"the idempotency table failed for the spend: {type(error).__name__}")
