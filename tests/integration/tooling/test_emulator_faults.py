"""The emulator's hostile answers on the wire: a real server on loopback, read by real HTTP clients.

Each fault is scripted (``Reply(fault=KIND)``) or rolled from the settings, and read the way the
function reads answers (requests/urllib3), or with http.client where its exact error is the point.
Timing is only ever bounded generously: this runs on small, busy machines.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
import requests
from PIL import Image

from backdrop.cli import parse_faults
from backdrop.emulator import Emulator, EmulatorSettings, Reply
from backdrop.emulator.models import MIB
from tests.integration.conftest import photo

KEY = "fault-test-key"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorSettings(api_keys={KEY})) as running:
        yield running


def document() -> dict:
    return {"image": base64.b64encode(photo()).decode(), "prompt": "a beach", "seed": 500}


def post(emulator: Emulator, *, stream: bool = False, timeout: float | tuple[float, float] = 30):
    return requests.post(
        emulator.url, json=document(), headers={"x-api-key": KEY}, stream=stream, timeout=timeout
    )


def raw_post(emulator: Emulator) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """The request over http.client, the response's head read and its body left to the caller."""
    host, port = emulator.url.split("/")[2].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    payload = json.dumps(document()).encode()
    connection.request(
        "POST",
        "/v1/ideogram-3-replace-background",
        payload,
        {"x-api-key": KEY, "Content-Type": "application/json"},
    )
    return connection, connection.getresponse()


def honest_picture(emulator: Emulator) -> bytes:
    """What the same request is answered when no fault shapes it (the picture is deterministic)."""
    response = post(emulator)
    assert response.status_code == 200
    return response.content


def threads_started_since(before: set[threading.Thread]) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread not in before and thread.is_alive()]


def all_end(threads: list[threading.Thread], within: float = 20.0) -> bool:
    for thread in threads:
        thread.join(max(0.0, within))
    return not any(thread.is_alive() for thread in threads)


def last_record(emulator: Emulator):
    return emulator.requests[-1]


# -- drip ---------------------------------------------------------------------------------------------


