"""The viewer's model cache: a few models at most, and local models only from
``--models-dir``.

A long-lived viewer builds each encoder and reranker once, but a POST naming model
after model (or one model with ``batch_size=1``, ``=2``, ...) must not grow it without
end: rerankers live in a least-recently-used cache of ``max_rerankers`` entries, keyed
by what changes the model (kind, the model's real path, the options that change its
weights or scores), not by options that only change how it runs (``RUNTIME_OPTIONS``).
Any part of a reranker spec that names an existing file or folder must lie inside one
of the ``models_dirs``; with none given, only hub names are accepted.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.registry import int_option
from retrieval.types import ComponentSpec
from search.query import ModelCache

log = logging.getLogger(__name__)
MAX_RERANKERS = 3
MAX_ENCODERS = 8
# Options that change how a model runs, not what it scores: a new value reuses the model.
RUNTIME_OPTIONS = ("batch_size", "num_threads")
MAX_RUNTIME_OPTION = 4096


def _real(path: str) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


class ViewerModels(ModelCache):
    """Encoders and rerankers for the viewer, bounded and confined to ``models_dirs``."""

    def __init__(
        self,
        models_dirs: tuple[Path, ...] = (),
        max_rerankers: int = MAX_RERANKERS,
        max_encoders: int = MAX_ENCODERS,
    ) -> None:
        super().__init__()
        self.models_dirs = tuple(_real(str(d)) for d in models_dirs)
        self.max_rerankers = max_rerankers
        self.max_encoders = max_encoders
        self._encoders: OrderedDict[str, Any] = OrderedDict()
        self._rerankers: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    # -- confinement ---------------------------------------------------------------
    def _check_path(self, value: str) -> str:
        """``value`` as it should be loaded: an existing path becomes its real path, and
        must lie inside a models dir; anything else (a hub name) is returned as is."""
        try:
            exists = bool(value) and os.path.lexists(os.path.expanduser(value))
        except (ValueError, OSError):  # a NUL byte, a name too long
            raise UsageError("bad model path") from None
        if not exists:
            return value
        real = _real(value)
        if not any(real == d or d in real.parents for d in self.models_dirs):
            where = (
                "outside --models-dir " + ", ".join(str(d) for d in self.models_dirs)
                if self.models_dirs
                else "refused: start `search serve --models-dir DIR` to load local models"
            )
            raise UsageError(f"model path {value!r} {where}")
        return str(real)

    def _confine(self, spec: ComponentSpec, depth: int = 0) -> ComponentSpec:
        """The spec with every path checked and made real (``with=`` stacks included)."""
        if depth > 3:
            raise UsageError("reranker specs nest too deeply")
        from rerank.stacking import parse_with

        options = {}
        for key, value in spec.options.items():
            if key == "with":
                inner = [
                    self._confine(ComponentSpec.parse(s), depth + 1) for s in parse_with(value)
                ]
                value = "+".join(str(s).replace(",", ";") for s in inner)
            elif value.startswith(("/", "~", ".")) or "/" in value or os.sep in value:
                value = self._check_path(value)
            options[key] = value
        model = self._check_path(spec.model) if spec.model else None
        return ComponentSpec(spec.kind, model, options)

    # -- caches --------------------------------------------------------------------
    def encoder(self, spec: str, build: Any) -> Any:
        """The encoder a spec names (each built once, LRU-bounded)."""
        with self._lock:
            encoder = self._encoders.get(spec)
            if encoder is not None:
                self._encoders.move_to_end(spec)
        if encoder is None:
            encoder = build(spec)
            self._put(self._encoders, spec, encoder, self.max_encoders)
        return encoder

    def reranker(self, spec: str) -> Any:
        """The reranker a spec names: cached by what changes the model, LRU-bounded.
        Runtime options (``RUNTIME_OPTIONS``) apply to this query only."""
        from rerank.base import build_reranker

        parsed = self._confine(ComponentSpec.parse(spec))
        runtime = {}
        for name in RUNTIME_OPTIONS:
            if name in parsed.options:
                runtime[name] = int_option(name, parsed.options[name], minimum=1)
                if runtime[name] > MAX_RUNTIME_OPTION:
                    raise UsageError(f"option {name} must be at most {MAX_RUNTIME_OPTION}")
        kept = {k: v for k, v in sorted(parsed.options.items()) if k not in RUNTIME_OPTIONS}
        key = str(ComponentSpec(parsed.kind, parsed.model, kept))
        with self._lock:
            entry = self._rerankers.get(key)
            if entry is not None:
                self._rerankers.move_to_end(key)
        if entry is None:
            model = build_reranker(ComponentSpec(parsed.kind, parsed.model, kept))
            defaults = {n: getattr(model, n) for n in RUNTIME_OPTIONS if hasattr(model, n)}
            entry = (model, defaults)
            self._put(self._rerankers, key, entry, self.max_rerankers)
        model, defaults = entry
        for name, value in defaults.items():  # queries run one at a time (the index lock)
            setattr(model, name, runtime.get(name, value))
        return model

    def _put(self, cache: OrderedDict[str, Any], key: str, model: Any, limit: int) -> None:
        with self._lock:
            cache[key] = model
            cache.move_to_end(key)
            while len(cache) > limit:
                dropped, _ = cache.popitem(last=False)
                log.info("model cache full: dropped %s", dropped)

    def sizes(self) -> dict[str, int]:
        """How many encoders and rerankers are held now."""
        with self._lock:
            return {"encoders": len(self._encoders), "rerankers": len(self._rerankers)}
