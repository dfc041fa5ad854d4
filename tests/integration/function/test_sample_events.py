"""The ready-made events of events/ work as they are against a stack named as events/env.json says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from backdrop_fn.config import Settings
from tests.integration.conftest import Stack, photo

EVENTS = Path(__file__).resolve().parents[3] / "events"
SIDECAR = {"prompt": "a marble plinth in soft light", "seed": 777}


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture
def uploaded(stack: Stack) -> Stack:
    for key in ("shop/shoe-1.jpg", "shop/neue Schuhe/schuh ü+1.jpg"):
        stack.upload(key, photo("JPEG"))
        stack.upload(key + ".json", SIDECAR)
    stack.received()
    stack.sqs.purge_queue(QueueUrl=stack.work_queue_url)
    return stack


@pytest.mark.parametrize(
    ("name", "output_key"),
    [
        ("s3-put-image.json", "shop/shoe-1.png"),
        ("s3-put-sidecar.json", "shop/shoe-1.png"),
        ("s3-put-unicode-key.json", "shop/neue Schuhe/schuh ü+1.png"),
        ("eventbridge-object-created.json", "shop/shoe-1.png"),
    ],
)
def test_direct_events_process_their_pair(uploaded: Stack, name: str, output_key: str):
    result = uploaded.invoke(load(name))
    assert [o["status"] for o in result["outcomes"]] == ["processed"]
    assert uploaded.output_keys() == [output_key]


@pytest.mark.parametrize("name", ["sqs-batch.json", "sqs-dlq-replay.json"])
def test_sqs_events_process_their_pair_once(uploaded: Stack, name: str):
    assert uploaded.invoke(load(name)) == {"batchItemFailures": []}
    assert uploaded.output_keys() == ["shop/shoe-1.png"]
    assert uploaded.api_calls == 1


def test_the_s3_test_event_does_nothing(uploaded: Stack):
    assert uploaded.invoke(load("sqs-s3-test-event.json")) == {"batchItemFailures": []}
    assert uploaded.api_calls == 0
    assert uploaded.dlq() == []


def test_env_json_is_a_complete_valid_configuration():
    env = json.loads((EVENTS / "env.json").read_text())["ReplaceBackgroundFunction"]
    settings = Settings.from_env(env)
    assert settings.output_bucket == "backdrop-out-local"


def test_env_json_sets_every_variable_the_template_sets():
    class CfnLoader(yaml.SafeLoader):
        pass

    CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((EVENTS.parent / "template.yaml").read_text(), Loader=CfnLoader)  # noqa: S506
    variables = template["Resources"]["ReplaceBackgroundFunction"]["Properties"]["Environment"]["Variables"]
    env = json.loads((EVENTS / "env.json").read_text())["ReplaceBackgroundFunction"]
    assert set(variables) - set(env) == set()
