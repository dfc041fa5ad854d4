"""The claims port on Powertools Idempotency with its DynamoDB persistence layer.

The "in progress" record expires with the Lambda's deadline (``register_lambda_context``), so a
crashed invocation never blocks a pair for longer than it could have run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)

from backdrop_fn.errors import ClaimInProgress, ClaimNotReleased, InfrastructureUnavailable

logger = logging.getLogger(__name__)

# A stable name for the records, so that renaming a module never forgets which pairs were done.
KEY_PREFIX = "backdrop.pair"
_STORED_BEFORE = "_stored_before"


class IdempotencyClaims:
    def __init__(self, table_name: str, *, ttl_seconds: int, client: Any) -> None:
        self._config = IdempotencyConfig(
            expires_after_seconds=ttl_seconds,
            hash_function="sha256",
            raise_on_no_idempotency_key=True,
            response_hook=_mark_stored_before,
            # A pair's second event usually reaches the container that processed its first: a
            # completed claim remembered here answers it without a DynamoDB round trip.
            use_local_cache=True,
            local_cache_max_items=1024,
        )
        persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)

        @idempotent_function(
            data_keyword_argument="identity",
            persistence_store=persistence,
            config=self._config,
            key_prefix=KEY_PREFIX,
        )
        def run(identity: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            return work()

        self._run = run

    def register_lambda_context(self, context: Any) -> None:
        self._config.register_lambda_context(context)

    def run_once(
        self, identity: dict[str, Any], work: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        progress: dict[str, Any] = {}

        def tracked() -> dict[str, Any]:
            progress["started"] = True
            progress["result"] = work()
            return progress["result"]

        try:
            result = dict(self._run(identity=identity, work=tracked))
        except IdempotencyAlreadyInProgressError:
            raise ClaimInProgress("another invocation is processing this pair") from None
        except IdempotencyPersistenceLayerError as error:
            if "result" in progress:
                # The work is done (and paid for); only its record failed. Done is done: say so,
                # rather than have the message retried into a second paid call.
                logger.warning("the pair was processed but its claim could not be completed")
                return dict(progress["result"]), False
            if "started" in progress:
                raise ClaimNotReleased(f"the idempotency table failed after the work did: {error}") from None
            raise InfrastructureUnavailable(f"the idempotency table failed: {error}") from None
        stored_before = bool(result.pop(_STORED_BEFORE, False))
        return result, stored_before


def _mark_stored_before(response: dict[str, Any], _record: Any) -> dict[str, Any]:
    """Powertools calls this only when it returns a stored result instead of running the work."""
    return {**(response or {}), _STORED_BEFORE: True}
