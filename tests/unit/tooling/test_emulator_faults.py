"""The emulator's fault kinds as its rules see them: which are billed, what each answer carries,
how they are rolled, scripted and recorded. Their wire behaviour is tested over HTTP in
tests/integration/tooling/test_emulator_faults.py."""

from __future__ import annotations

import base64
import io
import json
import zlib
from collections import Counter

import pytest
from PIL import Image

from backdrop.emulator import Emulator, EmulatorSettings, Reply
from backdrop.emulator.faults import CHARGED, KINDS, STREAMS, gzip_bomb
from backdrop.emulator.models import ENDPOINT, LOST_IN_DELIVERY, MIB

KEY = "faults-test-key"


def tiny_png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


GOOD = json.dumps({"image": tiny_png(), "prompt": "a beach", "rendering_speed": "TURBO"}).encode()


def settings(**changes) -> EmulatorSettings:
    return EmulatorSettings(api_keys={KEY}, gzip_bomb_bytes=MIB, **changes)


def ask(emulator: Emulator, body: bytes = GOOD) -> Reply:
    return emulator.answer(ENDPOINT, {"x-api-key": KEY}, body)


def picture_bytes(reply: Reply) -> bytes:
    assert reply.stream is not None
    return b"".join(reply.stream.pieces())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_fault_kind_is_recorded_by_name_and_billed_only_when_segmind_would_charge(kind: str):
    with Emulator(settings(faults={kind: 1.0})) as emulator:
        reply = ask(emulator)
        (record,) = emulator.requests
    assert (reply.fault, record.fault) == (kind, kind)
    assert record.billed == (kind in CHARGED)
    assert emulator.billed_calls == (1 if kind in CHARGED else 0)
    assert record.charged_then_lost == (kind in LOST_IN_DELIVERY)


def test_the_answers_lost_in_delivery_are_the_streamed_ones():
    assert set(STREAMS) == LOST_IN_DELIVERY
    assert LOST_IN_DELIVERY | {"echo_key"} == CHARGED
    refusals = KINDS - CHARGED
    assert refusals == {"429", "500", "502", "503", "504", "timeout", "gzip_bomb"}


@pytest.mark.parametrize("kind", ["drip", "hangup", "stall", "huge"])
def test_a_charged_stream_announces_the_picture_and_sends_it_whole_or_cut(kind: str):
    with Emulator(settings(faults={kind: 1.0}, huge_answer_bytes=3 * MIB + 5)) as emulator:
        reply = ask(emulator)
    assert reply.stream is not None
    sent = picture_bytes(reply)
    assert sent.startswith(b"\x89PNG")
    if kind == "drip":
        assert len(sent) == reply.stream.length
        assert Image.open(io.BytesIO(sent)).size == (8, 8)
    elif kind == "huge":
        assert len(sent) == reply.stream.length > 3 * MIB + 5
    else:
        assert 0 < len(sent) < reply.stream.length
    assert reply.headers["Content-Type"] == "image/png"


def test_a_drip_sends_pieces_of_the_set_size_at_the_set_interval():
    with Emulator(settings(faults={"drip": 1.0}, drip_piece_bytes=7, drip_interval_seconds=3.5)) as emulator:
        reply = ask(emulator)
    assert reply.stream is not None
    pieces = list(reply.stream.pieces())
    assert {len(piece) for piece in pieces[:-1]} == {7}
    assert reply.stream.interval_seconds == 3.5


def test_a_stall_is_silent_for_the_timeout_stall_setting():
    with Emulator(settings(faults={"stall": 1.0}, timeout_stall_seconds=11)) as emulator:
        reply = ask(emulator)
    assert reply.stream is not None
    assert reply.stream.silence_seconds == 11


def test_a_gzip_bomb_inflates_to_its_setting_of_valid_json_and_is_built_once():
    bomb = gzip_bomb(3 * MIB)
    inflated = zlib.decompress(bomb, 16 + zlib.MAX_WBITS)
    assert len(inflated) == 3 * MIB
    assert json.loads(inflated)["error"].strip() == ""
    assert len(bomb) < 3 * MIB // 100
    assert gzip_bomb(3 * MIB) is bomb


def test_faults_are_rolled_by_probability_and_counted_in_the_stats():
    faults = {"429": 0.2, "500": 0.03, "503": 0.02, "timeout": 0.02, "hangup": 0.2, "gzip_bomb": 0.1}
    with Emulator(settings(faults=faults, random_seed=11)) as emulator:
        for _ in range(200):
            ask(emulator)
        stats = emulator.stats()
    counted = Counter(record.fault for record in emulator.requests)
    assert 20 <= counted["429"] <= 65
    assert 20 <= counted["hangup"] <= 65
    assert 5 <= counted["gzip_bomb"] <= 40
    assert stats["faults"] == {kind: n for kind, n in counted.items() if kind is not None}
    assert stats["charged_then_lost"] == counted["hangup"]
    assert stats["billed_calls"] == counted["hangup"] + counted[None]
    assert all(record.billed == (record.fault in (None, "hangup")) for record in emulator.requests)


def test_a_scripted_error_fault_answers_at_once_unbilled():
    with Emulator(settings()) as emulator:
        emulator.script(Reply(fault="503"))
        reply = emulator.answer("/nope", {}, b"")
    assert (reply.status, reply.fault, emulator.billed_calls) == (503, "503", 0)
    assert emulator.requests[0].fault == "503"


def test_a_scripted_charged_fault_comes_before_any_rolled_one():
    with Emulator(settings(faults={"500": 1.0})) as emulator:
        emulator.script(Reply(fault="huge"))
        first, second = ask(emulator), ask(emulator)
    assert (first.fault, first.status, second.fault, second.status) == ("huge", 200, "500", 500)


def test_a_scripted_charged_fault_still_needs_a_request_that_would_be_billed():
    with Emulator(settings()) as emulator:
        emulator.script(Reply(fault="hangup"))
        refused = ask(emulator, b"[1]")
        honest = ask(emulator)
    assert (refused.status, refused.fault, emulator.requests[0].billed) == (400, None, False)
    assert (honest.status, honest.fault, honest.stream) == (200, None, None)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(fault="teapot"), "unknown fault kind"),
        (Reply(503, fault="503"), "Reply\\(fault=KIND\\) alone"),
        (Reply(body=b"x", fault="drip"), "Reply\\(fault=KIND\\) alone"),
    ],
)
def test_a_scripted_fault_is_a_known_kind_alone(reply: Reply, message: str):
    with Emulator(settings()) as emulator, pytest.raises(ValueError, match=message):
        emulator.script(reply)


def test_unknown_fault_kinds_in_the_settings_are_refused():
    with pytest.raises(ValueError, match="unknown fault kind"):
        Emulator(settings(faults={"drizzle": 0.1}))
