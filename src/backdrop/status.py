"""`backdrop status KEY`: where one image stands, and what to do next.

It looks where the product leaves its traces, in this order: the image and its sidecar in the
input bucket, a result whose metadata names these very versions (source and sidecar ETags) in the
output bucket, a DLQ record for the image; with none of those, the pair is waiting for its
sidecar or is on its way through the work queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from backdrop import function_code
from backdrop.dead_letters import UNPROCESSED, DeadLetter, read_all, release
from backdrop.pricing import price_of
from backdrop.targets import Catalog

function_code.make_importable()
from backdrop_fn import keys as _keys  # noqa: E402 - importable only once the line above ran
from backdrop_fn.images import ANSWER_TYPES  # noqa: E402

# Failures a redrive can cure once their cause has passed; the others need a changed input.
_PASSING = frozenset(
    {"rate_limited", "server_error", "timeout", "output_write", "budget_exceeded", "internal", UNPROCESSED}
)


@dataclass(frozen=True)
class Standing:
    state: str  # processed · failed · waiting for its sidecar · in progress · not found
    facts: list[tuple[str, str]] = field(default_factory=list)
    next_step: str = ""


@dataclass(frozen=True)
class _Found:
    etag: str
    last_modified: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def standing(catalog: Catalog, key: str) -> Standing:
    if _keys.classify(key) is not _keys.KeyKind.IMAGE:
        return Standing(
            "not an image key", next_step="give the image's key (ending .jpg, .jpeg, .png or .webp)"
        )
    image = _head(catalog.s3, catalog.input_bucket, key)
    failure = _failure(catalog, key)
    if image is None:
        if failure is not None:
            return _failed(failure)
        return Standing(
            "not found",
            [("input", f"no s3://{catalog.input_bucket}/{key}")],
            f"upload the image to s3://{catalog.input_bucket}/{key}, with its sidecar {key}.json",
        )
    sidecar_key, sidecar = _sidecar(catalog, key)
    result = _result(catalog, key, image, sidecar)
    if result is not None:
        return result
    if failure is not None and _still_stands(failure, image, sidecar):
        return _failed(failure)
    if sidecar is None and not catalog.default_prompt:
        full, stem = _keys.sidecar_candidates(key)
        return Standing(
            "waiting for its sidecar",
            [("input", f"s3://{catalog.input_bucket}/{key}")],
            f"upload its sidecar, s3://{catalog.input_bucket}/{full} (or {stem})",
        )
    return _in_progress(catalog, key, sidecar_key)


def _head(s3: Any, bucket: str, key: str) -> _Found | None:
    try:
        answer = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    metadata = {name: unquote(value) for name, value in answer.get("Metadata", {}).items()}
    return _Found(answer["ETag"].strip('"'), answer.get("LastModified"), metadata)


def _sidecar(catalog: Catalog, key: str) -> tuple[str | None, _Found | None]:
    for candidate in _keys.sidecar_candidates(key):
        found = _head(catalog.s3, catalog.input_bucket, candidate)
        if found is not None:
            return candidate, found
    return None, None


def _result(catalog: Catalog, key: str, image: _Found, sidecar: _Found | None) -> Standing | None:
    """Processed: an output made from these very versions of the image and its sidecar."""
    for answer_type in ANSWER_TYPES:
        out_key = _keys.output_key(catalog.output_prefix, key, answer_type.extension)
        output = _head(catalog.s3, catalog.output_bucket, out_key)
        if output is None or output.metadata.get("source-key") != key:
            continue
        made_from_these = output.metadata.get("source-etag") == image.etag and (
            sidecar is None or output.metadata.get("sidecar-etag") in (None, sidecar.etag)
        )
        if not made_from_these:
            continue  # an earlier version's result: these versions are still on their way
        speed = output.metadata.get("rendering-speed")
        when = output.last_modified.strftime("%Y-%m-%d %H:%M:%S UTC") if output.last_modified else "?"
        return Standing(
            "processed",
            [
                ("output", f"s3://{catalog.output_bucket}/{out_key}"),
                ("when", when),
                ("cost", f"~${price_of(speed):.3f} ({speed}, estimated)"),
                ("seed", output.metadata.get("seed", "?")),
            ],
            "nothing: done. Upload a changed sidecar to make another version (a new paid call).",
        )
    return None


def _failure(catalog: Catalog, key: str) -> DeadLetter | None:
    """The image's latest DLQ record, if any (the queue is read, then left as it was)."""
    letters = read_all(catalog.sqs, catalog.dlq_url, hide_seconds=30)
    release(catalog.sqs, catalog.dlq_url, letters)
    mine = [letter for letter in letters if letter.key == key]
    return max(mine, key=lambda letter: str((letter.record or {}).get("failed_at", "")), default=None)


def _still_stands(letter: DeadLetter, image: _Found, sidecar: _Found | None) -> bool:
    """Whether a failure is of the pair as it is now: of this image (its ETag, when the record
    has one), and older than its sidecar's last upload, which a fix would have replaced."""
    record = letter.record or {}
    if record.get("source", {}).get("etag") not in (None, image.etag):
        return False
    try:
        failed_at = datetime.fromisoformat(str(record.get("failed_at")))
    except ValueError:
        return True
    return sidecar is None or sidecar.last_modified is None or sidecar.last_modified <= failed_at


def _failed(letter: DeadLetter) -> Standing:
    facts = [("class", letter.error_class), ("message", letter.message)]
    failed_at = (letter.record or {}).get("failed_at")
    if failed_at:
        facts.append(("when", str(failed_at)))
    if letter.error_class in _PASSING:
        step = f"once the cause has passed: backdrop redrive --error-class {letter.error_class}"
    else:
        step = "fix the input (see the message) and upload it again: the new version is processed on its own"
    return Standing("failed", facts, step)


def _in_progress(catalog: Catalog, key: str, sidecar_key: str | None) -> Standing:
    facts = [("input", f"s3://{catalog.input_bucket}/{key}")]
    facts.append(("sidecar", sidecar_key or "none: the stack's DefaultPrompt is used"))
    if catalog.work_queue_url:
        attributes = catalog.sqs.get_queue_attributes(
            QueueUrl=catalog.work_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        facts.append(
            (
                "work queue",
                f"{attributes['ApproximateNumberOfMessages']} waiting, "
                f"{attributes['ApproximateNumberOfMessagesNotVisible']} being handled",
            )
        )
    return Standing(
        "in progress",
        facts,
        "wait: its result or its failure comes next (`backdrop status` again, or the completion event)",
    )
