"""Key rules: kinds, sidecar names, output keys, metadata encoding."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from backdrop_fn import keys


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("a.jpg", keys.KeyKind.IMAGE),
        ("a.JPEG", keys.KeyKind.IMAGE),
        ("deep/er/a.Png", keys.KeyKind.IMAGE),
        ("a.webp", keys.KeyKind.IMAGE),
        ("a.jpg.json", keys.KeyKind.SIDECAR),
        ("a.json", keys.KeyKind.SIDECAR),
        ("a.gif", keys.KeyKind.IGNORED),
        ("folder/", keys.KeyKind.IGNORED),
        ("folder.jpg/", keys.KeyKind.IGNORED),
    ],
)
def test_classify(key: str, kind: keys.KeyKind):
    assert keys.classify(key) is kind


def test_sidecar_candidates_in_order_of_precedence():
    assert keys.sidecar_candidates("shop/shoe-1.jpg") == ("shop/shoe-1.jpg.json", "shop/shoe-1.json")


def test_images_of_a_full_name_sidecar_and_of_a_stem_sidecar():
    assert keys.image_places_for_sidecar("shop/a.jpg.json") == ("shop/a.jpg", "shop/a.jpg.")
    assert keys.image_places_for_sidecar("shop/a.json") == (None, "shop/a.")
    assert keys.may_own_sidecar("shop/a.png", "shop/a.json")
    assert not keys.may_own_sidecar("shop/a.b.png", "shop/a.json")
    assert not keys.may_own_sidecar("shop/a.txt", "shop/a.json")


@pytest.mark.parametrize(
    ("prefix", "key", "ext", "expected"),
    [
        ("", "shop/shoe-1.jpg", "png", "shop/shoe-1.png"),
        ("out/", "shop/shoe-1.JPEG", "jpg", "out/shop/shoe-1.jpg"),
        ("", "a.b.webp", "webp", "a.b.webp"),
    ],
)
def test_output_key(prefix: str, key: str, ext: str, expected: str):
    assert keys.output_key(prefix, key, ext) == expected


@pytest.mark.parametrize("value", ["plain ascii 100%", "shop/a b.jpg"])
def test_printable_ascii_metadata_is_kept_as_it_is(value: str):
    assert keys.metadata_value(value) == value


@pytest.mark.parametrize("value", ["schuh ü.jpg", "line\nbreak", "100% über", "日本語", "tab\t"])
def test_other_metadata_is_percent_encoded_and_decodes_exactly(value: str):
    encoded = keys.metadata_value(value)
    assert encoded.isascii()
    assert encoded.isprintable()
    assert " " not in encoded
    assert unquote(encoded) == value
