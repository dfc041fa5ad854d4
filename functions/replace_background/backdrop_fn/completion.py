"""One completion event per outcome (CONTRACT.md §8): at least once, and never a second paid call.

A processed pair and a dead-lettered failure each put one event on the bus. When the bus does not
take it (after boto3's own retries), the event is kept in the idempotency table and its id is
remembered in the outcome that the pair's claim stores. The outcome is then returned as usual;
the pipeline tries the event once more and, if the bus still refuses, makes the message come back
(``EventNotPublished``). A later delivery meets the claim, which pays for nothing again, finds the
kept event and publishes it. ``EventsUnpublished`` counts the events that were not published when
their outcome was reached.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from backdrop_fn.delivery import Delivery
from backdrop_fn.errors import BackdropError, EventNotPublished
from backdrop_fn.failures import FailureCost, FailureRecord
from backdrop_fn.output import StoredOutput
from backdrop_fn.pairing import Pair
from backdrop_fn.ports import EventBus, Metrics, PendingEvents
from backdrop_fn.vocabulary import Metric

logger = logging.getLogger(__name__)

SOURCE = "backdrop"
PROCESSED = "Backdrop Image Processed"
FAILED = "Backdrop Image Failed"
DETAIL_VERSION = 1


class CompletionEvents:
    def __init__(self, bus: EventBus, pending: PendingEvents, metrics: Metrics) -> None:
        self._bus = bus
        self._pending = pending
        self._metrics = metrics

    def processed(self, detail: dict[str, Any]) -> str | None:
        """Publish a processed pair's event; the id of the kept event when the bus refused it."""
        return self._publish(PROCESSED, json.dumps(detail, separators=(",", ":")))

    def failed(self, record: FailureRecord) -> str | None:
        """Publish a failure's event (its detail is the DLQ record); as ``processed``."""
        return self._publish(FAILED, record.to_json())

    def settle(self, event_id: str, delivery: Delivery) -> None:
        """Publish a kept event, if it still waits. Raises EventNotPublished when the bus refuses
        it again and the message will come back; on its last delivery, it is logged instead."""
        try:
            kept = self._pending.take(event_id)
            if kept is None:
                return  # published by an earlier delivery
            self._bus.put(*kept)
        except EventNotPublished as error:
            # Only the event is missing: the pair's outcome stands, and is never a failure.
            if delivery.comes_back(error):
                raise
            logger.error(
                "completion event not published: given up with the message's last delivery",
                extra={"event_id": event_id, "error": error.message},
            )
            return
        self._pending.forget(event_id)
        logger.info("completion event published by a later delivery", extra={"event_id": event_id})

    def _publish(self, detail_type: str, detail: str) -> str | None:
        try:
            self._bus.put(detail_type, detail)
            return None
        except EventNotPublished as error:
            self._metrics.add(Metric.EVENTS_UNPUBLISHED, 1)
            event_id = str(uuid.uuid4())
            try:
                self._pending.keep(event_id, detail_type, detail)
            except BackdropError as kept_error:
                # Nowhere to keep it: the log holds it whole, for an operator to publish by hand.
                logger.error(
                    "completion event lost: not published, and it could not be kept",
                    extra={"detail_type": detail_type, "detail": detail, "error": kept_error.message},
                )
                return None
            logger.warning(
                "completion event not published: kept, to publish with the message's next delivery",
                extra={"event_id": event_id, "detail_type": detail_type, "error": error.message},
            )
            return event_id


def processed_detail(
    pair: Pair,
    output: StoredOutput,
    renditions: list[StoredOutput],
    *,
    written_metadata: dict[str, str],
    sidecar_metadata: dict[str, str] | None,
    cost: FailureCost | None,
    pair_estimated_usd: float | None,
    api_latency_ms: float | None,
    delivery: Delivery,
) -> dict[str, Any]:
    """The detail of a processed pair's event (CONTRACT.md §8). ``written_metadata`` is the
    output's own (its seed and speed); ``api_latency_ms`` is None when an earlier attempt paid;
    ``pair_estimated_usd``: what all the variants of the pair cost together, at list prices."""
    image = pair.image
    sidecar = pair.sidecar.info if pair.sidecar is not None else None
    return {
        "version": DETAIL_VERSION,
        "input": {
            "bucket": image.bucket,
            "key": image.key,
            "version_id": image.version_id,
            "etag": image.etag,
        },
        "sidecar": None if sidecar is None else {"key": sidecar.key, "etag": sidecar.etag},
        "variant": pair.variant,
        "output": {
            "bucket": output.bucket,
            "key": output.key,
            "version_id": output.version_id,
            "content_type": output.content_type,
            "bytes": output.bytes,
        },
        "renditions": [
            {"key": rendition.key, "content_type": rendition.content_type, "bytes": rendition.bytes}
            for rendition in renditions
        ],
        "seed": int(written_metadata["seed"]),
        "rendering_speed": written_metadata["rendering-speed"],
        "metadata": sidecar_metadata or {},
        "cost": {
            **(cost.model_dump() if cost is not None else {"paid_calls": 0, "estimated_usd": 0.0}),
            "pair_estimated_usd": pair_estimated_usd,
        },
        "api_latency_ms": None if api_latency_ms is None else round(api_latency_ms),
        "attempts": delivery.attempt,
        "request_id": delivery.request_id,
        "completed_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
