"""The valid match F1 that picks ``search eval --fine-tune``'s step: a hand-worked case."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from training.match_eval import best_threshold_f1  # noqa: E402


def test_best_threshold_f1_by_hand():
    # groups a a b b; cosines: 0-1 0.8 and 2-3 0.8 (same group), 1-3 0.96, 0-3 0.6,
    # 1-2 0.6, 0-2 0 (other groups)
    v = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]], dtype=np.float32)
    f1, t = best_threshold_f1(v, ["a", "a", "b", "b"])
    # at 0.6 < t <= 0.8 each listing predicts itself, its mate, and 1-3's wrong edge:
    # per-listing F1 1, 4/5, 1, 4/5 (self counted both sides) -> 0.9; above 0.8 only the
    # wrong edge (0.583), at 0.6 and under two more wrong ones (0.733)
    assert f1 == pytest.approx(0.9)
    assert 0.6 < t <= 0.8 + 1e-6  # float32


def test_no_pairs_and_perfect_groups():
    assert best_threshold_f1(np.ones((1, 2), dtype=np.float32), ["a"]) == (0.0, 1.0)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    groups = np.repeat(np.arange(6), 3)
    v = centres[groups] + 0.05 * rng.normal(size=(18, 16))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert best_threshold_f1(v, [str(g) for g in groups])[0] == pytest.approx(1.0)
