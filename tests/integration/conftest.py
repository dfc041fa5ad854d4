"""The real handler against moto in server mode (real HTTP) and the Segmind emulator."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from PIL import Image

from backdrop import dead_letters
from backdrop.emulator import Emulator, EmulatorSettings
from backdrop.local.context import LocalLambdaContext
from backdrop.local.esm import sqs_lambda_event
from backdrop.local.moto_server import moto_server
from backdrop.local.stack import create_resources
from backdrop.local.template import load_spec

REGION = "us-east-1"
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server logs every request
API_KEY = "sk-test-9f8e7d6c5b4a"
INPUT_BUCKET = "backdrop-in-local"  # the names of events/*.json and events/env.json
OUTPUT_BUCKET = "backdrop-out-local"


def photo(fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    """A small real picture: a dark square subject on a light, plain backdrop."""
    image = Image.new("RGB", size, (235, 235, 235))
    image.paste((40, 60, 160), (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def table_rows(shown: str) -> dict[str, list[str]]:
    """A rich table printed by a command, as its rows by their first cell: the cells after it."""
    cells = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in shown.splitlines()
        if line.startswith("│")
    ]
    return {row[0]: row[1:] for row in cells}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    return moto_endpoint


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorSettings(api_keys={API_KEY})) as running:
        yield running


@dataclass
class Stack:
    """The deployed shape of template.yaml, on moto, with the function's environment set."""

    s3: Any
    sqs: Any
    secrets: Any
    work_queue_url: str
    work_queue_arn: str
    dlq_url: str
    secret_id: str
    emulator: Emulator
    monkeypatch: pytest.MonkeyPatch

    def configure(self, **env: str) -> None:
        """Change the function's environment; the next invocation is a new container."""
        import app

        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        app.runtime.cache_clear()

    def upload(self, key: str, body: bytes | str | dict) -> str:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        return self.s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=body)["ETag"].strip('"')

    def received(self, max_messages: int = 10) -> list[dict[str, Any]]:
        """What the work queue holds, as the event source mapping receives it."""
        messages = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.work_queue_url,
                MaxNumberOfMessages=max_messages,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)

    def invoke(self, event: dict[str, Any], *, timeout_seconds: float = 300) -> dict[str, Any]:
        import app

        return app.lambda_handler(event, LocalLambdaContext(timeout_seconds=timeout_seconds))

    def deliver(self, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Hand messages to the handler as one SQS batch, then delete the successes, as Lambda would."""
        messages = self.received() if messages is None else messages
        response = self.invoke(sqs_lambda_event(messages, self.work_queue_arn))
        failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.delete(message)
        return response

    def delete(self, message: dict[str, Any]) -> None:
        self.sqs.delete_message(QueueUrl=self.work_queue_url, ReceiptHandle=message["ReceiptHandle"])

    def drain(self) -> None:
        """Process whatever uploads have sent to the work queue so far."""
        self.deliver()

    def dlq(self) -> list[tuple[dict[str, Any], str]]:
        """Take every DLQ message: (its body, its error class as `backdrop dlq` reads it)."""
        records = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                return records
            for message in batch:
                error_class, _ = dead_letters.classify(message)
                records.append((json.loads(message["Body"]), error_class))
                self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"])

    def output(self, key: str) -> dict[str, Any]:
        return self.s3.get_object(Bucket=OUTPUT_BUCKET, Key=key)

    def output_keys(self) -> list[str]:
        return [item["Key"] for item in self.s3.list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", [])]

    @property
    def api_calls(self) -> int:
        return len(self.emulator.requests)


@pytest.fixture
def stack(aws: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    import app

    # The template's own resources and function environment, as the local stack builds them;
    # no settling, so that the events of uploads (the input rule's) can be taken at once.
    local = create_resources(load_spec(parameters={"PairSettleSeconds": "0"}), aws, api_key=API_KEY)
    for name, value in local.function_environment(emulator.url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("API_BACKOFF_SECONDS", "0.01")
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secret_id, work_queue_url, work_queue_arn, dlq_url = (
        local.secret_id,
        local.work_queue_url,
        local.work_queue_arn,
        local.dlq_url,
    )
    app.runtime.cache_clear()

    stack = Stack(s3, sqs, secrets, work_queue_url, work_queue_arn, dlq_url, secret_id, emulator, monkeypatch)
    yield stack
    app.runtime.cache_clear()
