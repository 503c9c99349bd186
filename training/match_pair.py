"""Fitting the match pair model: a LightGBM binary classifier of candidate edges (same
group or not) over the feature columns ``search.match.pair_model`` builds.

The train split's edges come cut into group-disjoint folds; the last fold held out
stops the boosting, then every seed is fitted again on all folds with as many trees per
edge, so the split the thresholds are tuned on never steers the training. Several seeds
differ only in LightGBM's row and feature sampling; their probabilities are averaged
where the model is applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rerank.pair_gbdt import import_lightgbm
from retrieval.errors import UsageError
from retrieval.types import ProgressFactory
from training.pair_gbdt import GbdtParams

log = logging.getLogger(__name__)
NUM_LEAVES = 31
SEEDS = 5  # pair models averaged (seeds of LightGBM's row and feature sampling)
# slower than the reranker's 0.05, more trees: on wdc-products valid F1 rose at each of four
# seed offsets and spread less between them (docs/fine-tune.md, item 9)
LEARNING_RATE = 0.02


def train_pair_model(
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    cols: Sequence[str],
    *,
    seed: int = 0,
    num_threads: int = 1,
    num_leaves: int = NUM_LEAVES,
    progress: ProgressFactory | None = None,
) -> Any:
    """A LightGBM binary classifier of edges from group-disjoint train folds: the last
    fold held out stops the boosting, then the model is fitted again on every fold
    with as many trees per edge (the tuning split never steers the training). Each
    boosting pass ticks a ``progress`` bar per tree."""
    return train_pair_models(
        folds, cols, seeds=1, first_seed=seed, num_threads=num_threads,
        num_leaves=num_leaves, progress=progress,
    )[0]  # fmt: skip


def train_pair_models(
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    cols: Sequence[str],
    *,
    seeds: int = SEEDS,
    first_seed: int = 0,
    num_threads: int = 1,
    num_leaves: int = NUM_LEAVES,
    progress: ProgressFactory | None = None,
) -> list[Any]:
    """``seeds`` pair models (``train_pair_model``) differing only in the seed of their
    row and feature sampling, their probabilities to be averaged: the held-out fold
    stops the first one's boosting, every seed is then fitted on all folds with as many
    trees."""
    lgb = import_lightgbm()
    x = np.vstack([f[0] for f in folds]) if folds else np.zeros((0, len(cols)))
    y = np.concatenate([f[1] for f in folds]) if folds else np.zeros(0)
    if not len(y) or y.min() == y.max():
        raise UsageError(
            "the pair model needs matching and non-matching candidate pairs in the train split"
        )

    def params(seed: int) -> dict[str, Any]:
        out = GbdtParams("binary", seed=seed, num_threads=num_threads).lightgbm()
        out.update(
            metric=["binary_logloss"],
            num_leaves=num_leaves,
            min_data_in_leaf=20,
            learning_rate=LEARNING_RATE,
        )
        out.pop("eval_at", None)
        return out

    rounds = 1000
    held = folds[-1][1] if len(folds) > 1 else np.zeros(0)
    if len(held) and held.min() != held.max():
        fit = np.vstack([f[0] for f in folds[:-1]]), np.concatenate([f[1] for f in folds[:-1]])
        data = lgb.Dataset(*fit, feature_name=list(cols), free_raw_data=False)
        stop = lgb.Dataset(folds[-1][0], held, reference=data)
        early = lgb.train(
            params(first_seed),
            data,
            rounds,
            valid_sets=[stop],
            callbacks=[
                lgb.log_evaluation(0),
                lgb.early_stopping(50, verbose=False),
                *_ticks(progress, "pair model: trees until the held-out fold stops", rounds),
            ],
        )
        best = early.best_iteration or early.current_iteration()
        rounds = max(1, round(best * len(y) / len(fit[1])))
    else:
        rounds = round(10 / LEARNING_RATE)  # one fold: nothing to stop on; a fixed forest
    data = lgb.Dataset(x, y, feature_name=list(cols), free_raw_data=False)
    ticks = _ticks(progress, f"pair model: fitting every fold, {seeds} seed(s)", rounds * seeds)
    boosters = [
        lgb.train(params(first_seed + s), data, rounds, callbacks=[lgb.log_evaluation(0), *ticks])
        for s in range(seeds)
    ]
    log.info(
        "pair model: %d x %d trees on %d edges (%d positive)", seeds, rounds, len(y), int(y.sum())
    )
    return boosters


def _ticks(progress: ProgressFactory | None, what: str, rounds: int) -> list[Callable]:
    """A LightGBM callback ticking a progress bar once per tree (none without a bar)."""
    if progress is None:
        return []
    tick = progress(what, rounds)
    return [lambda _env: tick(1)]
