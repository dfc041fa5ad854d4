"""How a drop folder learns what became of the pairs it sent: from the stack's completion events,
or, where there are none to subscribe to, by looking at the output bucket and the DLQ.

Events: an EventBridge rule of this run's own on the stack's bus (source ``backdrop``, both
detail-types, and the run's key prefix when it has one) sends them to an SQS queue of this run's
own, whose policy admits that rule alone. Both are removed when the run ends, Ctrl-C included.
A pair sent again unchanged is a duplicate, for which the function publishes nothing: so every
half minute the pairs still waiting that long are also looked for as polling does.

Polling: each round lists the output bucket under the run's folder, reads the metadata
(``source-key``, ``source-etag``) of each new object that could be a pending pair's output,
and reads the DLQ without taking anything from it (``dead_letters.read_all`` then ``release``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError

from backdrop import completion_events
from backdrop.completion_events import PROCESSED, CompletionEvent
from backdrop.dead_letters import DeadLetter, read_all, release
from backdrop.drop.target import DropTarget
from backdrop.function_code import load
from backdrop.pricing import price_of

_keys = load("keys")
_VARIANT = re.compile(r"\.v[0-9]+$")
SWEEP_SECONDS = 30.0  # with events: how long a pending pair waits before it is also looked for


@dataclass(frozen=True)
class Pending:
    """A pair sent and not yet answered: the versions uploaded (their MD5s, which are their ETags)."""

    image_key: str
    image_etag: str
    sidecar_key: str | None
    sidecar_etag: str | None
    # How many outcomes answer it: one per variant its sidecar asks for, else one.
    calls: int = 1
    sent_at: float = field(default_factory=time.monotonic)
    sent_wall: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Outcome:
    image_key: str
    image_etag: str | None
    processed: bool
    # The output bucket's objects of the pair: its output, then each rendition (variants' too).
    outputs: tuple[str, ...] = ()
    cost_usd: float = 0.0
    error_class: str = ""
    message: str = ""
    record: dict[str, Any] = field(default_factory=dict)  # a failure's DLQ record
    sidecar_key: str | None = None
    sidecar_etag: str | None = None
    # The sidecar's variant this is the outcome of (from 1); None: the whole pair's.
    variant: int | None = None

    def answers(self, pending: Pending) -> bool:
        """Whether this is the outcome of these very versions (not of an earlier upload's)."""
        return (
            self.image_key == pending.image_key
            and self.image_etag in (None, pending.image_etag)
            and (self.sidecar_etag is None or self.sidecar_etag == pending.sidecar_etag)
        )


class OutcomeSource(Protocol):
    how: str  # one line for the console: which path, and what it costs

    def take(self, pending: Mapping[str, Pending]) -> list[Outcome]: ...

    def close(self) -> None: ...


def of_event(event: CompletionEvent) -> Outcome:
    detail = event.detail
    cost = float((detail.get("cost") or {}).get("estimated_usd") or 0.0)
    if event.detail_type == PROCESSED:
        place = detail.get("input") or {}
        sidecar = detail.get("sidecar") or {}
        # Variants and renditions slot in: every object the event names is brought back.
        named = [detail.get("output") or {}, *(detail.get("renditions") or [])]
        return Outcome(
            str(place.get("key")),
            _etag(place.get("etag")),
            processed=True,
            outputs=tuple(str(item["key"]) for item in named if isinstance(item, dict) and item.get("key")),
            cost_usd=cost,
            sidecar_key=sidecar.get("key"),
            sidecar_etag=_etag(sidecar.get("etag")),
            variant=_variant(detail.get("variant")),
        )
    source = detail.get("source") or {}
    error = detail.get("error") or {}
    return Outcome(
        str(source.get("key")),
        _etag(source.get("etag")),
        processed=False,
        cost_usd=cost,
        error_class=str(error.get("class") or "unknown"),
        message=str(error.get("message") or ""),
        record=detail,
        variant=_variant(detail.get("variant")),
    )


def _variant(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _etag(value: object) -> str | None:
    return str(value).strip('"') if value else None


# -- polling ----------------------------------------------------------------------------------------


class PolledOutcomes:
    """The output bucket and the DLQ, looked at each round (see the module's docstring)."""

    how = (
        "polling the output bucket (a LIST a round, a HEAD for each new result) and reading the DLQ "
        "without taking from it: about $0.01 an hour of waiting on AWS (a round every 2 s)"
    )

    def __init__(self, target: DropTarget) -> None:
        self.target = target
        self._not_ours: set[tuple[str, str]] = set()  # (key, ETag) of objects of other versions

    def take(self, pending: Mapping[str, Pending]) -> list[Outcome]:
        if not pending:
            return []
        return self._results(pending) + self._failures(pending)

    def close(self) -> None:
        pass

    def _results(self, pending: Mapping[str, Pending]) -> list[Outcome]:
        bases = {_output_base(self.target.output_prefix, key): key for key in pending}
        found: dict[tuple[str, str | None], list[tuple[str, dict[str, str]]]] = {}
        for item in self._listed(_folder_of(list(bases))):
            image_key = owner_of(item["Key"], bases)
            if image_key is None or (item["Key"], item["ETag"]) in self._not_ours:
                continue
            metadata = self._metadata(item["Key"])
            wanted = pending[image_key]
            if metadata.get("source-key") != image_key or metadata.get("source-etag") != wanted.image_etag:
                self._not_ours.add((item["Key"], item["ETag"]))
                continue
            # Each variant is told of on its own, as its completion event does.
            found.setdefault((image_key, metadata.get("variant")), []).append((item["Key"], metadata))
        return [_processed(key, objects) for (key, _), objects in found.items() if _has_output(objects)]

    def _listed(self, prefix: str) -> Iterable[dict[str, Any]]:
        pages = self.target.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.target.output_bucket, Prefix=prefix
        )
        return (item for item in pages.search("Contents[]") if item is not None)

    def _metadata(self, key: str) -> dict[str, str]:
        head = self.target.s3.head_object(Bucket=self.target.output_bucket, Key=key)
        return {name: unquote(value) for name, value in head.get("Metadata", {}).items()}

    def _failures(self, pending: Mapping[str, Pending]) -> list[Outcome]:
        sqs, url = self.target.sqs, self.target.dlq_url
        letters = read_all(sqs, url, hide_seconds=10, wait_seconds=0 if _is_local(url) else 1)
        release(sqs, url, letters)  # only looked at: `backdrop dlq` and `redrive` still see them
        outcomes = []
        for letter in letters:
            wanted = pending.get(letter.key)
            if wanted is not None and _is_failure_of(letter, wanted):
                outcomes.append(of_event(CompletionEvent("Backdrop Image Failed", letter.record or {})))
        return outcomes


def _output_base(prefix: str, image_key: str) -> str:
    return _keys.output_key(prefix, image_key, "x")[: -len(".x")]


def _folder_of(bases: list[str]) -> str:
    """The narrowest folder that holds every one of ``bases``: what one listing must cover."""
    first, last = min(bases), max(bases)  # what these two share, every key between them shares
    same = next((n for n, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first))
    common = first[:same]
    return common[: common.rfind("/") + 1]


def owner_of(key: str, bases: Mapping[str, str]) -> str | None:
    """The pending image whose output, variant or rendition ``key`` may be: ``shop/a.png``,
    ``shop/a.v2.png``, ``shop/a@2000x2000.jpg`` and ``shop/a.v2@amazon.jpg`` all belong to the
    image whose output base is ``shop/a``."""
    folder, slash, name = key.rpartition("/")
    stem = name.split("@", 1)[0] if "@" in name else name.rsplit(".", 1)[0]
    for base in (stem, _VARIANT.sub("", stem)):
        if folder + slash + base in bases:
            return bases[folder + slash + base]
    return None


def _has_output(objects: list[tuple[str, dict[str, str]]]) -> bool:
    """The pair's output itself is there (not only a rendition, which may be written first)."""
    return any("rendition" not in metadata for _, metadata in objects)


def _processed(image_key: str, objects: list[tuple[str, dict[str, str]]]) -> Outcome:
    objects.sort(key=lambda found: ("rendition" in found[1], found[0]))  # the output first
    metadata = objects[0][1]
    return Outcome(
        image_key,
        metadata.get("source-etag"),
        processed=True,
        outputs=tuple(key for key, _ in objects),
        cost_usd=price_of(metadata.get("rendering-speed")),
        sidecar_key=metadata.get("sidecar-key"),
        sidecar_etag=metadata.get("sidecar-etag"),
        variant=_variant(metadata.get("variant")),
    )


def _is_failure_of(letter: DeadLetter, pending: Pending) -> bool:
    """A DLQ record of these versions: its image ETag, or, without one, written after they were sent."""
    source = (letter.record or {}).get("source") or {}
    if source.get("etag"):
        return _etag(source["etag"]) == pending.image_etag
    try:
        failed_at = datetime.fromisoformat(str((letter.record or {}).get("failed_at")))
    except ValueError:
        return False
    return failed_at.timestamp() >= pending.sent_wall - 1


def _is_local(url: str) -> bool:
    # The local stack's queues (moto) have one store: a short poll sees every message.
    return url.startswith(("http://127.0.0.1", "http://localhost"))


# -- completion events ------------------------------------------------------------------------------


class EventOutcomes:
    """The stack's completion events, on a rule and queue of this run's own (see the module's docstring)."""

    def __init__(self, target: DropTarget, bus: str, key_prefix: str) -> None:
        self.target = target
        self.name = f"backdrop-drop-{uuid.uuid4().hex[:12]}"
        self.how = (
            f"completion events on bus {bus!r}, through rule and queue {self.name} of this run's own "
            "(removed at exit): the rule is free, SQS about $0.40 a million requests"
        )
        self._sweep = PolledOutcomes(target)
        self._swept = time.monotonic()
        self._bus = bus
        self.queue_url = ""
        try:
            self._subscribe(key_prefix)
        except BaseException:
            self.close()  # what was made before the refusal is not left behind
            raise

    def _subscribe(self, key_prefix: str) -> None:
        sqs, events = self.target.sqs, self.target.events
        self.queue_url = sqs.create_queue(QueueName=self.name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        rule_arn = events.put_rule(
            Name=self.name,
            EventBusName=self._bus,
            EventPattern=json.dumps(event_pattern(key_prefix)),
            State="ENABLED",
            Description="backdrop run/watch: this run's outcomes; removed when it ends",
        )["RuleArn"]
        sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"Policy": _policy(queue_arn, rule_arn)})
        events.put_targets(
            Rule=self.name, EventBusName=self._bus, Targets=[{"Id": "drop-folder", "Arn": queue_arn}]
        )

    def take(self, pending: Mapping[str, Pending]) -> list[Outcome]:
        taken = [of_event(event) for event in completion_events.take(self.target.sqs, self.queue_url)]
        now = time.monotonic()
        if now - self._swept >= SWEEP_SECONDS:
            self._swept = now
            overdue = {key: p for key, p in pending.items() if now - p.sent_at >= SWEEP_SECONDS}
            taken += self._sweep.take(overdue)
        return taken

    def close(self) -> None:
        """Take the rule and the queue away; each step tried even when another fails."""
        events, sqs = self.target.events, self.target.sqs
        steps = [
            lambda: events.remove_targets(Rule=self.name, EventBusName=self._bus, Ids=["drop-folder"]),
            lambda: events.delete_rule(Name=self.name, EventBusName=self._bus),
            lambda: sqs.delete_queue(QueueUrl=self.queue_url) if self.queue_url else None,
        ]
        for step in steps:
            with contextlib.suppress(ClientError, BotoCoreError):  # nothing to remove: it failed half way
                step()


def event_pattern(key_prefix: str) -> dict[str, Any]:
    pattern: dict[str, Any] = {
        "source": ["backdrop"],
        "detail-type": [completion_events.PROCESSED, completion_events.FAILED],
    }
    if key_prefix:
        # A processed event names its image in detail.input, a failure (its DLQ record) in detail.source.
        pattern["$or"] = [
            {"detail": {"input": {"key": [{"prefix": key_prefix}]}}},
            {"detail": {"source": {"key": [{"prefix": key_prefix}]}}},
        ]
    return pattern


def _policy(queue_arn: str, rule_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
    )


def subscribe(target: DropTarget, key_prefix: str) -> tuple[OutcomeSource, str]:
    """The events when the stack has them and the caller may subscribe, else polling; and why not
    events, when not ('' when events)."""
    if target.event_bus is None:
        return PolledOutcomes(target), "the stack publishes no completion events"
    try:
        return EventOutcomes(target, target.event_bus, key_prefix), ""
    except (ClientError, BotoCoreError) as error:
        return PolledOutcomes(target), f"no subscription to its events ({error})"
