"""The emulator's answer rules, one case each: which rule answers, in which order, and what it says."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image

from backdrop.emulator import Emulator, EmulatorSettings, Reply
from backdrop.emulator.answer_rules import RULES
from backdrop.emulator.models import ENDPOINT

KEY = "rules-test-key"


def tiny_png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


GOOD = {"image": tiny_png(), "prompt": "a beach", "rendering_speed": "TURBO"}


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    says: str = ""  # a part of the error body, when there is one
    settings: dict[str, Any] = field(default_factory=dict)
    path: str = ENDPOINT
    key: str | None = KEY
    body: Any = field(default_factory=lambda: GOOD)
    prepare: Callable[[Emulator], None] = lambda emulator: None


def use_up_the_rate(emulator: Emulator) -> None:
    emulator.rate.admit(1, 60.0)


CASES = [
    Case(
        "a scripted reply comes first, whatever was asked",
        503,
        "scripted",
        path="/nope",
        key=None,
        prepare=lambda emulator: emulator.script(Reply(503, {"error": "scripted"})),
    ),
    Case(
        "an unknown model is a 404, before the key is looked at",
        404,
        "no model at /nope",
        path="/nope",
        key=None,
    ),
    Case("a missing key is a 401", 401, "API key missing", key=None),
    Case("an unknown key is a 401", 401, "Invalid API key", key="wrong"),
    Case(
        "beyond the rate limit is a 429, before faults",
        429,
        "Rate limit exceeded",
        settings={"requests_per_minute": 1, "faults": {"500": 1.0}},
        prepare=use_up_the_rate,
    ),
    Case(
        "an injected fault comes before the body is checked",
        500,
        "injected fault 500",
        settings={"faults": {"500": 1.0}},
        body=[1],
    ),
    Case(
        "a bad body is a 400, before credits",
        400,
        "request body must be a JSON object",
        settings={"credits": 0.0},
        body=[1],
    ),
    Case(
        "an unreadable image is a 400",
        400,
        "could not be decoded",
        body={**GOOD, "image": "bm90IGFuIGltYWdl"},
    ),
    Case("too few credits is a 406", 406, "Insufficient credits", settings={"credits": 0.01}),
    Case("a request every rule lets through gets its picture", 200),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_rule_answers_in_its_turn(case: Case):
    settings = EmulatorSettings(api_keys={KEY}, **case.settings)
    with Emulator(settings) as emulator:
        case.prepare(emulator)
        headers = {"x-api-key": case.key} if case.key else {}
        reply = emulator.answer(case.path, headers, json.dumps(case.body).encode())
        (record,) = emulator.requests
    assert reply.status == case.status
    assert record.billed == (case.status == 200)
    if case.says:
        assert isinstance(reply.body, dict)
        assert case.says in reply.body["error"]
    else:
        assert reply.headers["Content-Type"] == "image/png"
        assert isinstance(reply.body, bytes)
        assert Image.open(io.BytesIO(reply.body)).size == (8, 8)


def test_a_rate_limited_answer_says_when_the_window_resets():
    with Emulator(EmulatorSettings(api_keys={KEY}, requests_per_minute=1)) as emulator:
        use_up_the_rate(emulator)
        reply = emulator.answer(ENDPOINT, {"x-api-key": KEY}, json.dumps(GOOD).encode())
    assert "x-rate-limit-reset-at-utc" in reply.headers


def test_a_timeout_fault_drops_the_connection_after_its_stall():
    settings = EmulatorSettings(api_keys={KEY}, faults={"timeout": 1.0}, timeout_stall_seconds=0.5)
    with Emulator(settings) as emulator:
        reply = emulator.answer(ENDPOINT, {"x-api-key": KEY}, json.dumps(GOOD).encode())
    assert (reply.drop, reply.stall_seconds, emulator.billed_calls) == (True, 0.5, 0)


def test_a_request_that_is_not_json_is_recorded_with_no_body():
    with Emulator(EmulatorSettings(api_keys={KEY})) as emulator:
        reply = emulator.answer(ENDPOINT, {"x-api-key": KEY}, b"{not json")
    assert reply.status == 400
    assert emulator.requests[0].body is None


def test_the_table_lists_every_rule_once_in_the_documented_order():
    assert [rule.__name__ for rule in RULES] == [
        "_scripted",
        "_unknown_model",
        "_missing_key",
        "_unknown_key",
        "_over_rate_limit",
        "_injected_fault",
        "_latency",
        "_bad_body",
        "_out_of_credits",
    ]
