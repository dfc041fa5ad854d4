"""The real SegmindClient against an API that answers what no API should: the key echoed back,
bodies too large to hold, gzip bombs, numbers that are not numbers, binary where text belongs.

A small HTTP server on 127.0.0.1 sends exactly the bytes each test scripts (issue 10, items 8, 14,
17 and 18).
"""

from __future__ import annotations

import random
import tracemalloc
import zlib

import pytest

from backdrop_fn.adapters.segmind import SegmindClient
from backdrop_fn.errors import BackdropError, BadRequest, InternalError, ServerError
from backdrop_fn.timing import Deadline
from tests.integration.conftest import API_KEY
from tests.unit.function.fakes import PNG_BYTES

MB = 1024 * 1024
NOISE = random.Random(10).randbytes(2000)  # compressed or encrypted bytes: no known type


def failure(client: SegmindClient) -> BackdropError:
    with pytest.raises(BackdropError) as caught:
        client.replace_background({"prompt": "p"}, Deadline(300))
    return caught.value


def readable(message: str) -> bool:
    return message.isprintable() and "\ufffd" not in message


# -- item 8: the key is masked in every text that comes from the API ----------------------------


@pytest.mark.parametrize(
    ("status_line", "headers", "body"),
    [
        ("HTTP/1.1 200 OK", {"Content-Type": f"text/plain; token={API_KEY}"}, b"hello"),
        ("HTTP/1.1 200 OK", {"Content-Type": f"application/x-{API_KEY}"}, b""),
        ("HTTP/1.1 201 Created", {"Content-Type": f"image/png; k={API_KEY}"}, PNG_BYTES),
        (f"HTTP/1.1 418 {API_KEY}", {}, b""),
        ("HTTP/1.1 400 Bad Request", {"Content-Type": "text/plain"}, f"no key {API_KEY} here".encode()),
        ("HTTP/1.1 400 Bad Request", {}, b'{"error": "key \\u0073k-test-9f8e7d6c5b4a refused"}'),
        ("HTTP/1.1 400 Bad Request", {}, ("x" * 495 + API_KEY).encode()),  # across the cut
        ("HTTP/1.1 422 Unprocessable", {}, f"\x1b[1m{API_KEY}\x1b[0m".encode()),
    ],
    ids=[
        "200 content type",
        "200 empty",
        "201 content type",
        "reason phrase",
        "text body",
        "json escaped",
        "across the cut",
        "between escapes",
    ],
)
def test_the_key_never_reaches_a_message(hostile, status_line: str, headers: dict, body: bytes):
    client, _, _ = hostile(status_line, headers, body)
    error = failure(client)
    assert API_KEY not in error.message
    assert API_KEY not in str(error)
    assert "sk-test-9f8e" not in error.message  # no recognisable part of it either


# -- item 14: an error body is read only up to a small cap ---------------------------------------


