"""The streaming request body and response stream: same bytes as the plain way, never held whole."""

from __future__ import annotations

import base64
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backdrop_fn.ports import InlineImage
from backdrop_fn.streams import CountingStream, JsonBody


class TrackedSource(io.BytesIO):
    """A source that says how much was asked of it at most at once, and whether it was closed."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.largest_read = max(self.largest_read, len(data))
        return data


def inline(data: bytes, sources: list | None = None) -> InlineImage:
    def open_source() -> TrackedSource:
        source = TrackedSource(data)
        if sources is not None:
            sources.append(source)
        return source

    return InlineImage(size=len(data), open=open_source)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000), st.text(max_size=50), st.lists(st.binary(max_size=300), max_size=3))
def test_the_body_is_exactly_the_json_of_the_payload_with_base64_images(
    image: bytes, prompt: str, refs: list
):
    payload = {"image": inline(image), "prompt": prompt, "style_reference_images": [inline(r) for r in refs]}
    body = JsonBody(payload)
    sent = body.read()
    assert len(sent) == len(body)
    expected = {
        "image": base64.b64encode(image).decode(),
        "prompt": prompt,
        "style_reference_images": [base64.b64encode(r).decode() for r in refs],
    }
    assert json.loads(sent) == expected


def test_a_prompt_cannot_impersonate_an_image_placeholder():
    payload = {"prompt": 'inline-0000 "image"', "image": inline(b"\x89PNG")}
    assert json.loads(JsonBody(payload).read())["prompt"] == 'inline-0000 "image"'


def test_a_large_image_is_read_piece_by_piece_and_closed():
    sources: list[TrackedSource] = []
    image = bytes(range(256)) * 40_000  # 10 MB
    body = JsonBody({"image": inline(image, sources), "prompt": "p"})
    total = 0
    while chunk := body.read(16_384):
        total += len(chunk)
    assert total == len(body)
    (source,) = sources
    assert source.largest_read <= 65_535
    assert source.closed


def test_other_objects_are_still_refused():
    with pytest.raises(TypeError):
        JsonBody({"when": object()})


def test_counting_stream_gives_head_then_rest_and_counts():
    stream = CountingStream(b"\x89PNG", io.BytesIO(b"rest of it"))
    assert stream.read() == b"\x89PNGrest of it"
    assert stream.count == 14


def test_requests_sends_the_whole_body_with_its_length():
    """requests sizes a body as len() minus tell(); it must find the full length before sending."""
    from requests.utils import super_len

    body = JsonBody({"image": inline(b"x" * 1000), "prompt": "p"})
    assert super_len(body) == len(body) > 1000
