"""The purchase ledger on DynamoDB: one item per pair, in the idempotency table.

An atomic counter with a condition: two containers can never both buy a pair's third answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backdrop_fn.errors import InfrastructureUnavailable
from backdrop_fn.ports import Purchases

logger = logging.getLogger(__name__)

KEY_PREFIX = "backdrop.purchases#"
# Under the limit, and no record of a charged failure waiting to be sent instead.
_GRANTED = "(attribute_not_exists(paid) OR paid < :limit) AND attribute_not_exists(verdict)"


class DynamoDbPurchaseLedger:
    def __init__(self, table_name: str, *, ttl_seconds: int, client: Any) -> None:
        self._table = table_name
        self._ttl = ttl_seconds
        self._dynamodb = client

    def reserve(self, purchase_id: str, *, limit: int) -> Purchases:
        try:
            answer = self._dynamodb.update_item(
                TableName=self._table,
                Key=_key(purchase_id),
                UpdateExpression="ADD paid :one SET expiration = :expires",
                ConditionExpression=_GRANTED,
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    ":expires": {"N": str(int(time.time()) + self._ttl)},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return self._refused(purchase_id)
            raise _unavailable(error) from None
        except BotoCoreError as error:
            raise _unavailable(error) from None
        return _purchases(answer["Attributes"], granted=True)

    def _refused(self, purchase_id: str) -> Purchases:
        try:
            found = self._dynamodb.get_item(TableName=self._table, Key=_key(purchase_id), ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from None
        return _purchases(found.get("Item", {}), granted=False)

    def release(self, purchase_id: str) -> None:
        self._best_effort(
            "release",
            UpdateExpression="ADD paid :minus_one",
            ConditionExpression="paid > :zero",
            ExpressionAttributeValues={":minus_one": {"N": "-1"}, ":zero": {"N": "0"}},
            Key=_key(purchase_id),
        )

    def count_lost(self, purchase_id: str, lost: int) -> None:
        self._best_effort(
            "count_lost",
            UpdateExpression="SET lost = :lost",
            ExpressionAttributeValues={":lost": {"N": str(lost)}},
            Key=_key(purchase_id),
        )

    def keep_verdict(self, purchase_id: str, record: str) -> None:
        self._best_effort(
            "keep_verdict",
            UpdateExpression="SET verdict = :record",
            ExpressionAttributeValues={":record": {"S": record}},
            Key=_key(purchase_id),
        )

    def counted(self, purchase_id: str) -> Purchases | None:
        try:
            found = self._dynamodb.get_item(TableName=self._table, Key=_key(purchase_id), ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            logger.warning("the purchase ledger could not be read", extra={"error": str(error)})
            return None
        return _purchases(found.get("Item", {}), granted=True)

    def _best_effort(self, what: str, **request: Any) -> None:
        # Never in the way of the failure being handled: a ledger that cannot be updated errs on
        # the side of counting one purchase too many, which can only prevent a payment.
        try:
            self._dynamodb.update_item(TableName=self._table, **request)
        except (ClientError, BotoCoreError) as error:
            logger.warning("the purchase ledger was not updated", extra={"update": what, "error": str(error)})


def _purchases(item: dict[str, Any], *, granted: bool) -> Purchases:
    return Purchases(
        paid=int(item.get("paid", {"N": "0"})["N"]),
        lost=int(item.get("lost", {"N": "0"})["N"]),
        granted=granted,
        verdict=item.get("verdict", {}).get("S"),
    )


def _key(purchase_id: str) -> dict[str, dict[str, str]]:
    return {"id": {"S": KEY_PREFIX + purchase_id}}


def _unavailable(error: Exception) -> InfrastructureUnavailable:
    return InfrastructureUnavailable(f"the idempotency table failed for a purchase: {type(error).__name__}")
