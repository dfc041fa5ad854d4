"""Sidecar rules (docs/REFERENCE.md#the-sidecar): every bad sidecar names its field."""

from __future__ import annotations

import json

import pytest

from backdrop_fn.errors import InvalidSidecar
from backdrop_fn.sidecar import parse_sidecar


def parse(document) -> object:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_sidecar(raw)


def rejection(document) -> str:
    with pytest.raises(InvalidSidecar) as caught:
        parse(document)
    return caught.value.message


def test_minimal_sidecar_gets_the_documented_defaults():
    sidecar = parse({"prompt": "beach"})
    assert (sidecar.rendering_speed, sidecar.magic_prompt, sidecar.seed) == ("DEFAULT", "AUTO", None)


def test_prompt_is_trimmed():
    assert parse({"prompt": "  beach \n"}).prompt == "beach"


def test_utf8_with_byte_order_mark_is_accepted():
    assert parse(b'\xef\xbb\xbf{"prompt": "Strand"}').prompt == "Strand"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"prompt": "   "}, "prompt: must not be empty"),
        ({"prompt": "x" * 4001}, "prompt: must be at most 4,000 characters, not 4,001"),
        ({}, "prompt: is required"),
        ({"prompt": 5}, "prompt: must be a string"),
        ({"prompt": "x", "seed": 1_000_000}, "seed: must be between 100 and 999999"),
        ({"prompt": "x", "seed": "123"}, "seed: must be a whole number"),
        ({"prompt": "x", "seed": 123.0}, "seed: must be a whole number"),
        ({"prompt": "x", "seed": True}, "seed: must be a whole number"),
        ({"prompt": "x", "magic_prompt": "on"}, "magic_prompt: must be 'AUTO', 'ON' or 'OFF', not 'on'"),
        (
            {"prompt": "x", "style_codes": ["12345678", "XYZ"]},
            "style_codes: [1] must be 8 hexadecimal digits",
        ),
        (
            {"prompt": "x", "style_codes": ["12345678"], "style_reference_images": ["a.png"]},
            "style_codes and style_reference_images cannot be used together",
        ),
        ({"prompt": "x", "style_reference_images": ["a.png"] * 5}, "must hold at most 4 images"),
        (
            {"prompt": "x", "style_reference_images": ["http://example.com/a.png"]},
            "must be an https:// URL or a key in the input bucket",
        ),
        (
            {"prompt": "x", "style_reference_images": ["https://169.254.169.254/latest/meta-data"]},
            "must be a public address, not 169.254.169.254",
        ),
        ({"prompt": "x", "style_reference_images": ["https://localhost/a.png"]}, "not localhost"),
        ({"prompt": "x", "color_palette": {"name": "NEON"}}, "color_palette.name: must be one of EMBER"),
        ({"prompt": "x", "color_palette": {}}, 'give either "name"'),
        (
            {"prompt": "x", "color_palette": {"members": []}},
            "color_palette.members: must hold 1 to 8 colours",
        ),
        (
            {"prompt": "x", "color_palette": {"members": [{"color_hex": "red"}]}},
            "color_palette.members[0].color_hex: must look like #rrggbb",
        ),
        (
            {"prompt": "x", "color_palette": {"members": [{"color_hex": "#ff0000", "color_weight": 2}]}},
            "color_palette.members[0].color_weight: must be between 0.05 and 1.0",
        ),
        ({"prompt": "x", "metadata": {"sku": 12}}, "metadata.sku: must be a string"),
        ({"prompt": "x", "metadata": {"source-key": "x"}}, "is written by Backdrop itself"),
        ({"prompt": "x", "metadata": {"bad key": "x"}}, "must be ASCII letters, digits"),
        ({"prompt": "x", "metadata": {"SKU": "a", "sku": "b"}}, "key 'sku' is given twice"),
    ],
)
def test_each_rule_names_its_field(document, message: str):
    assert message in rejection(document)


def test_unknown_field_is_named_with_a_suggestion_and_the_allowed_fields():
    message = rejection({"prompt": "x", "rendering_sped": "TURBO"})
    assert message.startswith("rendering_sped: unknown field (did you mean 'rendering_speed'?)")
    assert "allowed fields: prompt, rendering_speed, magic_prompt, seed" in message


