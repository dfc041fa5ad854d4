"""Sending the plan: one S3 event record a pair, ten to a ``SendMessageBatch``.

Each message is the S3 record of the image's upload (``ObjectCreated:Put``), a shape the function
already takes (docs/REFERENCE.md#accepted-events) beside the EventBridge events uploads arrive as:
it handles the pair as an upload's, and a pair it already handled is a duplicate that costs
nothing. The record's ``configurationId`` is ``backdrop-backfill``, so that a DLQ record says where
its event came from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from botocore.exceptions import BotoCoreError, ClientError

from backdrop.backfill.bucket import SidecarTaken, write_sidecar
from backdrop.backfill.ledger import Work

BATCH = 10  # SendMessageBatch's most entries
CONFIGURATION_ID = "backdrop-backfill"
# An entry SQS failed on its side is tried again this many times more, after 0.5, 1 and 2 s.
_RETRIES = 3
_FIRST_BACKOFF_SECONDS = 0.5


def s3_record(bucket: str, work: Work, region: str, event_time: str) -> dict[str, Any]:
    """The record S3 would have sent for the image's upload (its key URL-encoded, as S3 does)."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": event_time,
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": CONFIGURATION_ID},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": CONFIGURATION_ID,
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote_plus(work.pair.image_key, safe="/"),
                "size": work.image_size,
                "eTag": work.pair.image_etag,
            },
        },
    }


@dataclass
class BatchResult:
    sent: list[Work] = field(default_factory=list)
    failed: list[tuple[Work, str]] = field(default_factory=list)  # with the reason


class Sender:
    """Writes a batch's manifest sidecars, then sends its messages; says which were accepted.

    An error of the whole call (after boto3's own retries) is raised: the run stops there, and
    what was not accepted stays unsent, for the next run.
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        s3: Any,
        bucket: str,
        region: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._s3 = s3
        self._bucket = bucket
        self._region = region
        self._sleep = sleep

    def send(self, works: list[Work]) -> BatchResult:
        result = BatchResult()
        ready = [written for work in works if (written := self._with_sidecar(work, result))]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        pending = {
            str(number): (work, json.dumps({"Records": [s3_record(self._bucket, work, self._region, now)]}))
            for number, work in enumerate(ready)
        }
        reasons: dict[str, str] = {}
        for attempt in range(_RETRIES + 1):
            if not pending:
                break
            if attempt:
                self._sleep(_FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
            pending = self._attempt(pending, result, reasons)
        result.failed += [(work, reasons.get(entry, "not accepted")) for entry, (work, _) in pending.items()]
        return result

    def _attempt(
        self, pending: dict[str, tuple[Work, str]], result: BatchResult, reasons: dict[str, str]
    ) -> dict[str, tuple[Work, str]]:
        """One SendMessageBatch; what is worth another attempt (SQS's fault, or not answered)."""
        answer = self._sqs.send_message_batch(
            QueueUrl=self._queue_url,
            Entries=[{"Id": entry, "MessageBody": body} for entry, (_, body) in pending.items()],
        )
        left = dict(pending)
        for accepted in answer.get("Successful", []):
            result.sent.append(left.pop(accepted["Id"])[0])
        for refused in answer.get("Failed", []):
            reason = f"{refused.get('Code', 'error')}: {refused.get('Message', '')}".rstrip(": ")
            if refused.get("SenderFault"):  # the message itself: another attempt would fail alike
                result.failed.append((left.pop(refused["Id"])[0], reason))
            else:
                reasons[refused["Id"]] = reason
        return left

    def _with_sidecar(self, work: Work, result: BatchResult) -> Work | None:
        """The work with its manifest sidecar written (and that sidecar's ETag), or None if it failed."""
        if work.sidecar_body is None or work.pair.sidecar_key is None:
            return work
        try:
            etag = write_sidecar(self._s3, self._bucket, work.pair.sidecar_key, work.sidecar_body)
        except SidecarTaken as taken:
            result.failed.append((work, str(taken)))
            return None
        except (ClientError, BotoCoreError) as error:
            result.failed.append((work, f"writing {work.pair.sidecar_key}: {error}"))
            return None
        return replace(work, pair=replace(work.pair, sidecar_etag=etag), sidecar_body=None)
