"""A pydantic validation error in words a sidecar's author reads: one ``field: what is wrong`` each.

Every problem names its field, and an unknown field lists the allowed ones with the likely
intended name, because a typo silently ignored would cost the user a wrong image.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

_TYPE_WORDS = {
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "missing": "is required",
}


MAX_PROBLEMS_LISTED = 10


def described(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line per problem, ``field: what is wrong``, unknown fields with the allowed ones.

    The first few problems only: a sidecar of thousands of bad fields must still give a DLQ
    record that fits in one SQS message.
    """
    problems = []
    errors = exc.errors(include_url=False)
    for error in errors[:MAX_PROBLEMS_LISTED]:
        loc = error["loc"]
        where = format_loc(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append(_unknown_field(loc, model))
        elif kind in ("literal_error", "enum"):
            problems.append(f"{where}: must be {error['ctx']['expected']}, not {error['input']!r}")
        elif kind in ("value_error", "assertion_error"):
            message = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
            problems.append(at(loc, message))
        else:
            problems.append(f"{where}: {_TYPE_WORDS.get(kind, error['msg'])}")
    return listed(problems, total=len(errors))


def listed(problems: list[str], *, total: int | None = None) -> str:
    """The first few of ``total`` problems (all of ``problems`` unless given), ``; ``-separated."""
    total = len(problems) if total is None else total
    shown = problems[:MAX_PROBLEMS_LISTED]
    if total > len(shown):
        shown = [*shown, f"and {total - len(shown):,} more problems"]
    return "; ".join(shown)


def at(loc: tuple[int | str, ...], problem: str) -> str:
    """``field: what is wrong``, or the problem alone where no field is named."""
    where = format_loc(loc)
    return f"{where}: {problem}" if where else problem


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``color_palette.members[0].color_hex``: fields by name, list items by index."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _unknown_field(loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    """The unknown field, the known one it resembles, and all the fields allowed where it stands."""
    name = str(loc[-1])
    for part in loc[:-1]:
        if isinstance(part, str):  # a list index keeps the model of the list's items
            model = _model_in(model.model_fields[part].annotation) or model
    allowed = list(model.model_fields)
    guess = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    where = format_loc(loc)
    return f"{where}: unknown field{hint}; allowed fields: {', '.join(allowed)}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, inside ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for inner in typing.get_args(annotation):
        found = _model_in(inner)
        if found is not None:
            return found
    return None
