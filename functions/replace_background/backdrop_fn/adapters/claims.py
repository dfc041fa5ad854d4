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
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

from backdrop_fn.errors import ClaimInProgress, ClaimNotReleased, InfrastructureUnavailable
from backdrop_fn.outcome import Outcome

logger = logging.getLogger(__name__)

# A stable name for the records, so that renaming a module never forgets which pairs were done.
KEY_PREFIX = "backdrop.pair"


class IdempotencyClaims:
    def __init__(self, table_name: str, *, ttl_seconds: int, client: Any) -> None:
        self._config = IdempotencyConfig(
            expires_after_seconds=ttl_seconds,
            hash_function="sha256",
            raise_on_no_idempotency_key=True,
            # Called only when a stored outcome is returned instead of running the work.
            response_hook=_seen_again,
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
            output_serializer=PydanticSerializer(Outcome),
        )
        def run(identity: dict[str, Any], work: Callable[[], Outcome]) -> Outcome:
            return work()

        self._run = run

    def register_lambda_context(self, context: Any) -> None:
        self._config.register_lambda_context(context)

    def run_once(self, identity: dict[str, Any], work: Callable[[], Outcome]) -> Outcome:
        progress: dict[str, Any] = {}

        def tracked() -> Outcome:
            progress["started"] = True
            progress["result"] = work()
            return progress["result"]

        try:
            outcome: Outcome = self._run(identity=identity, work=tracked)
        except IdempotencyAlreadyInProgressError:
            raise ClaimInProgress("another invocation is processing this pair") from None
        except IdempotencyPersistenceLayerError as error:
            if "result" in progress:
                # The work is done (and paid for); only its record failed. Done is done: say so,
                # rather than have the message retried into a second paid call.
                logger.warning("the pair was processed but its claim could not be completed")
                return progress["result"]
            if "started" in progress:
                raise ClaimNotReleased(f"the idempotency table failed after the work did: {error}") from None
            raise InfrastructureUnavailable(f"the idempotency table failed: {error}") from None
        return outcome


def _seen_again(response: Outcome, idempotent_data: DataRecord) -> Outcome:
    """The stored outcome, returned instead of running the work: a duplicate of it."""
    return response.as_duplicate()
