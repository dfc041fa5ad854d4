"""Inputs reach the API upright, in sRGB and without personal metadata; outputs keep none of it."""

from __future__ import annotations

import base64
import io

from PIL import Image, PngImagePlugin

from backdrop_fn.outcome import Status
from tests.unit.function import imagefixtures as fx
from tests.unit.function.conftest import World, statuses

SIDECAR = {"prompt": "a beach", "seed": 1234}


def sent(world: World, upload: bytes) -> bytes | str:
    """What the API was sent as the image: the bytes when inline, else the URL."""
    world.upload("p.jpg", upload)
    world.upload("p.jpg.json", SIDECAR)
    assert statuses(world.event("p.jpg")) == [Status.PROCESSED]
    (payload,) = world.api.payloads
    image = payload["image"]
    return image if image.startswith("https://") else base64.b64decode(image)


def test_a_sideways_phone_photo_reaches_the_api_upright_in_srgb_and_without_gps_or_serials(world: World):
    photo = fx.sideways_phone_photo((96, 64))
    image = sent(world, photo)
    assert isinstance(image, bytes)
    received = fx.decoded(image)
    assert received.size == (64, 96)  # turned as its EXIF orientation 6 says
    red_band = received.getpixel((received.width - 2, received.height // 2))  # the top is now on the right
    assert red_band[0] > 150
    assert red_band[1] < 100
    assert fx.is_srgb_tagged(received)
    carried = [secret for secret in fx.SECRETS if secret in photo]
    assert len(carried) >= 7
    assert [secret for secret in carried if secret in image] == []


def test_an_upright_srgb_photo_goes_exactly_as_uploaded(world: World):
    image = sent(world, fx.clean_srgb_jpeg())
    assert isinstance(image, str)
    assert image.startswith("https://in-bucket.s3.example/p.jpg")


def test_an_upright_photo_with_only_gps_and_serials_goes_without_them_and_its_pixels_untouched(world: World):
    photo = fx.encode(fx.picture(), "JPEG", exif=fx.phone_exif(1), icc_profile=fx.littlecms_srgb_profile())
    image = sent(world, photo)
    assert isinstance(image, bytes)
    assert fx.decoded(image).tobytes() == fx.decoded(photo).tobytes()  # a lossless copy, not re-encoded
    for secret in (fx.BODY_SERIAL.encode(), fx.GPS_DATUM.encode()):
        assert secret in photo
        assert secret not in image


def test_an_answer_carrying_the_inputs_metadata_is_stored_without_it_and_tagged_srgb(world: World):
    """An API may copy the input's metadata into its answer: none of it reaches the output."""
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", fx.COMMENT.decode())
    world.api.image = fx.encode(fx.picture(), "PNG", exif=fx.phone_exif(1), pnginfo=text)
    world.upload("p.jpg", fx.clean_srgb_jpeg())
    world.upload("p.jpg.json", SIDECAR)
    world.event("p.jpg")
    stored = world.output("p.png")["body"]
    for secret in (fx.BODY_SERIAL.encode(), fx.GPS_DATUM.encode(), fx.COMMENT):
        assert secret in world.api.image
        assert secret not in stored
    picture = Image.open(io.BytesIO(stored))
    assert picture.info.get("srgb") is not None or fx.is_srgb_tagged(picture)
    assert picture.tobytes() == Image.open(io.BytesIO(world.api.image)).tobytes()
