"""The purchase ledger on DynamoDB (moto server): a counter no two containers can both pass."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from backdrop_fn.adapters.purchase_ledger import DynamoDbPurchaseLedger
from backdrop_fn.errors import InfrastructureUnavailable
from backdrop_fn.ports import Purchases
from tests.integration.conftest import REGION
from tests.integration.function.test_adapters import claims_table


@pytest.fixture
def ledger(aws: str) -> DynamoDbPurchaseLedger:
    client = claims_table("ledger")
    return DynamoDbPurchaseLedger("ledger", ttl_seconds=3600, client=client)


def test_purchases_are_counted_up_to_the_limit(ledger: DynamoDbPurchaseLedger):
    assert ledger.reserve("pair", limit=2) == Purchases(paid=1, lost=0)
    ledger.count_lost("pair", 1)
    assert ledger.reserve("pair", limit=2) == Purchases(paid=2, lost=1)
    assert ledger.reserve("pair", limit=2) == Purchases(paid=2, lost=1, granted=False)
    assert ledger.reserve("another pair", limit=2) == Purchases(paid=1, lost=0)


def test_a_call_that_was_not_charged_is_released(ledger: DynamoDbPurchaseLedger):
    ledger.reserve("pair", limit=2)
    ledger.release("pair")
    ledger.reserve("pair", limit=2)
    assert ledger.reserve("pair", limit=2) == Purchases(paid=2, lost=0)


def test_concurrent_containers_never_pass_the_limit_together(ledger: DynamoDbPurchaseLedger):
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: ledger.reserve("pair", limit=2), range(16)))
    assert sum(answer.granted for answer in answers) == 2


def test_a_failing_table_is_passing_trouble_and_pays_nothing(aws: str):
    ledger = DynamoDbPurchaseLedger(
        "no-such-table", ttl_seconds=3600, client=boto3.client("dynamodb", region_name=REGION)
    )
    with pytest.raises(InfrastructureUnavailable):
        ledger.reserve("pair", limit=2)
    ledger.release("pair")  # best effort: never in the way of the failure being handled
    ledger.count_lost("pair", 1)
    ledger.keep_verdict("pair", "{}")


def test_a_kept_verdict_stops_every_purchase_until_it_is_sent(ledger: DynamoDbPurchaseLedger):
    ledger.reserve("pair", limit=2)
    ledger.keep_verdict("pair", '{"type": "backdrop.failure"}')
    assert ledger.reserve("pair", limit=2) == Purchases(
        paid=1, lost=0, granted=False, verdict='{"type": "backdrop.failure"}'
    )


def test_what_is_counted_is_read_back_and_an_unknown_pair_counts_nothing(ledger: DynamoDbPurchaseLedger):
    ledger.reserve("pair-4", limit=2)
    ledger.reserve("pair-4", limit=2)
    ledger.count_lost("pair-4", 1)
    assert ledger.counted("pair-4") == Purchases(paid=2, lost=1)
    assert ledger.counted("never-bought") == Purchases(paid=0, lost=0)


def test_a_ledger_that_cannot_be_read_says_so_rather_than_zero(aws: str):
    unreadable = DynamoDbPurchaseLedger(
        "no-such-table", ttl_seconds=3600, client=boto3.client("dynamodb", region_name=REGION)
    )
    assert unreadable.counted("pair-1") is None
