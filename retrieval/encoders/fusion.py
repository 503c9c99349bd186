"""Early fusion: weighted concatenation of L2-normalised modality vectors.

``fusion:image=0.5,text=0.5`` fuses the ``image`` and ``text`` vectors that other
encoders of the same run fill. The fused vector is ``concat(sqrt(w_i) * v_i)``,
renormalised, so its cosine is the weighted sum of the modality cosines when both
sides have every modality. A missing modality contributes zeros.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from retrieval.encoders.base import Encoded, Vector, VectorSpec, l2_normalize, register_encoder
from retrieval.errors import UsageError
from retrieval.types import Product


class FusionEncoder:
    """Combines vectors filled by other encoders; ``bind`` it to their specs first."""

    derived = True

    def __init__(self, weights: dict[str, float], name: str = "fused") -> None:
        if len(weights) < 2:
            raise UsageError("fusion needs at least two vectors, e.g. fusion:image=0.5,text=0.5")
        if any(w <= 0 for w in weights.values()):
            raise UsageError("fusion weights must be positive")
        self.weights = weights
        self.name = name
        self.spec = "fusion"
        self._sizes: dict[str, int] | None = None

    def bind(self, available: Sequence[VectorSpec]) -> None:
        """Look up the sizes of the source vectors among the run's other encoders."""
        known = {v.name: v for v in available}
        sizes = {}
        for name in self.weights:
            spec = known.get(name)
            if spec is None or spec.sparse:
                dense = sorted(v.name for v in available if not v.sparse)
                raise UsageError(
                    f"fusion source {name!r} is not a dense vector of this run; have: {', '.join(dense)}"
                )
            sizes[name] = spec.size
        self._sizes = sizes

    def vectors(self) -> list[VectorSpec]:
        if self._sizes is None:
            raise RuntimeError("FusionEncoder.bind() must run before vectors()")
        return [VectorSpec(self.name, sum(self._sizes.values()))]

    def combine(self, vectors: dict[str, list[Vector | None]], n: int) -> list[Vector | None]:
        """Fuse the source vectors of ``n`` products (None where every source is missing)."""
        assert self._sizes is not None
        out: list[Vector | None] = []
        for i in range(n):
            parts, present = [], False
            for name, size in self._sizes.items():
                vec = vectors[name][i]
                if vec is None:
                    parts.append(np.zeros(size, dtype=np.float32))
                else:
                    present = True
                    parts.append(math.sqrt(self.weights[name]) * l2_normalize(vec))
            out.append(l2_normalize(np.concatenate(parts)) if present else None)
        return out

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        raise RuntimeError("fusion combines other encoders' vectors; use combine()")


@register_encoder("fusion")
def _fusion(model: str | None = None, name: str = "fused", **weights: str) -> FusionEncoder:
    try:
        parsed = {k: float(v) for k, v in weights.items()}
    except ValueError as exc:
        raise UsageError(f"fusion weights must be numbers: {weights}") from exc
    return FusionEncoder(parsed, name=name)
