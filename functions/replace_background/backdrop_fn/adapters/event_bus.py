"""Completion events on EventBridge, and the ones it did not take, kept in the idempotency table."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backdrop_fn.completion import SOURCE
from backdrop_fn.errors import EventNotPublished, InfrastructureUnavailable

logger = logging.getLogger(__name__)

PENDING_PREFIX = "backdrop.event#"
# PutEvents answers 200 and names the entries it failed (throttled, an internal error): boto3
# retries only whole requests, so such an entry is put again here, this many times in all.
_PUT_ATTEMPTS = 3
_PUT_RETRY_SECONDS = 0.2


class EventBridgeBus:
    def __init__(
        self, client: Callable[[], Any], bus_name: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._events = client  # made on first use
        self._bus = bus_name
        self._sleep = sleep

    def put(self, detail_type: str, detail: str) -> None:
        entry = {"Source": SOURCE, "DetailType": detail_type, "Detail": detail, "EventBusName": self._bus}
        reason = ""
        for attempt in range(_PUT_ATTEMPTS):
            if attempt:
                self._sleep(_PUT_RETRY_SECONDS * 2 ** (attempt - 1))
            try:
                answer = self._events().put_events(Entries=[entry])
            except (ClientError, BotoCoreError) as error:
                reason = type(error).__name__
                raise EventNotPublished(f"the event bus {self._bus!r} failed: {reason}") from None
            if not answer.get("FailedEntryCount"):
                return
            failed = answer["Entries"][0]
            reason = f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}"
        raise EventNotPublished(f"the event bus {self._bus!r} refused the event: {reason}")


class DynamoDbPendingEvents:
    def __init__(self, table_name: str, *, client: Any, ttl_seconds: int) -> None:
        self._table = table_name
        self._dynamodb = client
        self._ttl = ttl_seconds

    def keep(self, event_id: str, detail_type: str, detail: str) -> None:
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    **_key(event_id),
                    "detail_type": {"S": detail_type},
                    "detail": {"S": detail},
                    "expiration": {"N": str(int(time.time()) + self._ttl)},
                },
            )
        except (ClientError, BotoCoreError) as error:
            raise InfrastructureUnavailable(
                f"could not keep an unpublished event: {type(error).__name__}"
            ) from None

    def take(self, event_id: str) -> tuple[str, str] | None:
        try:
            item = self._dynamodb.get_item(TableName=self._table, Key=_key(event_id), ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise EventNotPublished(f"could not read an unpublished event: {type(error).__name__}") from None
        found = item.get("Item")
        return None if found is None else (found["detail_type"]["S"], found["detail"]["S"])

    def forget(self, event_id: str) -> None:
        try:
            self._dynamodb.delete_item(TableName=self._table, Key=_key(event_id))
        except (ClientError, BotoCoreError) as error:
            # Kept a while longer, it may be published once more: at least once, as promised.
            logger.warning("a published event could not be forgotten", extra={"error": str(error)})


def _key(event_id: str) -> dict[str, dict[str, str]]:
    return {"id": {"S": PENDING_PREFIX + event_id}}