def test_a_drip_delivers_the_whole_picture_a_piece_at_a_time_and_is_billed(emulator: Emulator):
    emulator.settings.drip_interval_seconds = 0.05
    emulator.settings.drip_piece_bytes = 256
    expected = honest_picture(emulator)
    emulator.script(Reply(fault="drip"))

    started = time.monotonic()
    response = post(emulator)
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert int(response.headers["Content-Length"]) == len(expected)
    assert response.content == expected
    pauses = -(-len(expected) // 256) - 1
    assert pauses >= 5
    assert elapsed >= 0.8 * pauses * 0.05  # a lower bound: each pause is a wait that never ends early
    record = last_record(emulator)
    assert (record.fault, record.billed, record.charged_then_lost) == ("drip", True, True)
    assert emulator.billed_calls == 2


def test_a_drip_at_the_default_pace_would_outlast_any_lambda_deadline(emulator: Emulator):
    settings = emulator.settings
    picture_bytes = len(honest_picture(emulator))
    assert picture_bytes / settings.drip_piece_bytes * settings.drip_interval_seconds > 15 * 60


def test_a_drip_stops_when_the_client_hangs_up(emulator: Emulator):
    emulator.settings.drip_interval_seconds = 0.1  # a whole drip of 1-byte pieces: minutes
    emulator.script(Reply(fault="drip"))
    before = set(threading.enumerate())
    connection, response = raw_post(emulator)
    assert response.status == 200
    assert response.read(2) == PNG_SIGNATURE[:2]
    dripping = threads_started_since(before)
    response.close()
    connection.close()

    assert all_end(dripping)
    assert post(emulator).status_code == 200  # and the emulator still serves


def test_stopping_the_emulator_ends_a_drip_at_once():
    emulator = Emulator(EmulatorSettings(api_keys={KEY}, drip_interval_seconds=600)).start()
    emulator.script(Reply(fault="drip"))
    before = set(threading.enumerate())
    connection, response = raw_post(emulator)
    assert response.read(1) == PNG_SIGNATURE[:1]
    dripping = threads_started_since(before)
    emulator.stop()
    try:
        assert all_end(dripping)
    finally:
        response.close()
        connection.close()


# -- hangup, stall ------------------------------------------------------------------------------------


def test_a_hangup_breaks_the_answer_off_short_of_its_announced_length_and_is_billed(emulator: Emulator):
    expected = honest_picture(emulator)
    emulator.script(Reply(fault="hangup"))
    connection, response = raw_post(emulator)
    try:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(expected)
        with pytest.raises(http.client.IncompleteRead) as broken:
            response.read()
    finally:
        connection.close()
    assert 0 < len(broken.value.partial) < len(expected)
    assert expected.startswith(broken.value.partial)
    record = last_record(emulator)
    assert (record.fault, record.billed, record.charged_then_lost) == ("hangup", True, True)


def test_the_functions_http_client_sees_a_hangup_as_a_broken_connection(emulator: Emulator):
    emulator.script(Reply(fault="hangup"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        post(emulator)
    assert emulator.billed_calls == 1


def test_a_stall_sends_part_of_the_picture_then_nothing_so_the_read_timeout_fires(emulator: Emulator):
    emulator.settings.timeout_stall_seconds = 120
    emulator.script(Reply(fault="stall"))
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError, match="timed out"):
        post(emulator, timeout=(5, 0.5))
    assert time.monotonic() - started < 60  # the client's timeout, not the stall's end
    record = last_record(emulator)
    assert (record.fault, record.billed, record.charged_then_lost) == ("stall", True, True)


def test_a_stall_closes_the_connection_after_its_silence(emulator: Emulator):
    emulator.settings.timeout_stall_seconds = 0.3
    emulator.script(Reply(fault="stall"))
    connection, response = raw_post(emulator)
    try:
        with pytest.raises(http.client.IncompleteRead):
            response.read()
    finally:
        connection.close()


# -- huge ---------------------------------------------------------------------------------------------


def test_a_huge_answer_announces_more_than_the_setting_and_reading_its_start_does_not_hang(
    emulator: Emulator,
):
    assert emulator.settings.huge_answer_bytes == 60 * MIB  # above the function's 50 MiB
    emulator.script(Reply(fault="huge"))
    before = set(threading.enumerate())
    response = post(emulator, stream=True)
    sending = threads_started_since(before)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert int(response.headers["Content-Length"]) > 60 * MIB
    start = response.raw.read(MIB)
    response.close()

    assert start.startswith(PNG_SIGNATURE)
    assert len(start) == MIB
    assert all_end(sending)  # the sender noticed the client left
    record = last_record(emulator)
    assert (record.fault, record.billed, record.charged_then_lost) == ("huge", True, True)
    assert post(emulator).status_code == 200


def test_a_huge_answer_is_streamed_never_held_whole(emulator: Emulator):
    emulator.settings.huge_answer_bytes = 24 * MIB
    emulator.script(Reply(fault="huge"))
    tracemalloc.start()
    try:
        response = post(emulator, stream=True)
        received = sum(len(piece) for piece in response.iter_content(64 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == int(response.headers["Content-Length"]) > 24 * MIB
    assert peak < 8 * MIB  # the emulator (and this client) held a few pieces at a time, not 24 MiB


# -- gzip bomb, echo_key ------------------------------------------------------------------------------


def test_a_gzip_bomb_is_a_small_unbilled_400_that_inflates_to_hundreds_of_megabytes(emulator: Emulator):
    emulator.script(Reply(fault="gzip_bomb"))
    response = post(emulator, stream=True)
    compressed = response.raw.read(decode_content=False)
    assert response.status_code == 400
    assert response.headers["Content-Encoding"] == "gzip"
    assert len(compressed) == int(response.headers["Content-Length"]) < MIB
    assert inflated_size(compressed) == emulator.settings.gzip_bomb_bytes >= 200 * MIB
    record = last_record(emulator)
    assert (record.fault, record.status, record.billed) == ("gzip_bomb", 400, False)
    assert emulator.billed_calls == 0


def inflated_size(compressed: bytes) -> int:
    """What a gzip body inflates to, counted a megabyte at a time (never inflated whole)."""
    inflater, size, pending = zlib.decompressobj(16 + zlib.MAX_WBITS), 0, compressed
    while pending or not inflater.eof:
        size += len(inflater.decompress(pending, MIB))
        pending = inflater.unconsumed_tail
    return size


def test_echo_key_answers_a_real_picture_whose_headers_echo_the_key_and_is_billed(emulator: Emulator):
    emulator.script(Reply(fault="echo_key"))
    response = post(emulator)
    assert response.status_code == 200
    assert KEY in response.headers["Content-Type"]
    assert KEY in response.headers["x-debug"]
    assert Image.open(io.BytesIO(response.content)).format == "PNG"
    record = last_record(emulator)
    assert (record.fault, record.billed, record.charged_then_lost) == ("echo_key", True, False)


# -- rolled from the settings -------------------------------------------------------------------------


def test_charged_faults_rolled_from_the_settings_reach_the_wire_and_are_recorded(emulator: Emulator):
    emulator.settings.faults = {"hangup": 1.0}
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(emulator)
    emulator.settings.faults = {"echo_key": 1.0}
    assert KEY in post(emulator).headers["x-debug"]
    assert [(r.fault, r.billed) for r in emulator.requests] == [("hangup", True), ("echo_key", True)]
    assert emulator.stats()["faults"] == {"hangup": 1, "echo_key": 1}
    assert emulator.stats()["charged_then_lost"] == 1


def test_the_timeout_fault_answers_nothing_and_stays_unbilled(emulator: Emulator):
    emulator.settings.faults = {"timeout": 1.0}
    emulator.settings.timeout_stall_seconds = 0.2
    with pytest.raises(requests.ConnectionError):
        post(emulator)
    record = last_record(emulator)
    assert (record.fault, record.billed, record.charged_then_lost) == ("timeout", False, False)
    assert emulator.billed_calls == 0


def test_a_scripted_fault_shapes_only_the_next_answer(emulator: Emulator):
    emulator.script(Reply(fault="hangup"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(emulator)
    assert post(emulator).status_code == 200
    assert [r.fault for r in emulator.requests] == ["hangup", None]


def test_the_command_line_takes_the_new_fault_kinds():
    assert parse_faults("drip=0.1,hangup=0.05,stall=0.05,huge=0.01,gzip_bomb=0.01,echo_key=0.01") == {
        "drip": 0.1,
        "hangup": 0.05,
        "stall": 0.05,
        "huge": 0.01,
        "gzip_bomb": 0.01,
        "echo_key": 0.01,
    }
