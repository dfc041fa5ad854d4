"""Sidecars JSON can spell but Python cannot hold: over-long numbers, lone surrogates.

Each is ``invalid_sidecar`` naming its field, found before anything else uses the sidecar
(docs/REFERENCE.md#the-sidecar), never an ``internal`` failure.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backdrop_fn.errors import InvalidSidecar
from backdrop_fn.sidecar import Sidecar, parse_sidecar
from tests.unit.function.conftest import World
from tests.unit.function.fakes import JPEG_BYTES

LONG = "7" * 5000  # past Python's 4,300-digit limit on reading an integer


def rejection(raw: str) -> str:
    with pytest.raises(InvalidSidecar) as caught:
        parse_sidecar(raw.encode())
    message = caught.value.message
    message.encode("utf-8")  # a DLQ record can carry it
    return message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"prompt": "a", "seed": ' + LONG + "}", "seed: a number of 5,000 digits"),
        ('{"prompt": "a", "seed": -' + LONG + "}", "seed: a number of 5,000 digits"),
        (
            '{"prompt": "a", "color_palette": {"members": [{"color_hex": "#000000", "color_weight": '
            + LONG
            + "}]}}",
            "color_palette.members[0].color_weight: a number of 5,000 digits",
        ),
        ('{"prompt": "a", "metadata": {"n": ' + LONG + "}}", "metadata.n: a number of 5,000 digits"),
        ('{"prompt": "a", "sead": [' + LONG + "]}", "sead[0]: a number of 5,000 digits"),
    ],
)
def test_a_number_python_cannot_read_is_an_invalid_sidecar_naming_its_field(raw: str, message: str):
    assert message in rejection(raw)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (r'{"prompt": "a\ud800b"}', "prompt"),
        (r'{"prompt": "a", "metadata": {"sku": "\udfff"}}', "metadata.sku"),
        (r'{"prompt": "a", "metadata": {"k\udc00": "v"}}', "metadata"),
        (r'{"prompt": "a", "style_reference_images": ["ref\ud800.png"]}', "style_reference_images[0]"),
        (r'{"prompt": "a", "style_codes": ["\ud800"]}', "style_codes[0]"),
        (r'{"prompt": "a", "color_palette": {"name": "\ud800"}}', "color_palette.name"),
        (r'{"prompt": "a", "rendering_speed": "\ud800"}', "rendering_speed"),
        (r'{"prompt": "a", "\ud800": 1}', ""),
    ],
)
def test_a_lone_surrogate_anywhere_is_an_invalid_sidecar_naming_its_field(raw: str, field: str):
    message = rejection(raw)
    assert "lone surrogate" in message
    assert message.startswith(f"{field}: " if field else "key ")


def test_a_surrogate_in_a_name_is_shown_escaped():
    assert rejection(r'{"prompt": "a", "metadata": {"k\udc00": "v"}}') == (
        "metadata: key 'k\\udc00' must not contain a lone surrogate (\\udc00)"
    )
    assert rejection(r'{"prompt": "a", "\ud800": {"seed": "\udc00x"}}') == (
        "key '\\ud800' must not contain a lone surrogate (\\ud800); "
        "\\ud800.seed: must not contain a lone surrogate (\\udc00)"
    )


def test_a_surrogate_pair_is_one_character_and_welcome():
    assert parse_sidecar(rb'{"prompt": "shoe \ud83d\udc5f"}').prompt == "shoe \U0001f45f"


def test_every_such_problem_is_listed_up_to_ten():
    document = "{" + ", ".join(f'"f{n}": {LONG}' for n in range(12)) + "}"
    message = rejection(document)
    assert message.count("a number of 5,000 digits") == 10
    assert message.endswith("and 2 more problems")


# -- any document: a Sidecar whose strings are UTF-8, or InvalidSidecar --------------------------

FIELDS = ["prompt", "seed", "metadata", "style_codes", "style_reference_images", "color_palette"]
FIELDS += ["name", "members", "color_hex", "color_weight", "rendering_speed", "magic_prompt"]
# Any code point, lone surrogates included: json.dumps writes them as \udXXX escapes.
any_text = st.text(st.characters(codec=None, categories=None), max_size=12)
numbers = st.one_of(
    st.integers().map(str),
    st.integers(100, 999_999).map(str),
    st.integers(4290, 4400).map(lambda n: "9" * n),
    st.sampled_from(["1e999", "-1e999", "1" * 5000 + ".5", "0.5e-999", "1.0"]),
)
strings = any_text.map(json.dumps) | st.sampled_from(["TURBO", "PASTEL", "#00ff00"]).map(json.dumps)
json_texts = st.recursive(
    numbers | strings | st.sampled_from(["null", "true", "false"]),
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
        | st.lists(st.tuples(st.sampled_from(FIELDS).map(json.dumps) | strings, inner), max_size=5).map(
            lambda pairs: "{" + ", ".join(f"{key}: {value}" for key, value in pairs) + "}"
        )
    ),
    max_leaves=20,
)
documents = st.lists(st.tuples(st.sampled_from(FIELDS).map(json.dumps) | strings, json_texts), max_size=6)


def strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in strings_in(key) + strings_in(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in strings_in(item)]
    return []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(['"prompt": "a"', '"prompt": "\\ud800"', ""]), documents)
def test_any_document_is_a_sidecar_of_utf8_strings_or_an_invalid_sidecar(prompt: str, pairs: list):
    members = ([prompt] if prompt else []) + [f"{key}: {value}" for key, value in pairs]
    raw = ("{" + ", ".join(members) + "}").encode()
    try:
        result: Sidecar | str = parse_sidecar(raw)
    except InvalidSidecar as error:
        result = error.message
    texts = [result] if isinstance(result, str) else strings_in(result.model_dump(mode="json"))
    assert result
    for text in texts:
        text.encode("utf-8")  # a refusal's message too: the DLQ record carries it


# -- through the pipeline -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sidecar", "field"),
    [
        (b'{"prompt": "a", "seed": ' + LONG.encode() + b"}", "seed"),
        (rb'{"prompt": "a beach \ud800"}', "prompt"),
        (rb'{"prompt": "a", "metadata": {"sku": "\udc00"}}', "metadata.sku"),
    ],
)
def test_such_a_sidecar_is_dead_lettered_as_invalid_sidecar_without_a_call(
    world: World, sidecar: bytes, field: str
):
    world.upload("a.jpg", JPEG_BYTES)
    world.upload("a.jpg.json", sidecar)
    world.event("a.jpg.json")
    [(record, error_class)] = world.dlq.sent
    assert error_class == "invalid_sidecar" == record["error"]["class"]
    assert record["error"]["message"].startswith(f"{field}: ")
    assert world.api.calls == 0
