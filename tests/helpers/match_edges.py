"""Edges for the match tests: a hand-made graph of six listings (``E``) and a small
grouped catalogue with every pair an edge (``catalogue_edges``)."""

from __future__ import annotations

import numpy as np

from retrieval.types import Product
from search.match.edges import MEAN, Edges, score_edges
from search.match.edgeset import EdgeSet
from search.match.vectors import build_store


def edges(rows: list[tuple[int, int, float, float]]) -> Edges:
    """Edges from (src, dst, text cosine, sparse cosine); the mean is their average."""
    src = np.array([r[0] for r in rows])
    dst = np.array([r[1] for r in rows])
    text = np.array([r[2] for r in rows], dtype=np.float32)
    sparse = np.array([r[3] for r in rows], dtype=np.float32)
    return Edges(src, dst, {"text": text, "sparse": sparse, MEAN: (text + sparse) / 2})


# 0~1 are the same product (high text, high sparse); 2~3 share a model code only
# (sparse high, text low); 4 is alone and its nearest (5) is weak.
E = edges(
    [
        (0, 1, 0.95, 0.90),
        (1, 0, 0.95, 0.90),
        (2, 3, 0.40, 0.85),
        (3, 2, 0.40, 0.85),
        (4, 5, 0.50, 0.30),
        (5, 4, 0.50, 0.30),
        (0, 2, 0.60, 0.20),
    ]
)


def catalogue_edges(groups: int = 12, size: int = 3) -> EdgeSet:
    """An edge set of ``groups`` groups (random unit vectors, members close) with all
    pairs as edges, scored as stage 1 scores them."""
    rng = np.random.default_rng(0)
    products, raw = [], []
    for g in range(groups):
        centre = rng.normal(size=8)
        for m in range(size):
            products.append(Product(f"p{g}-{m}", f"item {g} model x{g}{m % 2}", group=f"g{g}"))
            raw.append({"text": (centre + 0.3 * rng.normal(size=8)).astype(np.float32)})
    store = build_store([p.id for p in products], raw, ["text"])
    n = len(products)
    src, dst = np.nonzero(~np.eye(n, dtype=bool))
    es = EdgeSet(None, "c", products, store, np.arange(n), {"text": 1.0}, 4)  # type: ignore[arg-type]
    es.edges = score_edges(store, src, dst, es.weights)
    return es
