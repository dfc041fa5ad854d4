"""`backdrop enable-eventbridge BUCKET`: a bucket's EventBridge delivery on, its other notifications kept.

An existing bucket reaches Backdrop through EventBridge (the stack's rule, into the work queue),
and S3 sends a bucket's events there only once its notification configuration says
``"EventBridgeConfiguration": {}``. That configuration is one document: PutBucketNotificationConfiguration
replaces all of it, so writing ``{"EventBridgeConfiguration": {}}`` alone would silently end every
queue, topic and Lambda notification the bucket already has. This reads the configuration, adds
EventBridge to it and writes the whole of it back.

- Everything read is written back except the response's own metadata, rather than a list of the
  kinds known today: a kind S3 adds later is kept too.
- The existing destinations are written back as they are, so S3 is asked not to validate them
  again (``SkipDestinationValidation``): one that has gone stale since it was set would otherwise
  make this write fail, and it is not ours to fix.
- Read and write are two calls: a change someone makes to the configuration between them is lost.
  Run it when nobody else is changing the bucket's notifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVENTBRIDGE = "EventBridgeConfiguration"
_NOT_CONFIGURATION = frozenset({"ResponseMetadata"})


@dataclass(frozen=True)
class EventBridgeDelivery:
    """What `enable_eventbridge` found, and what it wrote."""

    bucket: str
    already_on: bool
    written: bool
    # The configuration's other entries, by kind (QueueConfigurations: 2, …): kept as they were.
    kept: dict[str, int]


def enable_eventbridge(s3: Any, bucket: str, *, dry_run: bool = False) -> EventBridgeDelivery:
    """Turn on ``bucket``'s EventBridge delivery, keeping its notification configuration whole.

    Nothing is written when it is on already, or with ``dry_run``.
    """
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    configuration = {name: value for name, value in current.items() if name not in _NOT_CONFIGURATION}
    kept = {
        name: len(value) if isinstance(value, list) else 1
        for name, value in configuration.items()
        if name != EVENTBRIDGE and value
    }
    if EVENTBRIDGE in configuration:
        return EventBridgeDelivery(bucket, already_on=True, written=False, kept=kept)
    if not dry_run:
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={**configuration, EVENTBRIDGE: {}},
            SkipDestinationValidation=True,
        )
    return EventBridgeDelivery(bucket, already_on=False, written=not dry_run, kept=kept)
