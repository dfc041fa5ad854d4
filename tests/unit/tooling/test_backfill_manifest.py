"""Backfill manifests: a .csv or .jsonl row becomes an image key and the sidecar the function will read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backdrop.backfill.manifest import ManifestError, Row, read_rows
from backdrop_fn.errors import InvalidSidecar
from backdrop_fn.sidecar import parse_sidecar


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_row_gives_typed_sidecar_fields(tmp_path: Path):
    path = write(
        tmp_path,
        "m.csv",
        "key,prompt,rendering_speed,seed,style_codes,color_palette,metadata.sku\n"
        "shop/shoe 1.jpg,on marble,TURBO,4242,1A2B3C4D|5E6F7A8B,PASTEL,SHOE-1\n",
    )
    (row,) = read_rows(path)
    assert row.key == "shop/shoe 1.jpg"
    assert row.fields == {
        "prompt": "on marble",
        "rendering_speed": "TURBO",
        "seed": 4242,
        "style_codes": ["1A2B3C4D", "5E6F7A8B"],
        "color_palette": {"name": "PASTEL"},
        "metadata": {"sku": "SHOE-1"},
    }
    assert parse_sidecar(row.sidecar_body()).seed == 4242  # what is written, the function reads


def test_csv_cells_may_hold_json_and_empty_cells_leave_fields_out(tmp_path: Path):
    path = write(
        tmp_path,
        "m.csv",
        "key,prompt,seed,color_palette,metadata,metadata.sku\n"
        'a.png,p,,"{""members"": [{""color_hex"": ""#112233""}]}","{""line"": ""summer""}",A-1\n',
    )
    (row,) = read_rows(path)
    assert row.fields == {
        "prompt": "p",
        "color_palette": {"members": [{"color_hex": "#112233"}]},
        "metadata": {"line": "summer", "sku": "A-1"},
    }


def test_a_seed_that_is_not_a_whole_number_is_left_for_the_sidecar_parser_to_refuse(tmp_path: Path):
    (row,) = read_rows(write(tmp_path, "m.csv", "key,prompt,seed\na.png,p,12.5\n"))
    with pytest.raises(InvalidSidecar, match="seed: must be a whole number"):
        parse_sidecar(row.sidecar_body())


def test_a_csv_column_that_is_no_sidecar_field_refuses_the_whole_manifest(tmp_path: Path):
    with pytest.raises(
        ManifestError, match=r"column 'sead' is not a sidecar field \(did you mean 'seed'\?\)"
    ):
        read_rows(write(tmp_path, "m.csv", "key,prompt,sead\na.png,p,4242\n"))


def test_a_csv_without_a_key_column_is_refused(tmp_path: Path):
    with pytest.raises(ManifestError, match="no 'key' column"):
        read_rows(write(tmp_path, "m.csv", "image,prompt\na.png,p\n"))


def test_unreadable_csv_rows_say_why_and_the_others_are_read(tmp_path: Path):
    path = write(
        tmp_path,
        "m.csv",
        "key,prompt,metadata\n,p,\nb.png,p,x,extra\nc.png,p,{broken\nd.png,p,\n",
    )
    rows = list(read_rows(path))
    assert [(row.line, row.key, row.problem is None) for row in rows] == [
        (2, None, False),
        (3, "b.png", False),
        (4, "c.png", False),
        (5, "d.png", True),
    ]
    assert "empty" in (rows[0].problem or "")
    assert "more cells" in (rows[1].problem or "")
    assert (rows[2].problem or "").startswith("metadata: not valid JSON")


def test_a_jsonl_row_is_the_key_and_the_sidecar_itself(tmp_path: Path):
    sidecar = {"prompt": "on marble", "seed": 4242, "metadata": {"sku": "S-1"}}
    path = write(tmp_path, "m.jsonl", json.dumps({"key": "shop/ü.webp", **sidecar}) + "\n\n")
    assert list(read_rows(path)) == [Row(1, "shop/ü.webp", fields=sidecar)]


def test_jsonl_rows_follow_the_sidecars_json_rules(tmp_path: Path):
    path = write(
        tmp_path,
        "m.jsonl",
        '{"key": "a.png", "prompt": "p", "prompt": "q"}\nnot json\n{"prompt": "no key"}\n[1, 2]\n',
    )
    problems = [(row.line, row.problem) for row in read_rows(path)]
    assert problems[0] == (1, "not valid JSON: field 'prompt' is given twice")
    assert str(problems[1][1]).startswith("not valid JSON")
    assert problems[2] == (3, 'a row needs "key": the image\'s key')
    assert problems[3] == (4, "a row must be a JSON object")


def test_a_manifest_of_another_kind_or_missing_is_refused(tmp_path: Path):
    with pytest.raises(ManifestError, match=r"\.csv or a \.jsonl"):
        read_rows(write(tmp_path, "m.xlsx", ""))
    with pytest.raises(ManifestError, match="No such file"):
        read_rows(tmp_path / "gone.csv")
