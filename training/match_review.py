"""Fitting the match pair model from a reviewer's labels alone (a cold start: no groups,
no train split): a bootstrap ensemble of small, strongly regularised LightGBM
classifiers of candidate edges over the columns ``search.match.pair_model`` builds.

A few dozen to a few hundred labelled pairs are far too few for the 31-leaf forest
``training.match_pair`` grows on a whole train split: here each tree has a handful of
leaves, each leaf needs several labels, and an L2 penalty pulls the leaf values in, so
the log-loss the boosting minimises keeps the probabilities calibrated rather than
confident. Each seed is fitted on a bootstrap resample of the labelled *pairs* (both
directions of a pair stay together); the spread of the seeds' probabilities is the
model's uncertainty (what the review queue asks about next) and their mean the score,
as ``search match`` averages a matcher's seeds. With no split to tune on, the threshold
is the one the probabilities themselves expect the best F1 at (``expected_f1``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rerank.pair_gbdt import import_lightgbm
from retrieval.errors import UsageError
from training.pair_gbdt import GbdtParams

log = logging.getLogger(__name__)
SEEDS = 5  # bootstrap models averaged (and whose spread is the uncertainty)
ROUNDS = 150
NUM_LEAVES = 4
MIN_LEAF = 5  # labelled rows a leaf needs
LAMBDA_L2 = 5.0
GRID = np.round(np.linspace(0.02, 0.98, 97), 4)  # thresholds the expected F1 is read at


def label_params(seed: int, rows: int, num_threads: int = 1) -> dict[str, Any]:
    """LightGBM settings for a few labelled pairs: few leaves, several rows a leaf, L2."""
    out = GbdtParams("binary", seed=seed, num_threads=num_threads).lightgbm()
    out.pop("eval_at", None)
    out.update(
        metric=["binary_logloss"],
        num_leaves=NUM_LEAVES,
        min_data_in_leaf=max(2, min(MIN_LEAF, rows // 8)),
        min_data_in_bin=1,
        lambda_l2=LAMBDA_L2,
        learning_rate=0.05,
        feature_fraction=0.7,
        bagging_fraction=1.0,
        bagging_freq=0,
    )
    return out


def bootstrap(groups: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices of a bootstrap resample of the pairs (``groups``: each row's pair),
    redrawn until both classes are in it (the rows themselves after 20 tries)."""
    pairs = np.unique(groups)
    for _ in range(20):
        take = rng.choice(pairs, size=len(pairs), replace=True)
        counts = np.bincount(np.searchsorted(pairs, take), minlength=len(pairs))
        rows = np.repeat(np.arange(len(y)), counts[np.searchsorted(pairs, groups)])
        if len(rows) and y[rows].min() != y[rows].max():
            return rows
    return np.arange(len(y))


def fit_label_models(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    cols: Sequence[str],
    *,
    seeds: int = SEEDS,
    first_seed: int = 0,
    rounds: int = ROUNDS,
    num_threads: int = 1,
) -> list[Any]:
    """``seeds`` LightGBM classifiers of edges, each fitted on a bootstrap resample of the
    labelled pairs (``groups``: the pair of each row of ``x``); both classes needed."""
    lgb = import_lightgbm()
    y = np.asarray(y, dtype=np.float64)
    if not len(y) or y.min() == y.max():
        raise UsageError(
            "the pair model needs both verdicts among the labels: label at least one "
            "match and one non-match"
        )
    rng = np.random.default_rng(first_seed)
    boosters = []
    for s in range(seeds):
        rows = bootstrap(np.asarray(groups), y, rng)
        data = lgb.Dataset(x[rows], y[rows], feature_name=list(cols), free_raw_data=True)
        params = label_params(first_seed + s, len(rows), num_threads)
        boosters.append(lgb.train(params, data, rounds, callbacks=[lgb.log_evaluation(0)]))
    log.info(
        "pair model from labels: %d x %d trees on %d rows (%d positive)",
        seeds, rounds, len(y), int(y.sum()),
    )  # fmt: skip
    return boosters


def expected_f1(src: np.ndarray, p: np.ndarray, n: int) -> tuple[float, float]:
    """The threshold on ``p`` (per directed edge) that maximises the Shopee F1 the
    probabilities expect, averaged over the ``n`` listings, and that F1: a listing's
    expected true matches are the sum of its candidates' probabilities."""
    total = np.bincount(src, weights=p, minlength=n)
    best = (0.5, -1.0)
    for t in GRID:
        kept = p >= t
        size = np.bincount(src, weights=kept, minlength=n)
        hits = np.bincount(src, weights=p * kept, minlength=n)
        f1 = float(np.mean(2 * (1 + hits) / (2 + size + total)))
        if f1 > best[1] + 1e-12:
            best = (float(t), f1)
    return best
