"""The train split cut into group-disjoint folds, and the pair model fitted on them."""

from __future__ import annotations

import numpy as np
from helpers.match_edges import catalogue_edges

from search.match.edges import MEAN
from search.match.pair_model import columns, edge_features, same_group
from search.match.tuning.folds import fold_count, fold_of, folds
from training.match_pair import train_pair_model


def test_folds_are_group_disjoint_and_keep_k_per_listing():
    es = catalogue_edges()
    parts = folds(es, 3)
    assert sum(p.n for p in parts) == es.n
    seen = [{p.group for p in part.products} for part in parts]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1 :])
    for part in parts:
        assert part.edges is not None and part.edges.src.max() < part.n
        counts = np.bincount(part.edges.src, minlength=part.n)
        assert counts.max() <= es.k
        assert MEAN in part.edges.sims  # scored again within the fold
    assert folds(es, 1) == [es]
    assert fold_of("g1", "x", 4) == fold_of("g1", "y", 4)
    assert fold_count(6272, 1401) == 4 and fold_count(10, 100) == 1


def test_pair_model_learns_from_folds_and_scores_in_columns_order():
    es = catalogue_edges(groups=30)
    parts = folds(es, 3)
    labelled = [(p.features(2), same_group(p.edges, p.products)) for p in parts]
    cols = columns(["text"])
    assert labelled[0][0].shape[1] == len(cols)
    model = train_pair_model(labelled, cols)
    x = edge_features(es.edges, es.products, ["text"], 2)
    y = same_group(es.edges, es.products)
    p = model.predict(x)
    assert p[y == 1].mean() > p[y == 0].mean() + 0.3
    assert model.feature_name() == cols
