"""Candidate edges: each listing's K nearest per named vector, asked of the index in
batches with the listing's stored vectors, scored by calibrated similarities.

An edge (i, j) is directed: j was a candidate of i. Its scores are the cosine of every
named vector (``StoredVectors.pair_sims``) and their weighted mean (``MEAN``). RRF or
DBSF scores never reach the decision; the index only proposes candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.index.base import SearchRequest, VectorIndex
from retrieval.types import Hit
from search.match.vectors import StoredVectors

log = logging.getLogger(__name__)
Progress = Callable[[int], None]
MEAN = "mean"
CSLS = "csls:"  # prefix of a score with local scaling (see ``local_scaling``)
LOCAL_K = 10  # neighbours whose mean cosine is each listing's local density


@dataclass
class Edges:
    """Directed candidate edges over the rows of a ``StoredVectors``; ``sims`` by score name."""

    src: np.ndarray
    dst: np.ndarray
    sims: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.src)

    def keys(self, n: int) -> np.ndarray:
        """One int64 key per edge (src * n + dst), for lookups of the reverse edge."""
        return self.src.astype(np.int64) * n + self.dst.astype(np.int64)

    def select(self, mask: np.ndarray) -> Edges:
        """The edges where ``mask`` holds."""
        return Edges(self.src[mask], self.dst[mask], {k: v[mask] for k, v in self.sims.items()})


def search_candidates(
    index: VectorIndex,
    collection: str,
    store: StoredVectors,
    queries: np.ndarray,
    names: Sequence[str],
    k: int,
    *,
    allowed: np.ndarray | None = None,
    filters: Sequence[Mapping[str, str] | None] | None = None,
    vectors: Sequence[Mapping[str, object]] | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) rows of the union over ``names`` of each query row's top ``k``, self
    excluded; ``vectors`` overrides the query vectors (blended ones), ``allowed`` marks
    the rows a candidate may be (a gallery); ``filters`` is one payload filter per query."""
    row_of = {pid: i for i, pid in enumerate(store.ids)}
    src: list[int] = []
    dst: list[int] = []
    for start in range(0, len(queries), batch_size):
        rows = queries[start : start + batch_size]
        reqs: list[SearchRequest] = []
        owners: list[int] = []
        for qi, row in enumerate(rows):
            vecs = vectors[start + qi] if vectors is not None else store.raw[row]
            flt = dict(filters[start + qi]) if filters is not None and filters[start + qi] else None
            for name in names:
                vec = vecs.get(name)
                if vec is None:
                    continue
                reqs.append(
                    SearchRequest({name: vec}, name, k + 1, filter=flt, payload=["id"])  # type: ignore[dict-item]
                )
                owners.append(int(row))
        for row, hits in zip(owners, index.search(collection, reqs)):
            picked = pick_candidates(row, hits, row_of, allowed, k)
            src += [row] * len(picked)
            dst += picked
        if progress:
            progress(len(rows))
    return unique_pairs(src, dst, len(store))