def test_a_huge_error_body_is_not_read_whole(hostile):
    size = 300 * MB
    piece = (b"the API is very sorry. " * 45_600)[:MB]
    client, _, script = hostile(
        "HTTP/1.1 400 Bad Request",
        {"Content-Type": "text/plain", "Content-Length": str(size)},
        (piece for _ in range(size // MB)),
    )
    tracemalloc.start()
    try:
        error = failure(client)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, BadRequest)
    assert error.message.startswith("API 400: the API is very sorry.")
    assert len(error.message) <= 520
    assert peak < 4 * MB
    assert script.done.wait(10)
    assert script.hung_up  # the connection was closed, not drained
    assert script.sent < 64 * MB


def gzip_bomb(inflated: int, unit: bytes = b"a") -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    block = unit * MB
    return b"".join(packer.compress(block) for _ in range(inflated // MB)) + packer.flush()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb(200 * MB)


def test_a_gzip_bomb_is_never_inflated_beyond_the_cap(hostile, bomb: bytes):
    client, _, _ = hostile(
        "HTTP/1.1 500 Internal Server Error",
        {"Content-Type": "text/plain", "Content-Encoding": "gzip"},
        bomb,
    )
    tracemalloc.start()
    try:
        error = failure(client)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, ServerError)
    assert error.message.startswith("API 500: aaaa")
    assert peak < 4 * MB


def test_a_small_gzipped_error_is_still_read(hostile):
    body = zlib.compress(b'{"error": "prompt too long"}', wbits=31)
    client, _, _ = hostile(
        "HTTP/1.1 400 Bad Request", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, body
    )
    assert failure(client).message == "API 400: prompt too long"


# -- item 17: a credit count that is not a finite number is dropped -----------------------------


@pytest.mark.parametrize("credits", ["NaN", "nan", "inf", "-Infinity", "1e999", "-1e999", "lots", ""])
def test_a_credit_count_that_is_not_a_finite_number_is_not_recorded(hostile, credits: str):
    client, metrics, _ = hostile(
        "HTTP/1.1 200 OK", {"Content-Type": "image/png", "x-remaining-credits": credits}, PNG_BYTES
    )
    with client.replace_background({"prompt": "p"}, Deadline(300)).body as image:
        assert image.read() == PNG_BYTES
    assert [name for name, _, _ in metrics.values if name == "RemainingCredits"] == []


def test_a_finite_credit_count_is_recorded(hostile):
    client, metrics, _ = hostile(
        "HTTP/1.1 200 OK", {"Content-Type": "image/png", "x-remaining-credits": " 12.5 "}, PNG_BYTES
    )
    client.replace_background({"prompt": "p"}, Deadline(300)).body.close()
    assert [value for name, value, _ in metrics.values if name == "RemainingCredits"] == [12.5]
    assert client.last_remaining_credits is not None  # for the spend record
    assert client.last_remaining_credits[0] == 12.5


# -- item 18: messages say what came, and hold only printable text ------------------------------


def test_a_200_with_an_empty_body_says_so(hostile):
    client, _, _ = hostile("HTTP/1.1 200 OK", {"Content-Type": "image/png"}, b"")
    error = failure(client)
    assert isinstance(error, InternalError)
    assert error.retryable is False
    assert error.message == "the API answered 200 with an empty body, not a JPEG, PNG or WebP image"


def test_a_200_that_is_not_an_image_still_names_its_content_type(hostile):
    client, _, _ = hostile("HTTP/1.1 200 OK", {"Content-Type": "text/html"}, b"<html>hello</html>")
    error = failure(client)
    assert isinstance(error, InternalError)
    assert error.message == "the API answered 200 with text/html, not a JPEG, PNG or WebP image"


@pytest.mark.parametrize(
    ("status_line", "headers", "body", "described"),
    [
        (
            "HTTP/1.1 201 Created",
            {"Content-Type": "image/png"},
            PNG_BYTES,
            f"a binary body (image/png, {len(PNG_BYTES)} bytes)",
        ),
        ("HTTP/1.1 302 Found", {}, PNG_BYTES, f"a binary body (no content type, {len(PNG_BYTES)} bytes)"),
        ("HTTP/1.1 400 Bad Request", {"Content-Type": "text/plain"}, PNG_BYTES, "a binary body (text/plain,"),
        (
            "HTTP/1.1 400 Bad Request",
            {"Content-Type": "text/plain"},
            NOISE,
            "a binary body (text/plain, 2000",
        ),
        (
            "HTTP/1.1 400 Bad Request",
            {"Content-Type": "application/json"},
            NOISE,
            "a binary body (application",
        ),
    ],
    ids=["201 png", "302 png", "400 png", "400 noise as text", "400 noise as json"],
)
def test_binary_bodies_are_described_not_quoted(
    hostile, status_line: str, headers: dict, body: bytes, described: str
):
    client, _, _ = hostile(status_line, headers, body)
    error = failure(client)
    assert isinstance(error, BadRequest)  # unlisted statuses stay bad_request
    assert described in error.message
    assert readable(error.message)
    assert len(error.message) < 120


def test_control_characters_in_an_error_text_are_dropped(hostile):
    body = b"quota\x07 exceeded\r\n\tfor today\x00\x1b"
    client, _, _ = hostile("HTTP/1.1 400 Bad Request", {"Content-Type": "text/plain"}, body)
    assert failure(client).message == "API 400: quota exceeded for today"


def test_an_error_text_in_its_declared_charset_is_kept(hostile):
    body = '{"error": "café refusé"}'.encode("latin-1")
    client, _, _ = hostile("HTTP/1.1 400 Bad Request", {"Content-Type": "text/plain; charset=latin-1"}, body)
    assert failure(client).message == "API 400: café refusé"


def test_an_empty_error_body_gives_the_reason_phrase(hostile):
    client, _, _ = hostile("HTTP/1.1 404 Not\x7f Found", {}, b"")
    assert failure(client).message == "API 404: Not Found"
