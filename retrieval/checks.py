"""Type and range checks of config values, from the dataclass annotations (``search.config``
checks every section with them; ``IndexConfig`` its ranges).

A TOML value of the wrong type (``k = "many"``, ``encoders = "text"``), not finite
(``blend = nan``, ``oversampling = inf``) or out of range (``k = 0``, ``batch_size =
100000000000000000000``) is a UsageError naming the key, never accepted and never a
traceback later on. The config's part of the validation layer of hand-edited files
(``retrieval.validation`` holds the JSON files' part: matcher, sidecars).
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError

# Upper bounds of counts: far above any real use, below what overflows an engine's u32/u64.
MAX_COUNT = 1_000_000
MAX_HITS = 100_000


def check_types(section: str, values: dict[str, Any], cls: type) -> None:
    """Every value fits the annotation of its field in the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        hint = hints.get(key, Any)
        if not fits(value, hint):
            raise UsageError(f"config {section}.{key} = {_show(value)}: expected {type_name(hint)}")
        if isinstance(value, float) and not math.isfinite(value):  # TOML reads nan and inf
            raise UsageError(f"config {section}.{key} = {_show(value)}: expected a finite number")


def check_range(name: str, value: int | float, lo: float, hi: float) -> None:
    """``lo <= value <= hi``, else a UsageError naming ``name``."""
    if not lo <= value <= hi:
        raise UsageError(f"{name} must be from {lo:g} to {hi:g}, not {_show(value)}")


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as TOML or a flag gives it) fits the type ``hint``."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if origin in (list, tuple, set, frozenset):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        item = args[0] if len(args) == 1 or origin is not tuple else Any
        return isinstance(value, (list, tuple)) and all(fits(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is Path:
        return isinstance(value, (str, Path))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # Literal and other forms: left to the dataclass


def type_name(hint: Any) -> str:
    """A readable name of a type hint: ``int``, ``list of str``, ``str or none``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(hint))
    if origin in (list, tuple, set, frozenset):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of {type_name(args[0])}" if args else "a list"
    if hint is type(None):
        return "none"
    if hint is Path:
        return "a path"
    return getattr(hint, "__name__", str(hint))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
