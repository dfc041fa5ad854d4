"""Property-based tests: whatever arrives, the answer is a value or a classified error, never a crash."""

from __future__ import annotations

import contextlib
import json
from urllib.parse import quote_plus, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backdrop_fn import images, keys
from backdrop_fn.errors import InvalidSidecar
from backdrop_fn.events import UnrecognisedEvent, items_from_event, items_from_message
from backdrop_fn.sidecar import Sidecar, parse_sidecar

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)
FIELD_NAMES = [
    "prompt",
    "rendering_speed",
    "magic_prompt",
    "seed",
    "style_codes",
    "style_reference_images",
    "color_palette",
    "metadata",
    "members",
    "name",
    "color_hex",
    "color_weight",
    "Records",
    "s3",
]
sidecar_like = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=10), json_values, max_size=8)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_is_refused(raw: bytes) -> None:
    """Either a Sidecar, or an InvalidSidecar that says why: no other exception escapes."""
    try:
        result: object = parse_sidecar(raw)
    except InvalidSidecar as error:
        result = error.message
    assert isinstance(result, Sidecar) or (isinstance(result, str) and result)


@FAST
@given(st.binary(max_size=2000))
def test_any_bytes_are_a_sidecar_or_an_invalid_sidecar(raw: bytes):
    parses_or_is_refused(raw)


@FAST
@given(sidecar_like)
def test_any_json_document_is_a_sidecar_or_an_invalid_sidecar(document: dict):
    parses_or_is_refused(json.dumps(document).encode())


valid_sidecars = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=200).filter(lambda t: t.strip() and t.strip().isprintable())},
    optional={
        "rendering_speed": st.sampled_from(["TURBO", "DEFAULT", "QUALITY"]),
        "magic_prompt": st.sampled_from(["AUTO", "ON", "OFF"]),
        "seed": st.integers(100, 999_999),
        "style_codes": st.lists(
            st.text(alphabet="0123456789abcdefABCDEF", min_size=8, max_size=8), max_size=3
        ),
        "color_palette": st.one_of(
            st.fixed_dictionaries({"name": st.sampled_from(["EMBER", "PASTEL", "JUNGLE"])}),
            st.fixed_dictionaries(
                {
                    "members": st.lists(
                        st.fixed_dictionaries(
                            {
                                "color_hex": st.from_regex(r"#[0-9a-f]{6}", fullmatch=True),
                                "color_weight": st.floats(0.05, 1.0),
                            }
                        ),
                        min_size=1,
                        max_size=8,
                    )
                }
            ),
        ),
        "metadata": st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True).filter(
                lambda k: k not in {"seed", "source-key"}
            ),
            st.text(max_size=30),
            max_size=3,
        ),
    },
)


@FAST
@given(valid_sidecars)
def test_every_valid_sidecar_parses_to_what_it_says(document: dict):
    sidecar = parse_sidecar(json.dumps(document).encode())
    assert sidecar.prompt == document["prompt"].strip()
    assert sidecar.seed == document.get("seed")


@FAST
@given(st.text(max_size=500))
def test_any_message_body_is_work_or_unrecognised(body: str):
    with contextlib.suppress(UnrecognisedEvent):
        assert isinstance(items_from_message(body), list)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["Records", "Event", "type", "source", "detail", "detail-type"]) | st.text(),
        json_values,
        max_size=5,
    )
)
def test_any_event_is_work_or_unrecognised(event: dict):
    with contextlib.suppress(UnrecognisedEvent):
        assert isinstance(items_from_event(event), list)


@FAST
@given(st.lists(json_values, max_size=3))
def test_any_records_list_is_work_or_unrecognised(records: list):
    with contextlib.suppress(UnrecognisedEvent):
        items_from_event({"Records": records})


@FAST
@given(st.text(min_size=1, max_size=200).filter(lambda k: "\x00" not in k))
def test_every_key_survives_s3_encoding(key: str):
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "b"}, "object": {"key": quote_plus(key, safe="/")}},
    }
    (item,) = items_from_event({"Records": [record]})
    assert item.key == key


@FAST
@given(st.text(max_size=300))
def test_metadata_values_are_printable_ascii_and_decode_back(value: str):
    encoded = keys.metadata_value(value)
    assert all(32 <= ord(ch) < 127 for ch in encoded)
    if encoded != value:
        assert unquote(encoded) == value


@FAST
@given(st.binary(max_size=400), st.binary(max_size=64), st.integers(0, 10**9))
def test_any_bytes_are_an_image_or_a_reason(head: bytes, tail: bytes, size: int):
    result = images.problem(head, tail, size)
    assert result is None or isinstance(result, str)


@FAST
@given(
    st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP"]),
    st.binary(max_size=300),
)
def test_image_headers_followed_by_garbage_never_crash(magic: bytes, rest: bytes):
    data = magic + rest
    result = images.problem(data, data[-64:], len(data))
    assert result is None or isinstance(result, str)


# -- a corpus of hostile sidecars: each refused with its reason ---------------------------------

HOSTILE = [
    (b"{" + b'"prompt": "x",' * 10_000 + b"}", "the limit is 65,536"),
    (b"[" * 50_000 + b"]" * 50_000, "the limit is 65,536"),
    (b"[" * 30_000, "nested too deeply"),
    (b'{"prompt": "a\\u0000b"}', "control characters"),
    (b'{"prompt": "x\x00"}', "not valid JSON"),
    (b'{"prompt": ["x"]}', "prompt: must be a string"),
    (b'{"prompt": "x", "seed": 1e400}', "seed: must be a whole number"),
    (b'{"prompt": "x", "seed": 12345678901234567890123}', "seed: must be between"),
    (b'{"prompt": "x", "metadata": {"a": {"b": "c"}}}', "metadata.a: must be a string"),
    (b'{"prompt": "x", "__proto__": {}}', "__proto__: unknown field"),
]
SSRF = [
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::1]/x.png",
    "https://10.0.0.7/x.png",
    "https://192.168.1.1/x.png",
    "https://127.0.0.1/x.png",
    "https://2130706433/x.png",
    "https://0x7f000001/x.png",
    "https://0177.0.0.1/x.png",
    "https://localhost/x.png",
    "https://metadata/computeMetadata/v1/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://printer.local/x.png",
    "https://user:pass@example.com/x.png",
    "file:///etc/passwd",
    "gopher://example.com/x",
    "https://[::1/x.png",
    "https://example.com:99999/x.png",
]


@pytest.mark.parametrize(("raw", "message"), HOSTILE)
def test_hostile_sidecars_are_refused_with_a_reason(raw: bytes, message: str):
    with pytest.raises(InvalidSidecar, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sidecar(raw)


@pytest.mark.parametrize("url", SSRF)
def test_style_references_to_private_places_are_refused(url: str):
    with pytest.raises(InvalidSidecar, match="style_reference_images"):
        parse_sidecar(json.dumps({"prompt": "x", "style_reference_images": [url]}).encode())


@pytest.mark.parametrize(
    "url", ["https://cdn.example.com/a.png", "https://8.8.8.8/a.png", "https://x.co/a?b=c"]
)
def test_style_references_to_public_places_are_accepted(url: str):
    parse_sidecar(json.dumps({"prompt": "x", "style_reference_images": [url]}).encode())


def test_printable_prompts_with_line_breaks_are_fine():
    assert parse_sidecar(b'{"prompt": "line one\\nline two\\ttab"}').prompt == "line one\nline two\ttab"
