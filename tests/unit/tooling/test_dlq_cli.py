"""`backdrop dlq` and `backdrop redrive` without a queue: their refusals and their table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from backdrop import cli, dead_letters
from backdrop.dead_letters import DeadLetter

FUNCTION_CODE = Path(__file__).resolve().parents[3] / "functions" / "replace_background"
# The classes as the team's requirements (CONTRACT.md §3, outside this repository) write them.
CONTRACT_CLASSES = (
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


@pytest.fixture
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_the_cli_knows_every_error_class_of_the_contract():
    assert dead_letters.FAILURE_CLASSES == CONTRACT_CLASSES
    assert (*CONTRACT_CLASSES, "unprocessed", "unknown") == dead_letters.ERROR_CLASSES


def test_the_cli_classes_are_the_functions_own(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(FUNCTION_CODE))
    errors = pytest.importorskip("backdrop_fn.errors")
    if not hasattr(errors, "ErrorClass"):
        pytest.skip("the function has no ErrorClass enum yet")
    assert {member.value for member in errors.ErrorClass} == set(dead_letters.FAILURE_CLASSES)


@pytest.mark.parametrize("command", ["dlq", "redrive"])
def test_an_unknown_error_class_is_refused_with_the_valid_ones(command: str, capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--local", "--error-class", "invalid-sidecar"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'invalid-sidecar'" in err
    for name in ("invalid_sidecar", "rate_limited", "budget_exceeded", "unprocessed"):
        assert name in err


@pytest.mark.usefixtures("no_aws_configuration")
@pytest.mark.parametrize("where", [[], ["--endpoint-url", "http://127.0.0.1:9"]])
def test_no_region_is_explained_not_a_traceback(where: list[str], capsys: pytest.CaptureFixture):
    assert cli.main(["dlq", *where]) == 2
    err = capsys.readouterr().err
    assert "no AWS region" in err
    assert "--region" in err
    assert "--local" in err


@pytest.mark.usefixtures("no_aws_configuration")
def test_no_credentials_are_explained_not_a_traceback(capsys: pytest.CaptureFixture):
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/backdrop-dlq"
    assert cli.main(["dlq", "--region", "us-east-1", "--dlq-url", queue]) == 2
    assert "no AWS credentials" in capsys.readouterr().err


def letter(number: int, error_class: str = "invalid_sidecar") -> DeadLetter:
    record = {
        "type": "backdrop.failure",
        "error": {"class": error_class, "message": f"problem {number}"},
        "source": {"key": f"shop/item-{number:03}.jpg"},
        "failed_at": f"2026-11-27T10:{number // 60:02}:{number % 60:02}Z",
    }
    return DeadLetter(f"m{number}", f"r{number}", json.dumps(record), error_class, record)


def render(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_the_table_shows_the_first_keys_of_a_large_class_and_counts_the_rest():
    letters = [letter(n) for n in range(25)] + [letter(99, "auth")]
    text = render(cli._failure_table(letters, "26 failures", limit=20))
    assert "shop/item-000.jpg" in text
    assert "shop/item-019.jpg" in text
    assert "shop/item-020.jpg" not in text
    assert "… and 5 more" in text
    assert "backdrop dlq --error-class invalid_sidecar" in text
    assert "shop/item-099.jpg" in text
    assert "problem 99" in text


def test_one_class_asked_for_lists_every_key():
    text = render(cli._failure_table([letter(n) for n in range(25)], "25 failures", limit=None))
    assert all(f"shop/item-{n:03}.jpg" in text for n in range(25))
    assert "more" not in text


def test_a_record_names_the_invocation_that_sent_it_and_a_raw_message_names_none():
    sent = letter(1)
    sent.record["request_id"] = "req-7"  # type: ignore[index]
    raw = DeadLetter("m2", "r2", '{"Records": []}', "unprocessed", None)
    assert (sent.request_id, raw.request_id) == ("req-7", None)


def test_a_raw_event_moved_by_the_queue_is_named_by_its_decoded_key_whatever_its_shape():
    notification = {"Records": [{"eventSource": "aws:s3", "s3": {"object": {"key": "shop/a+b%2B.jpg"}}}]}
    rule_event = {"source": "aws.s3", "detail": {"object": {"key": "shop/a+b%2B.jpg"}}}
    keys = [
        DeadLetter("m", "r", json.dumps(body), "unprocessed", None).key for body in (notification, rule_event)
    ]
    assert keys == ["shop/a b+.jpg", "shop/a b+.jpg"]
    assert DeadLetter("m", "r", "not json", "unknown", None).key == "?"
