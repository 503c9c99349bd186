"""Fitting pair-gbdt: both objectives, early stopping, the ranker's calibration, the
saved file, bad input.

The toy lists hold one match per query among siblings that differ in capacity or
model code; stage 1 (the list order) finds the match first only by chance."""

from __future__ import annotations

import random

import pytest

from rerank.pair_features import FEATURES
from rerank.pair_gbdt import PairGbdtModel, feature_rows
from retrieval.errors import UsageError
from retrieval.types import Candidate, Product

pytest.importorskip("lightgbm")
from training.pair_gbdt import (  # noqa: E402
    GbdtParams,
    feature_columns,
    fit_pair_gbdt,
    label_candidates,
)


def examples(n: int, seed: int) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        code, cap = f"k{i}{rng.randint(10, 99)}", rng.choice([32, 64, 128])
        titles = [f"kettle {code} {cap}gb", f"kettle {code} {cap * 2}gb", f"kettle {code}x {cap}gb"]
        titles += [f"kettle z{rng.randint(100, 999)} {cap}gb" for _ in range(3)]
        rng.shuffle(titles)
        cands = [
            Candidate(
                Product(f"{i}-{t}", t),
                1.0 - r / 10,
                r + 1,
                {"stage1_score": 1.0 - r / 10, "stage1_rank": r + 1, "sim_text": rng.random()},
            )
            for r, t in enumerate(titles)
        ]
        match = f"{i}-kettle {code} {cap}gb"
        out.append(
            (Product(f"q{i}", f"{code} kettle {cap} GB"), cands, label_candidates([match], cands))
        )
    return out


def top1(model: PairGbdtModel, data: list) -> float:
    """Fraction of queries whose best-scored candidate is the match."""
    hits = 0
    for query, cands, labels in data:
        scores = model.predict(feature_rows([(query, c) for c in cands]))
        hits += labels[max(range(len(cands)), key=scores.__getitem__)]
    return hits / len(data)


@pytest.fixture(scope="module")
def data():
    return examples(80, 0), examples(30, 1), examples(30, 2)


@pytest.mark.parametrize("objective", ["binary", "lambdarank"])
def test_both_objectives_learn_and_stop_early(data, objective):
    train, valid, test = data
    # a third of the valid labels moved to a sibling: the valid loss has a minimum
    noisy = [
        (q, c, labels[1:] + labels[:1] if i % 3 == 0 else labels)
        for i, (q, c, labels) in enumerate(valid)
    ]
    params = GbdtParams(objective=objective, min_data_in_leaf=5, early_stopping_rounds=20)
    model = fit_pair_gbdt(train, noisy, params, info={"dataset": "toy"})
    stage1 = sum(labels[0] for _, _, labels in test) / len(test)
    assert top1(model, test) >= 0.9 > stage1
    assert model.info["best_iteration"] < params.num_boost_round
    assert model.info["params"]["objective"] == objective and model.info["dataset"] == "toy"
    assert "ndcg@10" in model.info["valid_scores"]
    scores = model.predict(feature_rows([(q, c) for q, cands, _ in test for c in cands]))
    assert all(0.0 < p < 1.0 for p in scores)  # both give probabilities
    assert ("calibration" in model.info) == (objective == "lambdarank")


def test_the_rankers_calibration_keeps_its_order_and_matches_the_valid_rate(data):
    train, valid, _ = data
    model = fit_pair_gbdt(train, valid, GbdtParams(min_data_in_leaf=5))
    scaling = model.info["calibration"]
    assert model.info["params"]["objective"] == "lambdarank"  # the default
    assert scaling["fitted_on"] == "valid" and scaling["slope"] > 0
    rows = feature_rows([(q, c) for q, cands, _ in valid for c in cands])
    raw = model.booster.predict(model.matrix(rows))
    probs = model.predict(rows)
    by_raw = sorted(range(len(raw)), key=lambda i: raw[i])
    assert sorted(probs) == [probs[i] for i in by_raw]  # increasing in the raw score
    # Platt scaling's intercept makes the mean probability the valid positive rate
    labels = [v for _, _, labs in valid for v in labs]
    assert sum(probs) / len(probs) == pytest.approx(sum(labels) / len(labels), abs=0.01)


def test_without_valid_pairs_of_both_kinds_the_train_pairs_calibrate(data):
    negatives = [(q, cands, [0] * len(cands)) for q, cands, _ in data[1]]
    model = fit_pair_gbdt(data[0], negatives, GbdtParams(min_data_in_leaf=5))
    assert model.info["calibration"]["fitted_on"] == "train"


def test_saved_model_scores_identically(data, tmp_path):
    train, valid, test = data
    model = fit_pair_gbdt(train, valid, GbdtParams(min_data_in_leaf=5))
    loaded = PairGbdtModel.load(model.save(tmp_path / "sub" / "m.txt"))
    rows = feature_rows([(q, c) for q, cands, _ in test for c in cands])
    assert loaded.predict(rows) == model.predict(rows)
    assert loaded.features == model.features and loaded.info["best_iteration"] >= 1


def test_columns_are_the_sims_then_the_fixed_list(data):
    assert feature_columns(data[0]) == ["sim_text", *FEATURES]


def test_without_valid_it_trains_every_round(data):
    params = GbdtParams(min_data_in_leaf=5, num_boost_round=7)
    model = fit_pair_gbdt(data[0], None, params)
    assert model.info["best_iteration"] == 7 and model.booster.num_trees() == 7


def test_bad_input_is_one_clear_error(data):
    negatives = [(q, cands, [0] * len(cands)) for q, cands, _ in data[0]]
    with pytest.raises(UsageError, match="0 matching"):
        fit_pair_gbdt(negatives)
    with pytest.raises(UsageError, match="known: lambdarank, binary"):
        GbdtParams(objective="regression")
    q, cands, labels = data[0][0]
    with pytest.raises(ValueError, match="labels"):
        fit_pair_gbdt([(q, cands, labels[:-1])])
