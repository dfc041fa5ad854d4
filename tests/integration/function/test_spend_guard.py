"""The spend guard on DynamoDB (moto server): caps that hold across every container at once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from backdrop_fn.adapters.spend import DynamoDbSpendGuard
from backdrop_fn.errors import BudgetExceeded, InfrastructureUnavailable
from backdrop_fn.spend_record import KEY_PREFIX
from tests.integration.conftest import REGION
from tests.integration.function.at_once import WAIT_FOR_THE_MOMENT, run_at_once
from tests.integration.function.test_adapters import claims_table

ROOT = Path(__file__).resolve().parents[3]
DECEMBER_1 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def guard(client, clock: Clock, *, daily: float | None = None, monthly: float | None = None):
    return DynamoDbSpendGuard(
        "spend", client=client, daily_cap_usd=daily, monthly_cap_usd=monthly, clock=clock
    )


def month_item(client, month: str = "2026-12") -> dict[str, int]:
    item = client.get_item(TableName="spend", Key={"id": {"S": KEY_PREFIX + month}})["Item"]
    return {
        name: int(float(value["N"])) for name, value in item.items() if "N" in value and name != "expiration"
    }


def test_each_call_is_counted_by_day_month_and_speed_without_a_cap(aws: str):
    client = claims_table("spend")
    spend = guard(client, Clock(DECEMBER_1))
    first = spend.reserve("TURBO")
    second = spend.reserve("QUALITY")
    assert (first.micro_usd, second.micro_usd) == (37_000, 113_000)
    assert (second.spent_today_micro_usd, second.spent_this_month_micro_usd) == (150_000, 150_000)
    assert second.used_percent is None
    assert month_item(client) == {
        "month_total": 150_000,
        "day01": 150_000,
        "calls_TURBO": 1,
        "calls_QUALITY": 1,
        "day01_calls_TURBO": 1,
        "day01_calls_QUALITY": 1,
    }


def test_a_call_that_would_pass_the_daily_cap_is_refused_and_reserves_nothing(aws: str):
    client = claims_table("spend")
    spend = guard(client, Clock(DECEMBER_1), daily=0.20)
    assert spend.reserve("DEFAULT").used_percent == 37.5
    assert spend.reserve("DEFAULT").used_percent == 75.0
    with pytest.raises(BudgetExceeded, match=r"daily budget is spent: \$0\.15 of \$0\.20 today"):
        spend.reserve("DEFAULT")
    assert spend.reserve("TURBO").used_percent == 93.5  # a cheaper call still fits
    assert month_item(client)["day01"] == 187_000


def test_the_monthly_cap_counts_every_day_and_a_new_day_starts_from_nothing(aws: str):
    client = claims_table("spend")
    clock = Clock(DECEMBER_1)
    spend = guard(client, clock, daily=0.10, monthly=0.20)
    spend.reserve("DEFAULT")
    with pytest.raises(BudgetExceeded, match="daily budget"):
        spend.reserve("DEFAULT")
    clock.now = datetime(2026, 12, 2, 0, 0, 1, tzinfo=UTC)
    assert spend.reserve("DEFAULT").spent_today_micro_usd == 75_000
    clock.now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    with pytest.raises(BudgetExceeded, match=r"monthly budget is spent: \$0\.15 of \$0\.20 this month"):
        spend.reserve("DEFAULT")
    clock.now = datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert spend.reserve("DEFAULT").spent_this_month_micro_usd == 75_000  # January's own item


@pytest.mark.parametrize(("daily", "monthly"), [(0.01, None), (None, 0.01), (0.0, None), (None, 0.0)])
def test_a_cap_below_one_call_refuses_even_the_first_call_of_its_period(aws: str, daily, monthly):
    client = claims_table("spend")
    spend = guard(client, Clock(DECEMBER_1), daily=daily, monthly=monthly)
    with pytest.raises(BudgetExceeded, match=r"budget is spent: \$0\.00 of \$0\.0[01]"):
        spend.reserve("TURBO")
    assert "Item" not in client.get_item(TableName="spend", Key={"id": {"S": KEY_PREFIX + "2026-12"}})


def test_a_released_price_no_longer_counts(aws: str):
    client = claims_table("spend")
    spend = guard(client, Clock(DECEMBER_1), daily=0.10)
    spend.release(spend.reserve("DEFAULT"))
    assert spend.reserve("DEFAULT").spent_today_micro_usd == 75_000
    assert month_item(client)["calls_DEFAULT"] == 1


def test_the_credits_the_api_last_reported_are_kept_with_the_spend(aws: str):
    client = claims_table("spend")
    seen: list[tuple[float, float]] = []
    spend = DynamoDbSpendGuard(
        "spend", client=client, clock=Clock(DECEMBER_1), credits_seen=lambda: seen[-1] if seen else None
    )
    spend.reserve("TURBO")
    assert "credits" not in month_item(client)
    seen.append((41.25, 1796120000.0))
    spend.reserve("TURBO")
    assert (month_item(client)["credits"], month_item(client)["credits_at"]) == (41, 1796120000)
    item = client.get_item(TableName="spend", Key={"id": {"S": KEY_PREFIX + "2026-12"}})["Item"]
    assert item["credits"]["N"] == "41.25"


def test_a_failing_table_is_passing_trouble_and_a_release_never_raises(aws: str):
    client = boto3.client("dynamodb", region_name=REGION)
    spend = DynamoDbSpendGuard("no-such-table", client=client, daily_cap_usd=1.0)
    with pytest.raises(InfrastructureUnavailable):
        spend.reserve("DEFAULT")
    reserved = guard(claims_table("spend"), Clock(DECEMBER_1)).reserve("DEFAULT")
    spend.release(reserved)  # best effort: the price stays counted, erring on spending less


RESERVE_ONE = (
    """
import sys
import boto3
from backdrop_fn.adapters.spend import DynamoDbSpendGuard
from backdrop_fn.errors import BudgetExceeded
guard = DynamoDbSpendGuard("spend", client=boto3.client("dynamodb"), daily_cap_usd=float(sys.argv[1]))
"""
    + WAIT_FOR_THE_MOMENT
    + """
try:
    guard.reserve("DEFAULT")
    print("reserved")
except BudgetExceeded:
    print("refused")
"""
)


def test_twenty_containers_at_once_make_exactly_the_calls_the_cap_fits(aws: str):
    client = claims_table("spend")
    cap = 7 * 0.075  # exactly seven DEFAULT calls
    answers = run_at_once(RESERVE_ONE, str(cap), copies=20)
    assert sorted(answers) == ["refused"] * 13 + ["reserved"] * 7
    today = datetime.now(UTC)
    item = month_item(client, today.strftime("%Y-%m"))
    assert item[f"day{today.day:02d}"] == 7 * 75_000
