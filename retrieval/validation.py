"""One validation layer for the files a user can hand-edit: ``matcher.json``, the
rerankers' sidecars (``MODEL.txt.json``, ``search_reranker.json``), the TOML config.

Each file's shape is a pydantic model built on ``Strict``: exact types (no ``"3"`` for 3,
no ``true`` for 1), ranges (``Field(ge=..., le=...)``), finite numbers only (NaN and
infinities refused, in the JSON text and in the values), and no unknown keys (the nearest
known key is named). ``read_json`` reads such a file (bad UTF-8, bad JSON, NaN tokens and
nesting too deep for the parser are one line), ``validated`` checks it: a failure is a
``UsageError`` of one line naming the file and the key, never a traceback.
"""

from __future__ import annotations

import difflib
import json
import math
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from retrieval.errors import UsageError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """The base of every hand-editable file's model: exact types, finite numbers, no
    unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def read_json(path: str | Path, what: str) -> Any:
    """The JSON value of the file ``path`` (``what`` names it in errors: "matcher file").

    A missing or unreadable file, bad UTF-8, bad JSON and nesting too deep to parse are
    one-line ``UsageError``s naming the file. The tokens ``NaN`` / ``Infinity`` (which
    Python's json accepts) are read as floats for the model to refuse with their key
    (``Strict`` numbers are finite; free-form tables are checked by ``finite_json``)."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"{what} not found: {p}") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{p} is a folder, not a {what}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {what} {p}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{p} is not a {what} (not UTF-8 text: {exc.reason})") from exc
    return parse_json(text, p, what)


def parse_json(text: str, where: str | Path, what: str) -> Any:
    """``json.loads`` of a file's text with ``read_json``'s one-line errors."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise UsageError(f"{where} is not a {what} (JSON nested too deeply)") from exc
    except ValueError as exc:
        raise UsageError(f"cannot read {where}: not a {what} (bad JSON: {exc})") from exc


def finite_json(value: Any) -> Any:
    """``value`` (a free-form JSON table: notes, info) if it holds no NaN or infinity;
    else a ValueError (a model's validator turns it into the key's one line)."""
    stack = [value]
    while stack:  # no recursion: a table nested deep is walked like a flat one
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"holds {item!r}: only finite numbers")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def one_of(value: str, choices: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``choices``; else a ValueError naming ``what`` (a model's
    validator turns it into the key's one line)."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}")
    return value


def validated(model: type[M], data: Any, where: str | Path) -> M:
    """``data`` checked against ``model``; the first fault is one line naming ``where``
    (the file) and the key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UsageError(error_line(exc, model, where)) from None
    except RecursionError as exc:  # a value nested past the interpreter's limit
        raise UsageError(f"{where}: nested too deeply") from exc


def error_line(exc: ValidationError, model: type[BaseModel], where: str | Path) -> str:
    """One line for the first error of a pydantic ``ValidationError``."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first.get("loc") or ())
    key = key_path(loc)
    kind = first.get("type", "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if kind == "extra_forbidden":
        known = field_names(model, loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(known)}"
        return f"{where}: unknown key {key}{hint}{more}"
    msg = str(first.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if msg.startswith("Input should"):
        msg = "should" + msg[len("Input should") :]
    if kind == "missing":
        line = f"{key} is missing"
    elif kind in ("value_error", "assertion_error"):  # our validators' own sentences
        line = f"{key}{' ' if msg.startswith('must ') else ': '}{msg}" if key else msg
    else:
        line = f"{key} {msg}, not {show(first.get('input'))}" if key else msg
    return f"{where}: {line}{more}"


def key_path(loc: tuple[Any, ...]) -> str:
    """``("rules", 0, "inb")`` -> ``rules[0].inb``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def field_names(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (for "did you mean")."""
    hint: Any = model
    for part in loc:
        hint = _inner(hint)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            field = hint.model_fields.get(str(part))
            if field is None:
                return []
            hint = field.annotation
        else:
            args = typing.get_args(hint)
            hint = args[-1] if args else Any
    hint = _inner(hint)
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return [f.alias or name for name, f in hint.model_fields.items()]
    return []


def _inner(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def show(value: Any) -> str:
    """A short repr of a bad value (at most 40 characters, one line)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = [
    "Strict",
    "error_line",
    "field_names",
    "finite_json",
    "one_of",
    "parse_json",
    "read_json",
    "validated",
]