def test_unknown_nested_field_lists_the_allowed_nested_fields():
    message = rejection(
        {"prompt": "x", "color_palette": {"members": [{"color_hex": "#000000", "weight": 1}]}}
    )
    assert "color_palette.members[0].weight: unknown field" in message
    assert "allowed fields: color_hex, color_weight" in message


def test_thousands_of_problems_list_the_first_ten_and_count_the_rest():
    document = {"prompt": "x", **{f"f{index}": 1 for index in range(5000)}}
    message = rejection(document)
    assert message.count("unknown field") == 10
    assert message.endswith("and 4,990 more problems")


def test_every_problem_is_reported_at_once():
    message = rejection({"prompt": "", "seed": 5})
    assert "prompt:" in message
    assert "seed:" in message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{bad", "not valid JSON"),
        (b'{"prompt": "a", "prompt": "b"}', "field 'prompt' is given twice"),
        (b'{"prompt": "a", "seed": NaN}', "NaN is not a JSON number"),
        (b"[1, 2]", "must be a JSON object, not a list"),
        (b'"just a prompt"', "must be a JSON object, not a string"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 60_000, "nested too deeply"),
        (b'{"prompt": "' + b"x" * 70_000 + b'"}', "the limit is 65,536"),
    ],
)
def test_malformed_documents_are_rejected_clearly(raw: bytes, message: str):
    assert message in rejection(raw)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"prompt": "a", "variants": []}, "variants: must hold 1 to 8 variants, not 0"),
        ({"prompt": "a", "variants": [{}] * 9}, "variants: must hold 1 to 8 variants, not 9"),
        ({"prompt": "a", "variants": [{"prompt": None}]}, "variants[0].prompt: must be a string"),
        ({"prompt": "a", "variants": [{"prompt": "  "}]}, "variants[0].prompt: must not be empty"),
        ({"prompt": "a", "variants": [{"seed": 5}]}, "variants[0].seed: must be between 100 and 999999"),
        ({"prompt": "a", "variants": [{"metadata": {}}]}, "variants[0].metadata: unknown field"),
        ({"prompt": "a", "variants": [{"rendering_speed": None}]}, "variants[0].rendering_speed: must be"),
        (
            {
                "prompt": "a",
                "style_codes": ["0A1B2C3D"],
                "variants": [{}, {"style_reference_images": ["x.png"]}],
            },
            "variants[1]: style_codes and style_reference_images cannot be used together",
        ),
    ],
)
def test_every_variant_is_checked_before_any_call(document, message):
    assert message in rejection(document)


def test_a_variant_overrides_only_what_it_gives_and_null_means_none():
    sidecar = parse(
        {
            "prompt": "counter",
            "seed": 200,
            "color_palette": {"name": "EMBER"},
            "variants": [{"prompt": "beach", "seed": None, "color_palette": None}],
        }
    )
    first = sidecar.variant(1)
    assert (first.prompt, first.seed, first.color_palette, first.rendering_speed) == (
        "beach",
        None,
        None,
        "DEFAULT",
    )


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({f"k{n}": "v" for n in range(11)}, "at most 10 tags"),
        ({"aws:created": "x"}, "'aws:created': tag keys starting with 'aws:' are reserved"),
        ({"": "x"}, "a tag key must have 1 to 128 characters"),
        ({"k" * 129: "x"}, "a tag key must have 1 to 128 characters"),
        ({"sku": "v" * 257}, "a tag value must have at most 256 characters"),
        ({"sku": "A#1"}, "S3 tags take letters, digits, spaces and + - = . _ : / @ only"),
        ({"sku": 7}, "tags.sku: must be a string"),
    ],
)
def test_tags_follow_s3s_rules_before_any_call(tags, message):
    assert message in rejection({"prompt": "a", "tags": tags})


def test_tags_in_any_script_with_s3s_punctuation_are_taken():
    tags = {"Kategorie": "Schuhe/Größe 42", "campaign": "spring+2027 @shop:main=1_a-b.c"}
    assert parse({"prompt": "a", "tags": tags}).tags == tags
