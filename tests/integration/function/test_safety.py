"""Deadline safety, secret handling and outbound traffic, through the real handler."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

from backdrop.local.context import LocalLambdaContext
from backdrop.local.esm import sqs_lambda_event
from backdrop_fn.adapters.claims import KEY_PREFIX
from backdrop_fn.adapters.segmind import SegmindClient
from backdrop_fn.errors import NotEnoughTime
from backdrop_fn.vocabulary import ATTEMPTS_BEFORE
from tests.integration.conftest import REGION, Stack, photo

SIDECAR = {"prompt": "a quiet harbour", "seed": 4040}


class ShrinkingContext(LocalLambdaContext):
    """Reports a long deadline when the record starts, then a short one: the claim is then taken
    with a sub-second "in progress" window, so its expiry can be watched without waiting minutes."""

    def __init__(self, first_ms: int, then_ms: int) -> None:
        super().__init__(timeout_seconds=first_ms / 1000)
        self._answers = [first_ms]
        self._then = then_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._answers.pop(0) if self._answers else self._then


def claims_in_table() -> list[dict]:
    """The pairs' claims (Powertools' records), not the output keys' owners beside them."""
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName="backdrop-idempotency")["Items"]
    return [item for item in items if item["id"]["S"].startswith(KEY_PREFIX)]


def test_a_record_without_time_for_a_call_is_not_started_and_comes_back_uncounted(stack: Stack):
    stack.upload("late.png", photo())
    stack.upload("late.png.json", SIDECAR)
    image_message, sidecar_message = stack.received()
    stack.delete(sidecar_message)
    image_message["Attributes"]["ApproximateReceiveCount"] = "5"  # even on the last attempt
    event = sqs_lambda_event([image_message], stack.work_queue_arn)
    import app

    response = app.lambda_handler(event, LocalLambdaContext(timeout_seconds=20))
    assert response == {"batchItemFailures": []}  # a copy on the work queue replaces it
    assert stack.api_calls == 0
    assert stack.dlq() == []
    assert claims_in_table() == []

    time.sleep(NotEnoughTime.come_back_after_seconds + 0.5)
    (copy,) = stack.received()
    assert copy["Body"] == image_message["Body"]
    assert copy["MessageAttributes"][ATTEMPTS_BEFORE]["StringValue"] == "4"  # this receive did not count
    assert stack.deliver([copy]) == {"batchItemFailures": []}
    assert stack.api_calls == 1


class RuntimeKilled(BaseException):
    """What a Lambda timeout or an out-of-memory kill is to the code: nothing runs after it."""


def test_a_crash_mid_call_loses_nothing_and_blocks_the_pair_only_until_its_deadline(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    import time

    import app

    stack.upload("crash.png", photo())
    stack.upload("crash.png.json", SIDECAR)
    image_message = stack.received()[0]

    def killed(self, payload, deadline):
        raise RuntimeKilled

    with monkeypatch.context() as patch:
        patch.setattr(SegmindClient, "replace_background", killed)
        with pytest.raises(RuntimeKilled):
            app.lambda_handler(
                sqs_lambda_event([image_message], stack.work_queue_arn), ShrinkingContext(60_000, 400)
            )
    (claim,) = claims_in_table()
    assert claim["status"]["S"] == "INPROGRESS"

    # The message was not deleted: after its visibility timeout it is received again.
    stack.sqs.change_message_visibility(
        QueueUrl=stack.work_queue_url, ReceiptHandle=image_message["ReceiptHandle"], VisibilityTimeout=0
    )
    time.sleep(0.5)  # past the crashed invocation's deadline
    assert stack.deliver() == {"batchItemFailures": []}
    assert stack.output_keys() == ["crash.png"]
    assert [r.billed for r in stack.emulator.requests] == [True]


def test_the_key_is_read_once_per_container_not_per_record(stack: Stack, monkeypatch: pytest.MonkeyPatch):
    reads = []
    original = SecretsProvider._get

    def counting(self, name, **options):
        reads.append(name)
        return original(self, name, **options)

    monkeypatch.setattr(SecretsProvider, "_get", counting)
    for n in range(4):
        stack.upload(f"k{n}.png", photo())
        stack.upload(f"k{n}.png.json", {**SIDECAR, "seed": 4040 + n})
    stack.drain()
    assert len(stack.output_keys()) == 4
    assert len(reads) == 1


def test_the_image_url_sent_to_the_api_is_short_lived(stack: Stack):
    stack.upload("u.png", photo())
    stack.upload("u.png.json", SIDECAR)
    stack.drain()
    url = stack.emulator.requests[0].body["image"]
    expires = int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
    assert 0 < expires <= 900


def test_hostile_sidecars_make_no_outbound_connection(stack: Stack, monkeypatch: pytest.MonkeyPatch):
    destinations = []
    original = socket.socket.connect

    def spy(self, address):
        destinations.append(address[0] if isinstance(address, tuple) else address)
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    hostile = [
        {"prompt": "x", "style_reference_images": ["https://169.254.169.254/latest/meta-data/"]},
        {"prompt": "x", "style_reference_images": ["http://127.0.0.1:9/"]},
        {"prompt": "x", "style_reference_images": ["https://2130706433/"]},
        {"prompt": "x", "style_reference_images": ["../../etc/passwd"]},
    ]
    for n, sidecar in enumerate(hostile):
        stack.upload(f"h{n}.png", photo())
        stack.upload(f"h{n}.png.json", json.dumps(sidecar))
    stack.drain()
    classes = sorted(cls for _, cls in stack.dlq())
    assert classes == ["invalid_sidecar", "invalid_sidecar", "invalid_sidecar", "missing_object"]
    assert stack.api_calls == 0
    assert set(destinations) <= {"127.0.0.1"}
