"""The Segmind emulator's contract: every rule it checks and every answer it gives, over real HTTP."""

from __future__ import annotations

import argparse
import base64
import io
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from PIL import Image

from backdrop.cli import parse_faults
from backdrop.emulator import Emulator, EmulatorSettings
from tests.integration.conftest import photo

KEY = "emulator-test-key"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorSettings(api_keys={KEY})) as running:
        yield running


def body(**changes) -> dict:
    document = {
        "image": base64.b64encode(photo()).decode(),
        "prompt": "a beach",
        "rendering_speed": "TURBO",
        "magic_prompt": "AUTO",
        "seed": 500,
        "style_codes": [],
        "style_reference_images": [],
    }
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


def post(emulator: Emulator, document: dict | None = None, *, key: str | None = KEY, url: str | None = None):
    headers = {"x-api-key": key} if key else {}
    return requests.post(
        url or emulator.url, json=body() if document is None else document, headers=headers, timeout=30
    )


def test_a_good_request_gets_an_image_of_the_same_size_and_is_billed(emulator: Emulator):
    response = post(emulator)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (64, 48)
    assert (emulator.billed_calls, emulator.spent_usd) == (1, 0.037)


def test_the_image_may_be_a_loopback_url(emulator: Emulator):
    picture = photo()

    class Serve(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(picture)))
            self.end_headers()
            self.wfile.write(picture)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Serve)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        response = post(emulator, body(image=f"http://127.0.0.1:{server.server_address[1]}/a.png"))
    finally:
        server.shutdown()
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "API key missing"), ("wrong", "Invalid API key")],
)
def test_a_missing_or_wrong_key_is_a_401(emulator: Emulator, key, message: str):
    response = post(emulator, key=key)
    assert response.status_code == 401
    assert message in response.json()["error"]
    assert emulator.billed_calls == 0


def test_an_unknown_model_is_a_404(emulator: Emulator):
    response = post(emulator, url=emulator.url.replace("ideogram-3-replace-background", "nope"))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (body(prompt=None), "prompt is required"),
        (body(image=None), "image is required"),
        (body(prompt="x" * 4001), "prompt is too long"),
        (body(rendering_speed="FAST"), "rendering_speed must be one of"),
        (body(magic_prompt="on"), "magic_prompt must be one of"),
        (body(seed=99), "seed must be an integer from 100 to 999999"),
        (body(seed="500"), "seed must be an integer"),
        (body(style_codes=["XYZ"]), "8 hexadecimal"),
        (body(style_codes=["0A1B2C3D"], style_reference_images=["https://x/y.png"]), "cannot be combined"),
        (body(style_reference_images=["a"] * 5), "at most 4"),
        (body(color_palette={"name": "NEON"}), "color_palette.name must be a preset"),
        (body(color_palette={"members": []}), "1 to 8 members"),
        (body(color_palette={"members": [{"color_hex": "red"}]}), "color_hex must be #rrggbb"),
        (body(color_palette={"members": [{"color_hex": "#ff0000", "color_weight": 0}]}), "color_weight"),
        (body(sead=5), "unknown parameter(s): sead"),
        (body(image="bm90IGFuIGltYWdl"), "could not be decoded"),
        (body(image="***"), "neither a URL nor valid base64"),
        (body(image="https://example.com/a.png"), "loopback only"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_each_rule_answers_400_with_an_error_body(emulator: Emulator, document, message: str):
    response = post(emulator, document)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert emulator.billed_calls == 0


def test_credits_are_reported_and_running_out_is_a_406(emulator: Emulator):
    emulator.settings.credits = 0.05
    first = post(emulator)
    assert first.status_code == 200
    assert first.headers["x-remaining-credits"] == "0.013"
    second = post(emulator)
    assert second.status_code == 406
    assert second.json() == {"error": "Insufficient credits"}


def test_beyond_the_rate_limit_a_429_tells_when_the_window_resets(emulator: Emulator):
    emulator.settings.requests_per_minute = 2
    assert [post(emulator).status_code for _ in range(2)] == [200, 200]
    limited = post(emulator)
    assert limited.status_code == 429
    reset = datetime.fromisoformat(limited.headers["x-rate-limit-reset-at-utc"])
    assert 0 < (reset - datetime.now(reset.tzinfo)).total_seconds() <= 60


def test_injected_faults_follow_their_probabilities(emulator: Emulator):
    emulator.settings.faults = {"429": 0.5, "500": 0.25}
    emulator.settings.random_seed = 7
    emulator._random.seed(7)
    statuses = [
        post(emulator, body(image=base64.b64encode(photo(size=(8, 8))).decode())).status_code
        for _ in range(80)
    ]
    assert 25 <= statuses.count(429) <= 55
    assert 8 <= statuses.count(500) <= 32
    assert statuses.count(200) + statuses.count(429) + statuses.count(500) == 80


def test_a_timeout_fault_answers_nothing(emulator: Emulator):
    emulator.settings.faults = {"timeout": 1.0}
    emulator.settings.timeout_stall_seconds = 0.2
    with pytest.raises(requests.ConnectionError):
        post(emulator)


def test_latency_delays_each_success(emulator: Emulator):
    emulator.settings.latency_seconds = 0.3
    started = time.monotonic()
    post(emulator)
    assert time.monotonic() - started >= 0.3  # a lower bound: sleeping never ends early


def test_the_same_seed_gives_the_same_picture_and_another_seed_another(emulator: Emulator):
    first, again, other = post(emulator), post(emulator), post(emulator, body(seed=501))
    assert first.content == again.content
    assert first.content != other.content


def test_it_refuses_to_listen_beyond_loopback():
    with pytest.raises(ValueError, match="loopback only"):
        Emulator(host="0.0.0.0")  # noqa: S104


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("429=0.2,500=0.05,timeout=0.02", {"429": 0.2, "500": 0.05, "timeout": 0.02}), ("", {})],
)
def test_fault_flags_parse(text: str, parsed: dict):
    assert parse_faults(text) == parsed


@pytest.mark.parametrize("text", ["418=0.1", "429=lots", "429=2", "429=0.6,500=0.6"])
def test_bad_fault_flags_are_refused(text: str):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_faults(text)


def test_echo_answers_with_the_input_image(emulator: Emulator):
    emulator.settings.echo = True
    picture = photo("JPEG")
    response = post(emulator, body(image=base64.b64encode(picture).decode()))
    assert response.content == picture
    assert response.headers["Content-Type"] == "image/jpeg"


def test_a_shorter_rate_window_scales_the_limit_down(emulator: Emulator):
    emulator.settings.requests_per_minute = 1
    emulator.settings.rate_window_seconds = 0.5
    assert post(emulator).status_code == 200
    assert post(emulator).status_code == 429
    time.sleep(0.6)
    assert post(emulator).status_code == 200


def test_stats_say_what_was_served_and_billed(emulator: Emulator):
    post(emulator)
    post(emulator, key="wrong")
    stats = requests.get(
        emulator.url.replace("/v1/ideogram-3-replace-background", "/_emulator/stats"), timeout=5
    )
    assert stats.json()["requests"] == 2
    assert stats.json()["billed_calls"] == 1
    assert stats.json()["statuses"] == {"200": 1, "401": 1}
