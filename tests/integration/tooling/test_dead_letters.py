"""`backdrop dlq` and `backdrop redrive` against a queue (moto server, as against AWS)."""

from __future__ import annotations

import json

import pytest

from backdrop import dead_letters
from backdrop.cli import main
from backdrop.emulator import Reply
from tests.integration.conftest import Stack, photo


@pytest.fixture
def failed(stack: Stack) -> Stack:
    """Three failures of two classes, and one raw notification moved by the queue's redrive."""
    stack.emulator.script(Reply(406, {"error": "Insufficient credits"}))
    stack.upload("credits.png", photo())
    stack.upload("credits.png.json", {"prompt": "p"})
    for name in ("typo-1", "typo-2"):
        stack.upload(f"{name}.png", photo())
        stack.upload(f"{name}.png.json", {"prompt": "p", "sead": 1})
    stack.drain()
    raw = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "backdrop-in-local"}, "object": {"key": "crashed.png"}},
            }
        ]
    }
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=json.dumps(raw))
    return stack


def where(stack: Stack) -> list[str]:
    return [
        "--dlq-url",
        stack.dlq_url,
        "--work-queue-url",
        stack.work_queue_url,
        "--endpoint-url",
        stack.sqs.meta.endpoint_url,
        "--region",
        "us-east-1",
    ]


def test_dlq_summarises_by_error_class_and_leaves_the_messages(failed: Stack, capsys: pytest.CaptureFixture):
    assert main(["dlq", *where(failed)]) == 0
    out = capsys.readouterr().out
    assert "4 failures" in out
    for text in ("invalid_sidecar", "insufficient_credits", "unprocessed", "sead: unknown field"):
        assert text in out
    letters = dead_letters.read_all(failed.sqs, failed.dlq_url)
    assert sorted(letter.error_class for letter in letters) == [
        "insufficient_credits",
        "invalid_sidecar",
        "invalid_sidecar",
        "unprocessed",
    ]


def test_summary_rows_are_counted_per_class(failed: Stack):
    letters = dead_letters.read_all(failed.sqs, failed.dlq_url)
    rows = {row.error_class: row.count for row in dead_letters.summarise(letters)}
    assert rows == {"invalid_sidecar": 2, "insufficient_credits": 1, "unprocessed": 1}


def test_redrive_dry_run_moves_nothing(failed: Stack, capsys: pytest.CaptureFixture):
    assert main(["redrive", "--dry-run", *where(failed)]) == 0
    assert "would move 4 message(s)" in capsys.readouterr().out
    assert failed.received() == []
    assert len(dead_letters.read_all(failed.sqs, failed.dlq_url)) == 4


def test_redrive_of_one_class_moves_only_that_class_and_it_is_processed(failed: Stack):
    assert main(["redrive", "--error-class", "insufficient_credits", *where(failed)]) == 0
    moved = failed.received()
    assert len(moved) == 1
    assert json.loads(moved[0]["Body"])["error"]["class"] == "insufficient_credits"
    failed.deliver(moved)
    assert failed.output_keys() == ["credits.png"]
    remaining = sorted(cls for _, cls in failed.dlq())
    assert remaining == ["invalid_sidecar", "invalid_sidecar", "unprocessed"]


def test_an_empty_dlq_says_so(stack: Stack, capsys: pytest.CaptureFixture):
    assert main(["dlq", *where(stack)]) == 0
    assert "The DLQ is empty" in capsys.readouterr().out


def test_a_missing_stack_is_explained(stack: Stack, capsys: pytest.CaptureFixture):
    code = main(
        [
            "dlq",
            "--stack",
            "no-such-stack",
            "--endpoint-url",
            stack.sqs.meta.endpoint_url,
            "--region",
            "us-east-1",
        ]
    )
    assert code == 2
    assert "pass --stack NAME, --dlq-url URL or --local" in capsys.readouterr().err


def test_dlq_lists_every_failed_key_of_a_class(failed: Stack, capsys: pytest.CaptureFixture):
    assert main(["dlq", *where(failed)]) == 0
    out = capsys.readouterr().out
    assert "typo-1.png" in out
    assert "typo-2.png" in out
    assert "credits.png" in out
    assert "crashed.png" in out


def test_dlq_local_finds_the_stack_of_watch_by_its_port(failed: Stack, capsys: pytest.CaptureFixture):
    port = failed.sqs.meta.endpoint_url.rsplit(":", 1)[1]
    assert main(["dlq", "--local", "--moto-port", port]) == 0
    assert "4 failures" in capsys.readouterr().out
    assert main(["redrive", "--moto-port", port, "--dry-run"]) == 0  # the port alone means local
    assert "would move 4 message(s)" in capsys.readouterr().out


def test_dlq_local_honours_aws_endpoint_url(failed: Stack, capsys: pytest.CaptureFixture):
    failed.monkeypatch.setenv("AWS_ENDPOINT_URL", failed.sqs.meta.endpoint_url)
    assert main(["dlq", "--local"]) == 0
    assert "4 failures" in capsys.readouterr().out
