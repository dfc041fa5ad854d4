"""Every read of a paid answer is bounded: by the invocation's deadline and by MAX_ANSWER_BYTES."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator

import pytest

from backdrop_fn.adapters.segmind import SegmindClient
from backdrop_fn.errors import ApiTimeout, BackdropError, InternalError
from backdrop_fn.timing import Deadline, TimeBudget
from tests.unit.function.fakes import PNG_BYTES

# A small budget, so that a deadline a few seconds away leaves room to start the call.
BUDGET = TimeBudget(write_reserve_seconds=1.0, connect_timeout_seconds=0.5, min_attempt_seconds=0.5)


@pytest.fixture
def api(hostile):
    """An API whose 200 sends ``body`` (``length`` bytes declared), to a client on a small budget."""

    def answering(body: Iterable[bytes], length: int, *, max_answer_bytes: int = 50 * 1024 * 1024):
        headers = {"Content-Type": "image/png", "Content-Length": str(length)}
        client, _, script = hostile(
            "HTTP/1.1 200 OK", headers, body, max_answer_bytes=max_answer_bytes, budget=BUDGET
        )
        return client, script

    return answering


def drip(head: bytes, every_seconds: float, count: int) -> Iterator[bytes]:
    yield head
    for _ in range(count):
        time.sleep(every_seconds)
        yield b"\0"


def read_all(client: SegmindClient, deadline: Deadline) -> BackdropError:
    """Buy and read the answer as the function does: the body closed whatever happens."""

    def buy_and_read() -> None:
        with contextlib.closing(client.replace_background({"prompt": "p"}, deadline).body) as body:
            body.read()

    with pytest.raises(BackdropError) as caught:
        buy_and_read()
    return caught.value


def test_an_answer_that_drips_is_cut_at_the_deadline_not_read_past_it(api):
    client, script = api(drip(PNG_BYTES[:64], 0.2, 100), length=64 + 100)
    started = time.monotonic()
    error = read_all(client, Deadline(3.0))
    took = time.monotonic() - started
    assert isinstance(error, ApiTimeout)
    assert "still arriving at the invocation's deadline" in error.message
    assert error.http_status == 200  # charged: the ledger must not forget it
    assert took < 3.0  # the deadline (3 s) less the write reserve (1 s), and a drip's step
    assert script.sent < 64 + 100


def test_a_drip_in_the_first_bytes_is_bounded_too(api):
    client, _ = api(drip(b"\x89", 0.2, 100), length=1 + 100)
    started = time.monotonic()
    error = read_all(client, Deadline(3.0))
    assert isinstance(error, ApiTimeout)
    assert time.monotonic() - started < 3.0


def test_an_answer_over_max_answer_bytes_is_refused_while_it_is_read(api):
    size = 64 * 1024 * 1024
    pieces = (PNG_BYTES[:64] if i == 0 else b"\0" * 65536 for i in range(size // 65536))
    client, script = api(pieces, length=64 + (size // 65536 - 1) * 65536, max_answer_bytes=1024 * 1024)
    error = read_all(client, Deadline(60))
    assert isinstance(error, InternalError)
    assert "over MAX_ANSWER_BYTES (1,048,576 bytes)" in error.message
    assert (error.http_status, error.retryable) == (200, False)
    assert script.done.wait(10)
    assert script.hung_up  # the client stopped reading and closed: it never took it all
    assert script.sent < 32 * 1024 * 1024
