"""The pair model fitted from a reviewer's labels alone: a bootstrap ensemble of small
LightGBM models whose mean separates the classes and whose seeds disagree."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.errors import UsageError
from training.match_review import SEEDS, bootstrap, fit_label_models


def _pairs(n: int, seed: int = 0):
    """``n`` labelled pairs, two directed rows each; the first feature decides, noisily."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 2, n), 2).astype(float)
    x = rng.normal(size=(2 * n, 4))
    x[:, 0] += 2.5 * (y - 0.5)
    return x, y, np.repeat(np.arange(n), 2)


def test_the_ensemble_learns_from_a_few_dozen_pairs_and_disagrees_where_unsure():
    x, y, groups = _pairs(40)
    boosters = fit_label_models(x, y, groups, ["f0", "f1", "f2", "f3"])
    assert len(boosters) == SEEDS
    probe = np.zeros((3, 4))
    probe[:, 0] = [-3.0, 0.0, 3.0]
    per = np.array([b.predict(probe) for b in boosters])
    mean = per.mean(axis=0)
    assert mean[0] < 0.3 < 0.7 < mean[2]  # calibrated enough to rank and to be sure
    assert per.std(axis=0).max() > 0  # bootstrap resamples make the seeds differ
    tx, ty, _ = _pairs(400, seed=1)
    p = np.mean([b.predict(tx) for b in boosters], axis=0)
    assert ((p > 0.5) == ty).mean() > 0.8


def test_bootstrap_keeps_a_pairs_rows_together():
    _, y, groups = _pairs(30)
    rows = bootstrap(groups, y, np.random.default_rng(3))
    counts = np.bincount(rows, minlength=len(y))
    assert (counts[0::2] == counts[1::2]).all() and len(rows) == len(y)
    assert 0 < y[rows].mean() < 1


def test_one_verdict_alone_is_one_line():
    x, _, groups = _pairs(10)
    with pytest.raises(UsageError, match="both verdicts"):
        fit_label_models(x, np.ones(len(x)), groups, ["f0", "f1", "f2", "f3"])
