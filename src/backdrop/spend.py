"""`backdrop spend`: today's and this month's estimated spend, as the function records it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from backdrop import function_code
from backdrop.pricing import PRICE_PER_CALL_USD
from backdrop.targets import SpendTable

_record = function_code.load("spend_record")


@dataclass(frozen=True)
class Period:
    name: str
    spent_usd: float
    cap_usd: float | None
    calls: dict[str, int]  # by rendering speed

    @property
    def used(self) -> str:
        if self.cap_usd is None:
            return "no cap"
        if self.cap_usd == 0:
            return "cap 0: no call is made"
        return f"{100 * self.spent_usd / self.cap_usd:.0f} %"


@dataclass(frozen=True)
class Spend:
    today: Period
    month: Period
    credits: float | None
    credits_at: datetime | None


def read(where: SpendTable, now: datetime | None = None) -> Spend:
    now = now or datetime.now(UTC)
    found = where.dynamodb.get_item(
        TableName=where.table, Key={"id": {"S": _record.item_id(_record.month_of(now))}}, ConsistentRead=True
    )
    item = {name: value.get("N") for name, value in found.get("Item", {}).items()}
    day = now.day
    credits_at = item.get("credits_at")
    return Spend(
        today=Period(
            "today",
            _usd(item.get(_record.day_total(day))),
            where.daily_cap_usd,
            {speed: _count(item.get(_record.day_calls(day, speed))) for speed in PRICE_PER_CALL_USD},
        ),
        month=Period(
            "this month",
            _usd(item.get(_record.MONTH_TOTAL)),
            where.monthly_cap_usd,
            {speed: _count(item.get(_record.month_calls(speed))) for speed in PRICE_PER_CALL_USD},
        ),
        credits=float(item["credits"]) if item.get("credits") else None,
        credits_at=datetime.fromtimestamp(int(credits_at), UTC) if credits_at else None,
    )


def table(spend: Spend, where: SpendTable, now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    shown = Table(
        title=f"Estimated spend, {now:%Y-%m-%d %H:%M} UTC (table {where.table})",
        title_justify="left",
        caption=_caption(spend),
        caption_justify="left",
    )
    for column in ("period", "spent", "cap", "used", *(f"{speed} calls" for speed in PRICE_PER_CALL_USD)):
        shown.add_column(column, justify="left" if column == "period" else "right")
    for period in (spend.today, spend.month):
        cap = "—" if period.cap_usd is None else f"${period.cap_usd:,.2f}"
        shown.add_row(
            period.name,
            f"${period.spent_usd:,.3f}",
            cap,
            period.used,
            *(str(n) for n in period.calls.values()),
        )
    return shown


def _caption(spend: Spend) -> str:
    prices = ", ".join(f"{speed} ${price:.3f}" for speed, price in PRICE_PER_CALL_USD.items())
    lines = [f"Estimates at {prices} a call; Segmind's own bill is the truth."]
    if spend.credits is not None and spend.credits_at is not None:
        lines.append(
            f"Credits left: {spend.credits:,.2f}, as the API said at {spend.credits_at:%Y-%m-%d %H:%M} UTC."
        )
    else:
        lines.append("Credits left: not reported by the API yet.")
    return "\n".join(lines)


def _usd(micro: Any) -> float:
    return int(micro or 0) / _record.MICRO


def _count(value: Any) -> int:
    return int(value or 0)
