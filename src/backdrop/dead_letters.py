"""Reading and redriving the dead-letter queue, against AWS or the local stack (plain boto3)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

# The error classes of the function's DLQ records (docs/REFERENCE.md#error-classes). Kept here,
# not imported: the command does not load the function's package (tests check the two agree).
FAILURE_CLASSES = (
    "invalid_sidecar",
    "invalid_image",
    "missing_object",
    "invalid_event",
    "bad_request",
    "auth",
    "not_found",
    "insufficient_credits",
    "rate_limited",
    "server_error",
    "timeout",
    "output_write",
    "budget_exceeded",
    "internal",
)
# What the queue itself moved after maxReceiveCount (a crash or a timeout): a raw notification.
UNPROCESSED = "unprocessed"
# A message that is neither.
UNKNOWN = "unknown"
ERROR_CLASSES = (*FAILURE_CLASSES, UNPROCESSED, UNKNOWN)


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: str
    error_class: str
    record: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        if self.record:
            return str((self.record.get("source") or {}).get("key") or "?")
        # A raw event the queue moved here: an S3 notification, or an EventBridge event (the input
        # rule's), its key URL-encoded by S3 in either.
        try:
            body = json.loads(self.body)
            found = (
                body["detail"]["object"]["key"]
                if "detail" in body
                else body["Records"][0]["s3"]["object"]["key"]
            )
            return unquote_plus(str(found))
        except (ValueError, KeyError, IndexError, TypeError):
            return "?"

    @property
    def message(self) -> str:
        if self.record:
            return str(self.record.get("error", {}).get("message", ""))
        if self.error_class == UNPROCESSED:
            return "moved by the queue after too many receives (the function crashed or timed out)"
        return "not a Backdrop message"

    @property
    def failed_at(self) -> str:
        return str((self.record or {}).get("failed_at", ""))

    @property
    def request_id(self) -> str | None:
        """The invocation that sent the record; None for a message that is not a Backdrop record."""
        return (self.record or {}).get("request_id")


def classify(message: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The error class of a DLQ message, and its Backdrop record when it is one."""
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("type") == "backdrop.failure":
        attribute = message.get("MessageAttributes", {}).get("error_class", {}).get("StringValue")
        return attribute or str(body.get("error", {}).get("class", "internal")), body
    if isinstance(body, dict) and ("Records" in body or body.get("source") == "aws.s3"):
        return UNPROCESSED, None
    return UNKNOWN, None


def read_all(sqs: Any, queue_url: str, *, hide_seconds: int = 60, wait_seconds: int = 1) -> list[DeadLetter]:
    """Every message of the queue, each once. They stay hidden for ``hide_seconds`` (release them after).

    ``wait_seconds``: a long poll, however short, asks every SQS server; a short poll (0) samples
    some of them, and its empty answer would end the listing early on a real queue.
    """
    letters: dict[str, DeadLetter] = {}
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=hide_seconds,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=wait_seconds,
        ).get("Messages", [])
        if not batch or all(message["MessageId"] in letters for message in batch):
            return list(letters.values())  # (a message seen again means the queue went round)
        for message in batch:
            error_class, record = classify(message)
            letters[message["MessageId"]] = DeadLetter(
                message["MessageId"], message["ReceiptHandle"], message["Body"], error_class, record
            )


def release(sqs: Any, queue_url: str, letters: list[DeadLetter]) -> None:
    """Make messages visible again at once (they were only looked at)."""
    for start in range(0, len(letters), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                for i, letter in enumerate(letters[start : start + 10])
            ],
        )


@dataclass(frozen=True)
class ClassSummary:
    error_class: str
    count: int
    oldest: str
    newest: str
    letters: tuple[DeadLetter, ...]  # oldest first

    @property
    def example_key(self) -> str:
        return self.letters[-1].key

    @property
    def example_message(self) -> str:
        return self.letters[-1].message


def summarise(letters: list[DeadLetter]) -> list[ClassSummary]:
    """By error class, the most frequent first."""
    counts = Counter(letter.error_class for letter in letters)
    rows = []
    for error_class, count in counts.most_common():
        of_class = sorted((x for x in letters if x.error_class == error_class), key=lambda x: x.failed_at)
        rows.append(
            ClassSummary(
                error_class=error_class,
                count=count,
                oldest=of_class[0].failed_at,
                newest=of_class[-1].failed_at,
                letters=tuple(of_class),
            )
        )
    return rows


@dataclass
class RedriveResult:
    moved: Counter[str] = field(default_factory=Counter)  # by error class
    kept: Counter[str] = field(default_factory=Counter)


def redrive(
    sqs: Any,
    dlq_url: str,
    work_queue_url: str,
    *,
    error_class: str | None = None,
    dry_run: bool = False,
) -> RedriveResult:
    """Move DLQ messages (of one class, or all) back to the work queue, each sent once then deleted."""
    letters = read_all(sqs, dlq_url)
    result = RedriveResult()
    untouched: list[DeadLetter] = []
    for letter in letters:
        if error_class is not None and letter.error_class != error_class:
            result.kept[letter.error_class] += 1
            untouched.append(letter)
            continue
        result.moved[letter.error_class] += 1  # with dry_run: what would move
        if dry_run:
            untouched.append(letter)
            continue
        sqs.send_message(QueueUrl=work_queue_url, MessageBody=letter.body)
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.receipt_handle)
    release(sqs, dlq_url, untouched)
    return result
