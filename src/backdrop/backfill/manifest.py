"""A manifest: one row an image, naming its key and giving its sidecar's fields.

``.jsonl``: one JSON object a line, ``{"key": "shop/shoe-1.jpg", "prompt": "…", "seed": 4242}``:
``key`` and the sidecar's own fields, as the sidecar would hold them.

``.csv``: a header row, then one row an image. Column ``key``, and a column a sidecar field. An
empty cell leaves its field out. ``seed`` is a whole number; ``style_codes`` and
``style_reference_images`` are lists separated by ``|`` (or a JSON list); ``color_palette`` is a
preset name (or a JSON object); ``metadata`` is a JSON object, and a column ``metadata.NAME``
gives one entry of it, so that a spreadsheet's ``sku`` column can be ``metadata.sku``.

Rows are read one at a time: a manifest of millions of rows is never held. What a row's fields
say is judged later by the function's own sidecar parser, with its messages; here only what makes
a row unreadable is found (bad JSON, no key). A column that is no sidecar field refuses the whole
manifest, naming it, before anything is read from the bucket: a typo must never be ignored.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from backdrop_fn.errors import InvalidSidecar
from backdrop_fn.sidecar import Sidecar
from backdrop_fn.sidecar_json import load_json

KEY = "key"
SIDECAR_FIELDS = tuple(Sidecar.model_fields)
_METADATA_COLUMN = "metadata."
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")


class ManifestError(ValueError):
    """The manifest as a whole cannot be used: its kind, or its columns. The message says why."""


@dataclass(frozen=True)
class Row:
    """One row: its image key and sidecar fields, or the reason it cannot be read."""

    line: int
    key: str | None
    fields: dict[str, Any] | None = None
    problem: str | None = None

    def sidecar_body(self) -> bytes:
        """The sidecar this row describes, as the JSON written beside its image."""
        return (json.dumps(self.fields, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def read_rows(path: Path) -> Iterator[Row]:
    """The manifest's rows, in order. Its kind and its header are checked now, before any row is
    read: ManifestError says what is wrong with the file as a whole."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ManifestError(f"{path.name}: a manifest is a .csv or a .jsonl file")
    try:
        text = path.open(encoding="utf-8-sig", newline="" if suffix == ".csv" else None)
    except OSError as error:
        raise ManifestError(f"{path}: {error.strerror}") from None
    if suffix != ".csv":
        return _jsonl_rows(text)
    reader = csv.DictReader(text)
    try:
        _check_columns(reader.fieldnames or [], path)
    except (ManifestError, UnicodeDecodeError, csv.Error):
        text.close()
        raise
    return _csv_rows(text, reader)


def _jsonl_rows(text: TextIO) -> Iterator[Row]:
    with text:
        for number, line in enumerate(text, start=1):
            if line.strip():
                yield _jsonl_row(number, line)


def _jsonl_row(number: int, line: str) -> Row:
    try:
        data = load_json(line)
    except InvalidSidecar as error:
        return Row(number, None, problem=error.message)
    if not isinstance(data, dict):
        return Row(number, None, problem="a row must be a JSON object")
    key = data.pop(KEY, None)
    if not isinstance(key, str) or not key:
        return Row(number, None, problem=f'a row needs "{KEY}": the image\'s key')
    return Row(number, key, fields=data)


def _csv_rows(text: TextIO, reader: csv.DictReader[str]) -> Iterator[Row]:
    with text:
        for values in reader:
            yield _csv_row(reader.line_num, values)


def _check_columns(columns: Sequence[str], path: Path) -> None:
    if KEY not in columns:
        raise ManifestError(f"{path.name}: no {KEY!r} column (the image's key) in the header row")
    for column in columns:
        if column == KEY or column in SIDECAR_FIELDS:
            continue
        if column.startswith(_METADATA_COLUMN) and len(column) > len(_METADATA_COLUMN):
            continue
        close = difflib.get_close_matches(column, SIDECAR_FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = ", ".join((KEY, *SIDECAR_FIELDS, _METADATA_COLUMN + "NAME"))
        raise ManifestError(
            f"{path.name}: column {column!r} is not a sidecar field{hint}; columns: {allowed}"
        )


def _csv_row(line: int, values: dict[str | Any, Any]) -> Row:
    key = values.get(KEY) or None
    if None in values:  # csv puts cells beyond the header under None
        return Row(line, key, problem="the row has more cells than the header has columns")
    if key is None:
        return Row(line, None, problem=f"the {KEY!r} cell (the image's key) is empty")
    fields: dict[str, Any] = {}
    try:
        for column, cell in values.items():
            if column != KEY and cell:
                _set_field(fields, column, cell)
    except InvalidSidecar as error:
        return Row(line, key, problem=error.message)
    return Row(line, key, fields=fields)


def _set_field(fields: dict[str, Any], column: str, cell: str) -> None:
    value: Any
    if column.startswith(_METADATA_COLUMN):
        column, value = "metadata", {column[len(_METADATA_COLUMN) :]: cell}
    else:
        convert = _CELLS.get(column)
        value = convert(column, cell) if convert else cell
    if column == "metadata" and isinstance(value, dict) and isinstance(fields.get(column), dict):
        value = {**fields[column], **value}  # a metadata column and metadata.NAME columns together
    fields[column] = value


def _whole_number(column: str, cell: str) -> Any:
    # Anything else stays text, for the sidecar parser to say what the field must be.
    return int(cell) if _WHOLE_NUMBER.fullmatch(cell.strip()) else cell


def _listed(column: str, cell: str) -> Any:
    if cell.lstrip().startswith("["):
        return _json(column, cell)
    return [part.strip() for part in cell.split("|")]


def _palette(column: str, cell: str) -> Any:
    return _json(column, cell) if cell.lstrip().startswith("{") else {"name": cell.strip()}


def _json(column: str, cell: str) -> Any:
    try:
        return load_json(cell)
    except InvalidSidecar as error:
        raise InvalidSidecar(f"{column}: {error.message}") from None


_CELLS: dict[str, Callable[[str, str], Any]] = {
    "seed": _whole_number,
    "style_codes": _listed,
    "style_reference_images": _listed,
    "color_palette": _palette,
    "metadata": _json,
}
