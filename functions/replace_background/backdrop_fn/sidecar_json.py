"""A sidecar's JSON text, read into Python values under the rules of docs/REFERENCE.md#the-sidecar.

``json.loads`` takes more than a sidecar may hold: a field given twice, ``NaN``, an integer too
long for Python to read (a bare ValueError past 4,300 digits), and a lone surrogate such as
``\\ud800`` (a string that cannot be encoded, which would fail far later). Each is refused
here, naming its field, before anything else uses the sidecar.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from backdrop_fn.errors import InvalidSidecar
from backdrop_fn.validation_messages import at, listed

_Loc = tuple[int | str, ...]


def load_json(text: str) -> Any:
    """The JSON value ``text`` holds, or InvalidSidecar naming each field JSON cannot carry here."""
    try:
        data = json.loads(
            text,
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
            parse_int=_integer,
        )
    except json.JSONDecodeError as exc:
        raise InvalidSidecar(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except _JsonRuleBroken as exc:
        raise InvalidSidecar(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidSidecar("not valid JSON: nested too deeply") from None
    problems = _problems(data)
    if problems:
        raise InvalidSidecar(listed(problems))
    return data


class _JsonRuleBroken(ValueError):
    pass


class _Unreadable:
    """A number JSON can spell but Python cannot hold; reported with its field once all is read."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _JsonRuleBroken(f"field {key!r} is given twice")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise _JsonRuleBroken(f"{name} is not a JSON number")


def _integer(text: str) -> int | _Unreadable:
    try:
        return int(text)
    except ValueError:  # past sys.get_int_max_str_digits()
        digits = len(text.lstrip("-"))
        limit = sys.get_int_max_str_digits()
        return _Unreadable(f"a number of {digits:,} digits is too long to read (at most {limit:,})")


def _problems(data: Any) -> list[str]:
    """Every unreadable number and lone surrogate, in document order, each with its field.

    Iterative: the document may be nested as deeply as ``json.loads`` allowed.
    """
    problems: list[str] = []
    pending: list[tuple[_Loc, Any]] = [((), data)]
    while pending:
        loc, value = pending.pop()
        if isinstance(value, _Unreadable):
            problems.append(at(loc, value.problem))
        elif isinstance(value, str):
            if (surrogate := _lone_surrogate(value)) is not None:
                problems.append(at(loc, f"must not contain a lone surrogate ({surrogate})"))
        elif isinstance(value, dict):
            for key in value:
                if (surrogate := _lone_surrogate(key)) is not None:
                    problems.append(at(loc, f"key {key!r} must not contain a lone surrogate ({surrogate})"))
            pending.extend(((*loc, _printable(key)), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend(((*loc, index), value[index]) for index in reversed(range(len(value))))
    return problems


def _lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text``, written as ``\\udXXX``; None when it encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"\\u{ord(text[exc.start]):04x}"
    return None


def _printable(key: str) -> str:
    """The key as a field name a message can carry: a lone surrogate as its ``\\udXXX`` escape."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")