def answered_candidates(
    store: StoredVectors,
    queries: np.ndarray,
    names: Sequence[str],
    k: int,
    answers: Sequence[Mapping[str, Sequence[Hit]]],
    *,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``search_candidates`` from answers the index already gave: per query row, each
    vector's ranked answer (at least ``k + 1`` deep or whole), read as far as the
    ``k + 1`` hits that search would have asked for."""
    row_of = {pid: i for i, pid in enumerate(store.ids)}
    src: list[int] = []
    dst: list[int] = []
    for row, answer in zip(queries, answers):
        for name in names:
            if store.raw[row].get(name) is None:
                continue
            picked = pick_candidates(int(row), answer[name][: k + 1], row_of, allowed, k)
            src += [int(row)] * len(picked)
            dst += picked
    return unique_pairs(src, dst, len(store))


def pick_candidates(
    row: int,
    hits: Sequence[Hit],
    row_of: Mapping[str, int],
    allowed: np.ndarray | None,
    k: int,
) -> list[int]:
    """The first ``k`` rows among a query row's hits: itself, listings outside the rows
    and rows not ``allowed`` passed over."""
    out: list[int] = []
    for h in hits:
        j = row_of.get(h.id)
        if j is None or j == row or (allowed is not None and not allowed[j]):
            continue
        out.append(j)
        if len(out) == k:
            break
    return out


def unique_pairs(src: list[int], dst: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) of the distinct pairs, ordered by (src, dst)."""
    pairs = np.unique(np.array(src, dtype=np.int64) * n + np.array(dst, dtype=np.int64))
    return pairs // n, pairs % n


def score_edges(
    store: StoredVectors,
    src: np.ndarray,
    dst: np.ndarray,
    weights: Mapping[str, float],
) -> Edges:
    """Per-vector cosines of every edge and their weighted mean (``MEAN``)."""
    edges = Edges(src.astype(np.int64), dst.astype(np.int64))
    for name in store.names:
        edges.sims[name] = store.pair_sims(name, edges.src, edges.dst)
    edges.sims[MEAN] = weighted_mean(edges.sims, weights)
    for name in [*store.names, MEAN]:
        edges.sims[CSLS + name] = local_scaling(edges, name, len(store))
    return edges


def local_scaling(edges: Edges, name: str, n: int, k: int = LOCAL_K) -> np.ndarray:
    """Cross-domain similarity local scaling (CSLS, Conneau et al. 2018) of a cosine:
    ``2 cos(i, j) - r_i - r_j``, r the mean cosine of a listing's ``k`` nearest. A
    listing in a dense corner of the catalogue (a hub: many near siblings) needs a
    higher cosine to match than one alone, with one threshold for all."""
    r, _, _ = top_stats(edges.src, edges.sims[name].astype(np.float64), n, k)
    r = np.nan_to_num(r, nan=0.0)
    return (2 * edges.sims[name] - r[edges.src] - r[edges.dst]).astype(np.float32)


def weighted_mean(sims: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted mean of the named similarity arrays (weights renormalised)."""
    total = sum(weights.values()) or 1.0
    out = np.zeros_like(next(iter(sims.values())), dtype=np.float32)
    for name, w in weights.items():
        out += np.float32(w / total) * sims[name]
    return out


def ranks(src: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The rank (1 = best) of each edge's score among its source's edges."""
    order = np.lexsort((-score, src))
    out = np.empty(len(src), dtype=np.int64)
    s = src[order]
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    pos = np.arange(len(s)) - np.repeat(starts, np.diff(np.r_[starts, len(s)]))
    out[order] = pos + 1
    return out


def reverse_index(edges: Edges, n: int) -> np.ndarray:
    """For each edge (i, j), the position of the edge (j, i), or -1 when j did not propose i."""
    keys = edges.keys(n)
    order = np.argsort(keys)
    rev = edges.dst.astype(np.int64) * n + edges.src.astype(np.int64)
    pos = np.searchsorted(keys[order], rev)
    pos = np.minimum(pos, len(keys) - 1) if len(keys) else pos
    found = len(keys) > 0 and True
    out = np.full(len(keys), -1, dtype=np.int64)
    if found:
        hit = keys[order][pos] == rev
        out[hit] = order[pos[hit]]
    return out


def nearest_mask(edges: Edges, score: str, keep: np.ndarray, floor: float) -> np.ndarray:
    """Each source's best edge by ``score`` where the source kept none and it reaches ``floor``."""
    s = edges.sims[score]
    order = np.lexsort((-s, edges.src))
    first = order[np.r_[True, edges.src[order][1:] != edges.src[order][:-1]]]
    has = np.zeros(int(edges.src.max()) + 1, dtype=bool)
    has[edges.src[keep]] = True
    pick = first[(~has[edges.src[first]]) & (s[first] >= floor)]
    out = np.zeros(len(edges), dtype=bool)
    out[pick] = True
    return out


def top_stats(src: np.ndarray, score: np.ndarray, n: int, k: int) -> tuple[np.ndarray, ...]:
    """Per row: mean and std of its ``k`` best edge scores, and its best score."""
    order = np.lexsort((-score, src))
    s, v = src[order], score[order]
    rank = ranks(src, score)[order]
    top = rank <= k
    cnt = np.bincount(s[top], minlength=n).astype(np.float64)
    tot = np.bincount(s[top], weights=v[top], minlength=n)
    sq = np.bincount(s[top], weights=v[top] ** 2, minlength=n)
    mean = np.divide(tot, cnt, out=np.full(n, np.nan), where=cnt > 0)
    var = np.divide(sq, cnt, out=np.full(n, np.nan), where=cnt > 0) - mean**2
    best = np.full(n, np.nan)
    first = rank == 1
    best[s[first]] = v[first]
    return mean, np.sqrt(np.clip(var, 0, None)), best


def list_margins(
    src: np.ndarray, dst: np.ndarray, value: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per edge (i, j): its value minus the best value among i's other edges, and minus
    the best among j's own edges other than (j, i): positive only where the edge is its
    end's single best. A missing value (NaN) counts as -1; an end without other edges
    gives NaN."""
    v = np.nan_to_num(value.astype(np.float64), nan=-1.0)
    top1, top2 = np.full(n, -np.inf), np.full(n, -np.inf)
    best = np.full(n, -1, dtype=np.int64)
    order = np.lexsort((-v, src))
    s = src[order]
    first = np.r_[True, s[1:] != s[:-1]] if len(s) else np.zeros(0, dtype=bool)
    second = np.r_[False, first[:-1]] & ~first if len(s) else first
    top1[s[first]], best[s[first]] = v[order[first]], dst[order[first]]
    top2[s[second]] = v[order[second]]
    with np.errstate(invalid="ignore"):
        fwd = np.where(best[src] == dst, v - top2[src], v - top1[src])
        bwd = np.where(best[dst] == src, v - top2[dst], v - top1[dst])
    return np.where(np.isfinite(fwd), fwd, np.nan), np.where(np.isfinite(bwd), bwd, np.nan)
