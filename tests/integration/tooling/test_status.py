"""`backdrop status KEY` on the local stack: processed, failed, waiting, in progress, not found."""

from __future__ import annotations

import json
import time

import pytest

from backdrop import cli
from backdrop.emulator import EmulatorSettings
from backdrop.local.sandbox import Sandbox, sandbox
from backdrop.local.stack import LOCAL_API_KEY
from backdrop.status import standing
from backdrop.targets import Catalog
from tests.integration.conftest import photo


def catalog(box: Sandbox) -> Catalog:
    return Catalog(
        box.stack.client("s3"),
        box.stack.client("sqs"),
        box.stack.input_bucket,
        box.stack.output_bucket,
        "",
        box.stack.dlq_url,
        box.stack.work_queue_url,
        default_prompt=False,
    )


def upload(box: Sandbox, key: str, body: bytes | dict) -> None:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    box.stack.client("s3").put_object(Bucket=box.stack.input_bucket, Key=key, Body=data)


@pytest.fixture
def slow_box(aws: str):
    settings = EmulatorSettings(api_keys={LOCAL_API_KEY}, latency_seconds=3.0)
    with sandbox(parameters={"PairSettleSeconds": "0"}, emulator_settings=settings, moto_endpoint=aws) as box:
        yield box


def test_an_image_goes_from_waiting_to_in_progress_to_processed(slow_box: Sandbox):
    where = catalog(slow_box)
    upload(slow_box, "shop/lamp.png", photo())
    waiting = standing(where, "shop/lamp.png")
    assert waiting.state == "waiting for its sidecar"
    assert "shop/lamp.png.json" in waiting.next_step

    upload(slow_box, "shop/lamp.png.json", {"prompt": "a reading nook", "rendering_speed": "TURBO"})
    assert standing(where, "shop/lamp.png").state == "in progress"  # the API takes 3 s to answer

    assert slow_box.wait_until(lambda: standing(where, "shop/lamp.png").state == "processed", timeout=30)
    done = dict(standing(where, "shop/lamp.png").facts)
    assert done["output"] == f"s3://{slow_box.stack.output_bucket}/shop/lamp.png"
    assert done["cost"] == "~$0.037 (TURBO, estimated)"


def test_a_changed_sidecar_is_in_progress_again_not_processed(slow_box: Sandbox):
    where = catalog(slow_box)
    upload(slow_box, "vase.png", photo())
    upload(slow_box, "vase.png.json", {"prompt": "a hall"})
    assert slow_box.wait_until(lambda: standing(where, "vase.png").state == "processed", timeout=30)
    upload(slow_box, "vase.png.json", {"prompt": "a garden"})
    assert standing(where, "vase.png").state == "in progress"  # the result is of the older sidecar


def test_a_failure_says_its_class_and_how_to_fix_it(aws: str):
    with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws) as box:
        upload(box, "mug.png", photo())
        upload(box, "mug.png.json", {"prompt": "x", "sead": 4})
        assert box.wait_until(lambda: standing(catalog(box), "mug.png").state == "failed", timeout=30)
        failed = standing(catalog(box), "mug.png")
        assert dict(failed.facts)["class"] == "invalid_sidecar"
        assert failed.next_step.startswith("fix the input")
        assert standing(catalog(box), "nothing-here.png").state == "not found"
        time.sleep(1.1)  # S3 dates uploads to the second
        upload(box, "mug.png.json", {"prompt": "a fixed sidecar", "seed": 400})
        assert standing(catalog(box), "mug.png").state in ("in progress", "processed")  # no longer failed
        assert standing(catalog(box), "mug.png.json").state == "not an image key"


def test_the_command_prints_the_standing_and_the_next_step(aws: str, capsys: pytest.CaptureFixture):
    with sandbox(parameters={"PairSettleSeconds": "0"}, moto_endpoint=aws) as box:
        upload(box, "chair.png", photo())
        upload(box, "chair.png.json", {"prompt": "a loft"})
        assert box.wait_until(lambda: standing(catalog(box), "chair.png").state == "processed", timeout=30)
        time.sleep(0.2)
        assert cli.main(["status", "chair.png", "--local", "--endpoint-url", aws]) == 0
    printed = capsys.readouterr().out
    assert "chair.png: processed" in printed
    assert "s3://backdrop-out-local/chair.png" in printed
    assert "nothing: done" in printed
