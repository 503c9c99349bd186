"""Tune a matcher at the density it will run at: every split against the whole catalogue.

A split of a catalogue holds a fraction of its listings (15% for valid and test), so
matched within itself each listing sees few look-alikes: its nearest neighbours are
farther, ranks and local statistics mean something else, and thresholds tuned there
are too loose for ``search match`` over the whole catalogue. Here every listing is
searched once against the whole indexed catalogue (what ``search match`` does), and
each split is a view of that one edge set: its grouped listings are the queries, every
listing of the catalogue (other splits, unlabelled ones) a candidate. A match outside
the query's group, in any split, is a false match, as it will be in production.

The pair model is trained on the train split's queries over the same edges (its
features read the whole catalogue's neighbourhoods): the train queries are cut into
group-disjoint folds, the last one stopping the boosting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.index.base import VectorIndex
from retrieval.types import ProgressFactory
from search.match.edgeset import EdgeSet
from search.match.folds import fold_of
from search.match.matcher import Matcher, PairModel
from search.match.pairs import NEIGHBOURS, SEEDS, columns, same_group, train_pair_models
from search.match.tuning import save_pair

log = logging.getLogger(__name__)
AGAINST = ("split", "catalogue")  # what a split's listings are matched against when tuning
FOLDS = 5  # group-disjoint parts of the train queries; the last stops the boosting


def catalogue_sets(
    index: VectorIndex,
    dataset: Dataset,
    collection: str,
    template: Matcher,
    splits: Sequence[str],
    progress: ProgressFactory | None = None,
) -> dict[str, EdgeSet]:
    """One edge set over every listing, and per split a view whose queries are the
    split's grouped listings."""
    from search.match.job import self_edgeset

    products = list(dataset.products())
    row = {p.id: i for i, p in enumerate(products)}
    queries = {}
    for name in splits:
        rows = [row[q.product.id] for q in dataset.queries(name) if q.product.id in row]
        if not rows:
            raise UsageError(
                f"split {name!r} of {dataset.name} has no labelled listings: cannot tune a matcher"
            )
        queries[name] = np.array(sorted(rows), dtype=np.int64)
    whole = self_edgeset(index, collection, dataset.name, products, template, progress=progress)
    whole.search(progress)
    return {name: replace(whole, queries=q, rounds={}) for name, q in queries.items()}


def fit_catalogue_pair(
    train: EdgeSet,
    out: Path,
    *,
    neighbours: int = NEIGHBOURS,
    progress: ProgressFactory | None = None,
) -> PairModel:
    """Train the pair model on the edges of the train view's queries (features over the
    whole catalogue's edges), score every edge with it (all views share the edges), and
    save it beside the matcher."""
    assert train.edges is not None, "search() first"
    tick = progress("pair features", 1) if progress else None
    x = train.features(neighbours)
    if tick:
        tick(1)
    y = same_group(train.edges, train.products)
    part = np.full(train.n, -1, dtype=np.int64)
    for i in train.queries.tolist():
        p = train.products[i]
        part[i] = fold_of(p.group, p.id, FOLDS)
    src_part = part[train.edges.src]  # -1: an edge of another split's query
    folds = [(x[src_part == f], y[src_part == f]) for f in range(FOLDS) if (src_part == f).any()]
    cols = columns(list(train.weights))
    boosters = train_pair_models(folds, cols, seeds=SEEDS, progress=progress)
    train.add_pair(boosters, x)
    log.info("pair model trained on %d train queries against the catalogue", len(train.queries))
    return save_pair(boosters, cols, out, neighbours)
