"""Uploads to S3 (moto server) → their events on the work queue → the real handler → output or DLQ."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from urllib.parse import unquote

import pytest
from PIL import Image

from tests.integration.conftest import API_KEY, INPUT_BUCKET, OUTPUT_BUCKET, Stack, photo

SIDECAR = {"prompt": "a sunny beach at noon", "seed": 4321, "rendering_speed": "TURBO"}


def test_image_and_sidecar_become_one_output_with_the_exact_api_request(stack: Stack):
    image_etag = stack.upload("shop/shoe-1.jpg", photo("JPEG"))
    stack.upload("shop/shoe-1.jpg.json", {**SIDECAR, "metadata": {"sku": "SHOE-1"}})
    response = stack.deliver()

    assert response == {"batchItemFailures": []}
    (request,) = stack.emulator.requests
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    assert set(request.body) == {
        "image",
        "prompt",
        "rendering_speed",
        "magic_prompt",
        "seed",
        "style_codes",
        "style_reference_images",
    }
    assert request.body["prompt"] == "a sunny beach at noon"
    assert request.body["rendering_speed"] == "TURBO"
    assert request.body["magic_prompt"] == "AUTO"
    assert request.body["seed"] == 4321
    assert request.body["image"].startswith(stack.s3.meta.endpoint_url)  # a presigned URL the API fetched
    assert request.status == 200
    assert request.billed

    output = stack.output("shop/shoe-1.png")
    assert output["ContentType"] == "image/png"
    assert Image.open(io.BytesIO(output["Body"].read())).size == (64, 48)
    metadata = output["Metadata"]
    assert metadata["source-bucket"] == INPUT_BUCKET
    assert metadata["source-key"] == "shop/shoe-1.jpg"
    assert metadata["source-etag"] == image_etag
    assert metadata["prompt-sha256"] == hashlib.sha256(b"a sunny beach at noon").hexdigest()
    assert metadata["rendering-speed"] == "TURBO"
    assert metadata["seed"] == "4321"
    assert metadata["sku"] == "SHOE-1"


def test_sidecar_first_then_image_makes_one_call(stack: Stack):
    stack.upload("b.json", SIDECAR)
    stack.deliver()
    assert stack.api_calls == 0
    stack.upload("b.png", photo())
    stack.deliver()
    assert stack.api_calls == 1
    assert stack.output_keys() == ["b.png"]


def test_both_halves_in_one_batch_make_one_call(stack: Stack):
    stack.upload("c.webp", photo("WEBP"))
    stack.upload("c.webp.json", SIDECAR)
    messages = stack.received()
    assert len(messages) == 2
    stack.deliver(messages)
    assert stack.api_calls == 1


def test_duplicate_s3_event_makes_no_second_api_call(stack: Stack):
    stack.upload("d.png", photo())
    stack.upload("d.png.json", SIDECAR)
    messages = stack.received()
    stack.deliver(messages)
    duplicate = [{**message, "MessageId": message["MessageId"] + "-again"} for message in messages]
    stack.deliver(duplicate)
    assert stack.api_calls == 1


def test_changed_sidecar_makes_a_new_call(stack: Stack):
    stack.upload("e.png", photo())
    stack.upload("e.png.json", SIDECAR)
    stack.drain()
    stack.upload("e.png.json", {**SIDECAR, "prompt": "a snowy mountain"})
    stack.drain()
    assert [request.body["prompt"] for request in stack.emulator.requests] == [
        "a sunny beach at noon",
        "a snowy mountain",
    ]


@pytest.mark.parametrize(
    ("key", "output_key"),
    [
        ("shop/red shoe.png", "shop/red shoe.png"),
        ("shop/schuh ü+1.png", "shop/schuh ü+1.png"),
        ("a/b/c/d/deep.JPG", "a/b/c/d/deep.png"),
        ("日本/靴.jpeg", "日本/靴.png"),
    ],
)
def test_odd_keys_are_decoded_and_kept(stack: Stack, key: str, output_key: str):
    stack.upload(key, photo())
    stack.upload(key + ".json", SIDECAR)
    stack.drain()
    assert stack.output_keys() == [output_key]
    metadata = stack.output(output_key)["Metadata"]
    assert unquote(metadata["source-key"]) == key


def test_default_prompt_processes_an_image_alone(stack: Stack):
    stack.configure(DEFAULT_PROMPT="a clean white studio")
    stack.upload("f.png", photo())
    stack.drain()
    assert stack.emulator.requests[0].body["prompt"] == "a clean white studio"


def test_without_default_prompt_an_image_waits_and_nothing_fails(stack: Stack, capsys: pytest.CaptureFixture):
    stack.upload("g.png", photo())
    assert stack.deliver() == {"batchItemFailures": []}
    assert stack.api_calls == 0
    assert stack.dlq() == []
    assert '"AwaitingSidecar"' in capsys.readouterr().out


def test_base64_transfer_sends_the_image_bytes(stack: Stack):
    stack.configure(IMAGE_TRANSFER="base64")
    picture = photo("JPEG")
    stack.upload("h.jpg", picture)
    stack.upload("h.jpg.json", SIDECAR)
    stack.drain()
    assert base64.b64decode(stack.emulator.requests[0].body["image"]) == picture


def test_output_prefix_and_returned_type_set_key_and_content_type(stack: Stack):
    stack.configure(OUTPUT_PREFIX="done/")
    stack.emulator.settings.output_format = "webp"
    stack.upload("i.png", photo())
    stack.upload("i.png.json", SIDECAR)
    stack.drain()
    assert stack.output("done/i.webp")["ContentType"] == "image/webp"


def test_folder_objects_and_the_s3_test_event_are_ignored(stack: Stack):
    stack.s3.put_object(Bucket=INPUT_BUCKET, Key="albums/", Body=b"")
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": INPUT_BUCKET}
    stack.sqs.send_message(QueueUrl=stack.work_queue_url, MessageBody=json.dumps(test_event))
    folder = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": INPUT_BUCKET}, "object": {"key": "albums/"}},
            }
        ]
    }
    stack.sqs.send_message(QueueUrl=stack.work_queue_url, MessageBody=json.dumps(folder))
    assert stack.deliver() == {"batchItemFailures": []}
    assert stack.api_calls == 0
    assert stack.dlq() == []


def test_metrics_are_emitted_in_embedded_metric_format(stack: Stack, capsys: pytest.CaptureFixture):
    stack.emulator.settings.credits = 10.0
    stack.upload("m.png", photo())
    stack.upload("m.png.json", SIDECAR)
    stack.upload("bad.png", photo())
    stack.upload("bad.png.json", {"prompt": ""})
    stack.drain()
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {
        metric["Name"]: directive["Dimensions"]
        for document in documents
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    assert {
        "ImagesProcessed",
        "ImagesFailed",
        "ApiLatency",
        "ApiRetries",
        "DuplicatesSkipped",
        "OutputBytes",
        "RemainingCredits",
    } <= set(names)
    assert all(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Backdrop" for doc in documents)
    by_class = [doc for doc in documents if "ImagesFailed" in doc and "ErrorClass" in doc]
    assert [(doc["ErrorClass"], doc["ImagesFailed"]) for doc in by_class] == [("invalid_sidecar", [1.0])]
    in_total = [doc for doc in documents if "ImagesFailed" in doc and "ErrorClass" not in doc]
    assert sum(sum(doc["ImagesFailed"]) for doc in in_total) == 1  # for the failure-rate alarm
    assert all(_dimensions(doc) == [["service"]] for doc in in_total)


@pytest.mark.parametrize("transfer", ["url", "base64"])
def test_a_large_image_streams_both_ways_byte_for_byte(stack: Stack, transfer: str):
    """7 MB in, the same 7 MB back (the emulator echoes): a multipart upload of a streamed answer.
    The picture says it is sRGB, so that the stored answer needs no tag and is the API's bytes."""
    import random

    from backdrop_fn.image_metadata import srgb_profile

    stack.configure(IMAGE_TRANSFER=transfer)
    stack.emulator.settings.echo = True
    noise = random.Random(7).randbytes(1600 * 1500 * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (1600, 1500), noise).save(out, "PNG", icc_profile=srgb_profile())
    picture = out.getvalue()
    assert len(picture) > 7_000_000
    stack.upload("big.png", picture)
    stack.upload("big.png.json", SIDECAR)
    stack.drain()
    assert stack.output("big.png")["Body"].read() == picture
    if transfer == "base64":
        assert base64.b64decode(stack.emulator.requests[0].body["image"]) == picture


def _dimensions(document: dict) -> list[list[str]]:
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    return directive["Dimensions"]


def test_variants_are_stored_at_their_own_keys_and_every_output_carries_the_sidecars_tags(stack: Stack):
    stack.upload("shop/boot.jpg", photo("JPEG"))
    sidecar = {
        **SIDECAR,
        "variants": [{}, {"prompt": "in the snow"}],
        "tags": {"sku": "BOOT-9", "season": "winter"},
    }
    stack.upload("shop/boot.jpg.json", sidecar)
    assert stack.deliver() == {"batchItemFailures": []}
    assert [request.body["prompt"] for request in stack.emulator.requests] == [
        SIDECAR["prompt"],
        "in the snow",
    ]
    assert stack.output_keys() == ["shop/boot.png", "shop/boot.v2.png"]
    for key, variant in (("shop/boot.png", "1"), ("shop/boot.v2.png", "2")):
        assert stack.output(key)["Metadata"]["variant"] == variant
        tagging = stack.s3.get_object_tagging(Bucket=OUTPUT_BUCKET, Key=key)["TagSet"]
        assert {tag["Key"]: tag["Value"] for tag in tagging} == {"sku": "BOOT-9", "season": "winter"}
