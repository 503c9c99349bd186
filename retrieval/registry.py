"""Registries keyed by exact names: encoders, rerankers and any later component kind.

A decorator registers a factory ``factory(model, **options)``; ``build`` parses a
``KIND[:MODEL][,key=value...]`` spec, calls the factory and stamps the spec on the
result. An unknown kind is an error that lists the known ones. ``int_option`` and
``choice_option`` turn a factory's string options into checked values, one rule for
every encoder and reranker.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from retrieval.errors import UsageError, unknown_name
from retrieval.types import ComponentSpec

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories of one component family (``what`` names it in errors)."""

    def __init__(self, what: str, lazy: dict[str, str] | None = None) -> None:
        self.what = what
        self._factories: dict[str, Callable[..., T]] = {}
        # kind -> module whose import registers it (imported on first use)
        self._lazy = dict(lazy or {})

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under the exact kind ``name``."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.what} kind {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return deco

    def kinds(self) -> list[str]:
        """Every known kind, registered or lazily importable."""
        return sorted(set(self._factories) | set(self._lazy))

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under the exact ``name`` (its module imported on first
        use); an unknown name is an error listing the known ones."""
        if name not in self._factories and name in self._lazy:
            importlib.import_module(self._lazy[name])
        factory = self._factories.get(name)
        if factory is None:
            raise unknown_name(self.what, name, self.kinds())
        return factory

    def build(self, spec: str | ComponentSpec) -> T:
        """Build the component a spec names."""
        parsed = spec if isinstance(spec, ComponentSpec) else ComponentSpec.parse(spec)
        factory = self.get(parsed.kind)
        try:
            built: Any = factory(parsed.model, **parsed.options)
        except TypeError as exc:
            raise UsageError(f"bad options for {self.what} {parsed.kind!r}: {exc}") from exc
        built.spec = str(parsed)
        return built


def int_option(
    name: str, value: str | int | None, *, default: int | None = None, minimum: int = 0
) -> int:
    """An integer factory option (options arrive as strings from a spec): ``default``
    when it is absent or blank (if a default is given); below ``minimum`` or not an
    integer is a UsageError."""
    if (value is None or value == "") and default is not None:
        return default
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"option {name}={value!r} is not an integer") from None
    if number < minimum:
        raise UsageError(f"option {name}={number} must be at least {minimum}")
    return number


def float_option(name: str, value: str | float, *, minimum: float = 0.0) -> float:
    """A finite number factory option, at least ``minimum``; anything else is a UsageError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"option {name}={value!r} is not a number") from None
    if not math.isfinite(number) or number < minimum:
        raise UsageError(f"option {name}={number} must be a finite number >= {minimum:g}")
    return number


def optional(parse: Callable[..., T], name: str, value: Any, **limits: Any) -> T | None:
    """``parse(name, value, **limits)`` (``int_option``, ``float_option``), or None where
    the option is absent (None): a factory option whose absence means "the model's own"."""
    return None if value is None else parse(name, value, **limits)


def choice_option(name: str, value: str, choices: Sequence[str]) -> str:
    """A lower-cased option that must be one of ``choices``."""
    value = value.strip().lower()
    if value not in choices:
        raise UsageError(f"option {name}={value!r}; expected one of {', '.join(choices)}")
    return value
