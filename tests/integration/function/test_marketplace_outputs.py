"""Variants, renditions, upright sRGB inputs and tags: the real handler, moto's S3, the emulator."""

from __future__ import annotations

import base64
import io

from PIL import Image

from tests.integration.conftest import OUTPUT_BUCKET, Stack, photo
from tests.unit.function import imagefixtures as fx

MARKETPLACE = {"name": "marketplace", "format": "jpeg", "width": 200, "height": 200, "fit": "pad"}
STOREFRONT = {"format": "webp", "width": 32, "height": 32, "fit": "cover"}


def stored(stack: Stack, key: str) -> tuple[Image.Image, dict]:
    output = stack.output(key)
    return Image.open(io.BytesIO(output["Body"].read())), output


def tags_of(stack: Stack, key: str) -> dict[str, str]:
    tag_set = stack.s3.get_object_tagging(Bucket=OUTPUT_BUCKET, Key=key)["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def test_two_variants_with_two_renditions_each_make_two_calls_and_six_tagged_objects(stack: Stack):
    stack.upload("shop/mug.png", photo("PNG", (64, 48)))
    sidecar = {
        "prompt": "on a kitchen table",
        "seed": 4321,
        "variants": [{}, {"prompt": "on a desk by a window", "rendering_speed": "TURBO"}],
        "renditions": [MARKETPLACE, STOREFRONT],
        "tags": {"sku": "MUG-7"},
    }
    stack.upload("shop/mug.png.json", sidecar)
    assert stack.deliver() == {"batchItemFailures": []}
    assert stack.api_calls == 2
    assert stack.output_keys() == [
        "shop/mug.png",
        "shop/mug.v2.png",
        "shop/mug.v2@32x32.webp",
        "shop/mug.v2@marketplace.jpg",
        "shop/mug@32x32.webp",
        "shop/mug@marketplace.jpg",
    ]
    for stem, variant in (("shop/mug", "1"), ("shop/mug.v2", "2")):
        marketplace, output = stored(stack, f"{stem}@marketplace.jpg")
        assert (marketplace.size, output["ContentType"]) == ((200, 200), "image/jpeg")
        assert marketplace.getpixel((100, 2)) == (255, 255, 255)  # padded on white above the 64x48 result
        assert output["Metadata"]["variant"] == variant
        assert output["Metadata"]["rendition"] == "marketplace"
        storefront, output = stored(stack, f"{stem}@32x32.webp")
        assert (storefront.size, output["ContentType"]) == ((32, 32), "image/webp")
    for key in stack.output_keys():
        assert tags_of(stack, key) == {"sku": "MUG-7"}


def test_a_sideways_phone_photo_reaches_the_api_upright_and_no_output_carries_its_gps_or_serials(
    stack: Stack,
):
    phone_photo = fx.sideways_phone_photo((96, 64))
    stack.upload("phone/IMG_0001.jpg", phone_photo)
    stack.upload("phone/IMG_0001.jpg.json", {"prompt": "on a beach", "renditions": [STOREFRONT]})
    assert stack.deliver() == {"batchItemFailures": []}
    (request,) = stack.emulator.requests
    sent = base64.b64decode(request.body["image"])  # made fit to send, so inline
    assert Image.open(io.BytesIO(sent)).size == (64, 96)
    result, _ = stored(stack, "phone/IMG_0001.png")
    assert result.size == (64, 96)  # the emulator keeps its input's size: upright in, upright out
    secrets = [secret for secret in fx.SECRETS if secret in phone_photo]
    for key in stack.output_keys():
        body = stack.output(key)["Body"].read()
        assert [secret for secret in secrets if secret in body] == [], key


def test_a_bad_rendition_is_refused_before_any_call(stack: Stack):
    stack.upload("shop/cup.png", photo())
    stack.upload(
        "shop/cup.png.json",
        {"prompt": "a table", "renditions": [{"format": "jpeg", "background": "transparent"}]},
    )
    stack.deliver()
    assert stack.api_calls == 0
    ((record, error_class),) = stack.dlq()
    assert error_class == "invalid_sidecar"
    assert "renditions[0]" in record["error"]["message"]
    assert record["source"]["key"] == "shop/cup.png"
