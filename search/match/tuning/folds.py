"""Train the pair model on neighbourhoods the size of those it decides on.

Every neighbourhood feature of an edge (ranks both ways, each side's top-k mean and
std, local scaling, shared neighbours) depends on how many listings were matched
together: the train split (70% of the groups) is 4-5 times as dense as the valid and
test splits (15% each) the thresholds are tuned and scored on, so a model trained on
its edges learns ranks and margins it never sees again. ``folds`` cuts the train
split's edges into group-disjoint folds of about the tuning split's size (groups
never straddle a fold), keeps each listing's ``k`` best per vector inside its fold,
and scores them again within the fold. One fold is then held out to stop the
boosting (``training.match_pair``), so the valid split only chooses thresholds.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import replace

import numpy as np

from search.match.edges import ranks, score_edges
from search.match.edgeset import EdgeSet

log = logging.getLogger(__name__)


def fold_of(group: str | None, key: str, folds: int) -> int:
    """The fold of a listing: a stable hash of its group (else of its id)."""
    return zlib.crc32((group if group is not None else key).encode()) % folds


def fold_count(rows: int, size: int) -> int:
    """How many folds of about ``size`` listings ``rows`` listings make (at least 1)."""
    return max(1, round(rows / max(size, 1)))


def folds(es: EdgeSet, folds: int) -> list[EdgeSet]:
    """The edge set cut into ``folds`` group-disjoint parts, each re-ranked and re-scored
    within itself (the source's candidates were searched deeper: ``k`` x ``folds``)."""
    assert es.edges is not None, "search() first"
    if folds <= 1:
        return [es]
    part = np.array([fold_of(p.group, p.id, folds) for p in es.products])
    edges = es.edges
    out = []
    for f in range(folds):
        rows = np.flatnonzero(part == f)
        if len(rows) < 2:
            continue
        new = np.full(es.n, -1, dtype=np.int64)
        new[rows] = np.arange(len(rows))
        inside = (part[edges.src] == f) & (part[edges.dst] == f)
        sub = edges.select(inside)
        keep = np.zeros(len(sub), dtype=bool)
        for name in es.weights:  # each vector's k best inside the fold, as the index gives
            keep |= ranks(sub.src, sub.sims[name]) <= es.k
        sub = sub.select(keep)
        store = es.store.subset(rows)
        scored = score_edges(store, new[sub.src], new[sub.dst], es.weights)
        products = [es.products[i] for i in rows]
        queries = np.arange(len(rows))
        out.append(
            replace(
                es,
                products=products,
                store=store,
                queries=queries,
                edges=scored,
                rounds={},
                filters=None,
                allowed=None,
            )
        )
    log.info("train edges cut into %d folds of ~%d listings", len(out), es.n // max(folds, 1))
    return out
