"""Registries keyed by exact names: encoders, rerankers and any later component kind.

A decorator registers a factory ``factory(model, **options)``; ``build`` parses a
``KIND[:MODEL][,key=value...]`` spec, calls the factory and stamps the spec on the
result. An unknown kind is an error that lists the known ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
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
