"""Neighbourhood blending (Shopee 1st place's INB): a listing's vector becomes the
similarity-weighted sum of itself and its neighbours over a threshold, renormalised;
the index is searched again with the blended vectors, and every edge is rescored on
them. One to three rounds: each pulls a group's listings closer together.

Dense vectors are blended and searched again (in batches); sparse rows are blended
too, so their cosines follow, while their candidates come from the previous round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from search.match.edges import Edges, score_edges
from search.match.vectors import StoredVectors

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


def neighbour_weights(edges: Edges, score: str, threshold: float, n: int) -> object:
    """The n x n sparse blending matrix: 1 on the diagonal, the score on kept edges."""
    from scipy import sparse

    s = edges.sims[score]
    keep = s >= threshold
    rows = np.r_[np.arange(n), edges.src[keep]]
    cols = np.r_[np.arange(n), edges.dst[keep]]
    vals = np.r_[np.ones(n, dtype=np.float32), np.clip(s[keep], 0.0, None)]
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float32)


def blend_store(store: StoredVectors, weights: object) -> StoredVectors:
    """Every vector of every listing replaced by its weighted neighbourhood, renormalised."""
    from scipy import sparse

    out = StoredVectors(list(store.ids), present=dict(store.present))
    for name, mat in store.dense.items():
        mixed = np.asarray(weights @ mat, dtype=np.float32)  # type: ignore[operator]
        out.dense[name] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
    for name, mat in store.sparse.items():
        mixed = sparse.csr_matrix(weights @ mat)  # type: ignore[operator]
        norms = np.sqrt(np.asarray(mixed.multiply(mixed).sum(axis=1)).ravel())
        inv = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        out.sparse[name] = sparse.diags(inv).dot(mixed).tocsr()
    out.raw = [
        {**raw, **{name: out.dense[name][i] for name in out.dense if name in raw}}
        for i, raw in enumerate(store.raw)
    ]
    return out


class Searched(Protocol):
    """What blending reads of an edge set: its stored vectors, its query rows, the
    weights of the mean, and a search of the index for those rows with other vectors."""

    store: StoredVectors
    queries: np.ndarray
    weights: dict[str, float]

    def candidates(
        self,
        store: StoredVectors,
        names: list[str],
        vectors: list[dict[str, Any]] | None = None,
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


def blend_rounds(
    searched: Searched,
    edges: Edges,
    rounds: int,
    score: str,
    threshold: float,
    progress: Progress | None = None,
) -> Edges:
    """``rounds`` rounds of blending from the stored vectors and their ``edges``, each
    searching the index again with the dense blended vectors (``searched.candidates``:
    the same query rows, filters and gallery); returns the edges rescored on the last
    round's blended vectors."""
    store = searched.store
    for r in range(rounds):
        store = blend_store(store, neighbour_weights(edges, score, threshold, len(store)))
        src, dst = edges.src, edges.dst
        if store.dense:
            vecs = [store.raw[i] for i in searched.queries]
            s2, d2 = searched.candidates(store, list(store.dense), vecs, progress)
            keys = np.unique(np.r_[src * len(store) + dst, s2 * len(store) + d2])
            src, dst = keys // len(store), keys % len(store)
        edges = score_edges(store, src, dst, searched.weights)
        log.info("INB round %d: %d edges", r + 1, len(edges))
    return edges
