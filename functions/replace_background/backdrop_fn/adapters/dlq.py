"""The failure sink on the SQS dead-letter queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backdrop_fn.errors import InfrastructureUnavailable
from backdrop_fn.vocabulary import ErrorClass


class SqsFailureSink:
    def __init__(self, client: Callable[[], Any], queue_url: str) -> None:
        self._sqs = client  # made on first use
        self._queue_url = queue_url

    def send(self, body: str, *, error_class: ErrorClass) -> None:
        try:
            self._sqs().send_message(
                QueueUrl=self._queue_url,
                MessageBody=body,
                MessageAttributes={"error_class": {"DataType": "String", "StringValue": error_class.value}},
            )
        except (ClientError, BotoCoreError) as error:
            # Not dead-lettered means not done: the record stays on the work queue and comes back.
            raise InfrastructureUnavailable(
                f"could not write the DLQ record: {type(error).__name__}"
            ) from None
