"""The output-owners port on DynamoDB: one item per output key, in the idempotency table.

A conditional write makes the first image processed for an output key its owner, atomically
across every container, so that ``shop/shoe.webp`` can never silently replace the paid result
of ``shop/shoe.jpg`` (both would be ``shop/shoe.png``).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backdrop_fn.errors import InfrastructureUnavailable

# Beside Powertools' "backdrop.pair#…" records; these have no expiry: an owner stays one.
KEY_PREFIX = "backdrop.output#"


class DynamoDbOutputOwners:
    def __init__(self, table_name: str, *, client: Any) -> None:
        self._table = table_name
        self._dynamodb = client

    def claim(self, output_stem: str, image: str, *, replacing: str | None = None) -> str | None:
        item_id = {"S": KEY_PREFIX + output_stem}
        allowed = {":me": {"S": image}}
        condition = "attribute_not_exists(id) OR #owner = :me"
        if replacing is not None:
            allowed[":replacing"] = {"S": replacing}
            condition += " OR #owner = :replacing"
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={"id": item_id, "owner": {"S": image}},
                ConditionExpression=condition,
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=allowed,
            )
            return None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _unavailable(error) from None
        except BotoCoreError as error:
            raise _unavailable(error) from None
        return self._owner(item_id)

    def _owner(self, item_id: dict[str, str]) -> str:
        try:
            item = self._dynamodb.get_item(TableName=self._table, Key={"id": item_id}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from None
        return str(item.get("Item", {}).get("owner", {}).get("S", ""))


def _unavailable(error: Exception) -> InfrastructureUnavailable:
    return InfrastructureUnavailable(
        f"the idempotency table failed for an output owner: {type(error).__name__}"
    )
