"""The pair model fitted for a matcher and saved beside it: on the train split's folds
of the tuning split's size (``fit_pair``, splits matched within themselves) or on the
train view's queries of one search of the whole catalogue (``fit_catalogue_pair``, its
features read the whole catalogue's neighbourhoods; the train queries cut into
group-disjoint folds, the last one stopping the boosting). The boosting itself is
``training.match_pair``'s; the features and files are ``search.match.pair_model``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retrieval.types import ProgressFactory
from search.match.edgeset import EdgeSet
from search.match.matcher import PairModel
from search.match.pair_model import NEIGHBOURS, columns, same_group, save_models
from search.match.tuning.folds import fold_of
from search.match.tuning.labelled import TuningLabels
from training.match_pair import SEEDS, train_pair_models

log = logging.getLogger(__name__)
PAIR_FILE = "matcher.pair.txt"
FOLDS = 5  # group-disjoint parts of the train queries; the last stops the boosting


def fit_pair(
    train: Sequence[EdgeSet],
    valid: EdgeSet,
    test: EdgeSet,
    out: Path,
    *,
    labels: TuningLabels | None = None,
    progress: ProgressFactory | None = None,
) -> PairModel:
    """Train the pair model (``SEEDS`` seeds averaged) on the train folds' edges (the last
    fold stops the boosting; a reviewed edge takes its label's verdict), score valid and
    test edges with it, and save it beside the matcher."""
    names = list(valid.weights)
    cols = columns(names)
    tick = progress("pair features", len(train) + 2) if progress else None
    xs = []
    for es in [*train, valid, test]:
        xs.append(es.features(NEIGHBOURS))
        if tick:
            tick(1)
    labelled = [(x, targets(es, labels)[0]) for x, es in zip(xs, train)]
    if labels is not None:
        fitted = {pair for es in train for pair in reviewed(es, labels)}
        labels.counts["labels/fitted"] = len(fitted)
    boosters = train_pair_models(labelled, cols, seeds=SEEDS, progress=progress)
    valid.add_pair(boosters, xs[-2])
    test.add_pair(boosters, xs[-1])
    return save_pair(boosters, cols, out)


def targets(es: EdgeSet, labels: TuningLabels | None) -> tuple[np.ndarray, np.ndarray]:
    """The training target of each edge (same group, or the reviewer's verdict where
    there is one) and which edges a label named."""
    assert es.edges is not None, "search() first"
    y = same_group(es.edges, es.products)
    if labels is None:
        return y, np.zeros(len(y), dtype=bool)
    mask, verdict = labels.edge_targets(es, es.edges)
    return np.where(mask, verdict, y), mask


def reviewed(es: EdgeSet, labels: TuningLabels) -> set[tuple[str, str]]:
    """The labelled pairs among ``es``'s edges."""
    assert es.edges is not None, "search() first"
    mask, _ = labels.edge_targets(es, es.edges)
    ids = [p.id for p in es.products]
    pairs = zip(es.edges.src[mask].tolist(), es.edges.dst[mask].tolist())
    return {tuple(sorted((ids[i], ids[j]))) for i, j in pairs}  # type: ignore[misc]


def save_pair(boosters: list, cols: list[str], out: Path) -> PairModel:
    """The pair model's files beside the matcher (one per seed) and its description."""
    model = PairModel(PAIR_FILE, cols, NEIGHBOURS, len(boosters))
    model.files = save_models(boosters, model.paths(out))
    return model


def fit_catalogue_pair(
    train: EdgeSet,
    out: Path,
    *,
    labels: TuningLabels | None = None,
    progress: ProgressFactory | None = None,
) -> PairModel:
    """Train the pair model on the edges of the train view's queries (features over the
    whole catalogue's edges) and the reviewed edges (their label's verdict the target),
    score every edge with it (all views share the edges), and save it beside the matcher."""
    assert train.edges is not None, "search() first"
    tick = progress("pair features", 1) if progress else None
    x = train.features(NEIGHBOURS)
    if tick:
        tick(1)
    y, mask = targets(train, labels)
    part = np.full(train.n, -1, dtype=np.int64)
    for i in train.queries.tolist():
        p = train.products[i]
        part[i] = fold_of(p.group, p.id, FOLDS)
    src_part = part[train.edges.src]  # -1: an edge of another split's query
    if labels is not None:  # a reviewed edge is fitted whichever listings it joins
        ids = [p.id for p in train.products]
        for e in np.flatnonzero(mask & (src_part < 0)).tolist():
            a, b = sorted((ids[train.edges.src[e]], ids[train.edges.dst[e]]))
            src_part[e] = fold_of(None, f"{a}\x1f{b}", FOLDS)
        labels.counts["labels/fitted"] = len(reviewed(train, labels))
    folds = [(x[src_part == f], y[src_part == f]) for f in range(FOLDS) if (src_part == f).any()]
    cols = columns(list(train.weights))
    boosters = train_pair_models(folds, cols, seeds=SEEDS, progress=progress)
    train.add_pair(boosters, x)
    log.info("pair model trained on %d train queries against the catalogue", len(train.queries))
    return save_pair(boosters, cols, out)
