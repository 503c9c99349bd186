"""The match pair model's fitting: one class is refused; seeds share one early stop."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lightgbm")

from training.match_pair import train_pair_models  # noqa: E402


def _folds(n: int = 3, rows: int = 200) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        y = (rng.random(rows) < 0.3).astype(np.float64)
        x = np.column_stack([y + 0.5 * rng.normal(size=rows), rng.normal(size=rows)])
        out.append((x, y))
    return out


def test_one_class_is_refused():
    x, _ = _folds(1)[0]
    with pytest.raises(Exception, match="matching and non-matching"):
        train_pair_models([(x, np.zeros(len(x)))], ["a", "b"], seeds=1)


def test_seeds_share_one_early_stop_and_learn():
    models = train_pair_models(_folds(), ["a", "b"], seeds=2)
    assert models[0].num_trees() == models[1].num_trees()
    assert models[0].feature_name() == ["a", "b"]
    x, y = _folds(1)[0]
    p = models[0].predict(x)
    assert p[y == 1].mean() > p[y == 0].mean() + 0.3
