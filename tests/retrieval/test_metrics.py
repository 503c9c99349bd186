"""Ranking metrics against ranx on the same run and qrels, and the Shopee F1 by hand.

ranx is given ``ranx.Run`` objects, whose tie order is the run's insertion order for
queries of fewer than 16 documents (see ``retrieval.metrics``); every query here holds
at most 12, so tied scores must rank exactly as ours do.
"""

from __future__ import annotations

import random

import pytest

from retrieval.errors import UsageError
from retrieval.metrics import (
    average_precision,
    evaluate,
    hit_rate_at_k,
    match_scores,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    ranked,
    recall_at_k,
    shopee_f1,
)

ranx = pytest.importorskip("ranx")

QRELS = {
    # q1: two relevant documents, one tied with an irrelevant one
    "q1": {
        "d1": 1,  # ranked first
        "d3": 1,  # tied with d2 at 0.5; the run lists d2 first, so d3 ranks third
    },
    # q2: graded relevance (nDCG gains 2 and 1)
    "q2": {
        "d5": 2,  # ranked second
        "d6": 1,  # ranked fourth
        "d7": 1,  # never retrieved
    },
    # q3: the only relevant document is not retrieved
    "q3": {"d9": 1},
    # q4: all three documents tie; the relevant one is listed (and ranked) second
    "q4": {"d11": 1},
    # q5: a run shorter than k (precision@10 still divides by 10)
    "q5": {"d13": 1},
}
RUN = {
    "q1": {"d1": 0.9, "d2": 0.5, "d3": 0.5, "d4": 0.1},
    "q2": {"d4": 0.8, "d5": 0.7, "d8": 0.6, "d6": 0.5, "d1": 0.4},
    "q3": {"d1": 0.3, "d2": 0.2},
    "q4": {"d10": 1.0, "d11": 1.0, "d12": 1.0},
    "q5": {"d13": 0.2},
}
OURS = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
    "hit_rate": hit_rate_at_k,
    "map": average_precision,
}


def ranx_score(run, qrels, metric: str) -> float:
    return float(ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), metric, make_comparable=True))


def test_ties_keep_the_run_order():
    assert ranked(RUN["q1"]) == ["d1", "d2", "d3", "d4"]
    assert ranked(RUN["q4"]) == ["d10", "d11", "d12"]
    assert ranked({"b": 1.0, "a": 1.0}) == ["b", "a"]


@pytest.mark.parametrize("name", sorted(OURS))
@pytest.mark.parametrize("k", [1, 2, 3, 5, 10])
def test_hand_written_case_matches_ranx(name, k):
    ours = OURS[name](RUN, QRELS, k)
    assert ours == pytest.approx(ranx_score(RUN, QRELS, f"{name}@{k}"), abs=1e-12)


def test_hand_written_values():
    # q1 has d1 at rank 1 and d3 at rank 3: recall@2 = 1/2, AP = (1/1 + 2/3) / 2
    one = {"q1": QRELS["q1"]}
    assert recall_at_k(RUN, one, 2) == pytest.approx(0.5)
    assert average_precision(RUN, one) == pytest.approx((1 + 2 / 3) / 2)
    # q4's relevant document ties with two others and ranks second: RR 1/2
    assert mrr_at_k(RUN, {"q4": QRELS["q4"]}, 10) == pytest.approx(0.5)
    # q5: one hit in a one-document run, precision@10 = 1/10
    assert precision_at_k(RUN, {"q5": QRELS["q5"]}, 10) == pytest.approx(0.1)


def test_map_without_cutoff_matches_ranx():
    assert average_precision(RUN, QRELS) == pytest.approx(ranx_score(RUN, QRELS, "map"))


def test_random_runs_with_ties_match_ranx():
    rng = random.Random(7)
    run, qrels = {}, {}
    for q in range(60):
        docs = [f"d{i}" for i in rng.sample(range(30), rng.randint(1, 12))]
        # scores from a small set of values: ties are frequent
        run[f"q{q}"] = {d: rng.choice([0.1, 0.2, 0.3, 0.5]) for d in docs}
        pool = docs + [f"d{i}" for i in range(30, 35)]  # some relevant never retrieved
        qrels[f"q{q}"] = {d: rng.choice([1, 1, 2]) for d in rng.sample(pool, rng.randint(1, 4))}
    names = [f"{m}@{k}" for m in OURS for k in (1, 3, 5, 10)] + ["map"]
    ours = evaluate(run, qrels, names)
    for name in names:
        assert ours[name] == pytest.approx(ranx_score(run, qrels, name), abs=1e-12), name


def test_queries_without_relevant_documents_are_left_out():
    qrels = {"q1": QRELS["q1"], "empty": {}, "judged_irrelevant": {"d1": 0}}
    assert recall_at_k(RUN, qrels, 1) == pytest.approx(0.5)  # only q1 counts
    assert recall_at_k(RUN, {"empty": {}}, 10) == 0.0


def test_unknown_metric_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown metric 'recal@10'"):
        evaluate(RUN, QRELS, ["recal@10"])


def test_shopee_f1_hand_computed():
    # groups: A = {p1, p2, p3}, B = {p4, p5}, C = {p6}; targets list the *other* members
    targets = {
        "p1": ["p2", "p3"],
        "p2": ["p1", "p3"],
        "p3": ["p1", "p2"],
        "p4": ["p5"],
        "p5": ["p4"],
        "p6": [],  # a singleton group: it only matches itself
    }
    predicted = {
        "p1": ["p2"],  # P={p1,p2}, T={p1,p2,p3}: F1 = 2*2/(2+3) = 0.8
        "p2": ["p1", "p3", "p4"],  # P={p2,p1,p3,p4}, T={p1,p2,p3}: 2*3/(4+3) = 6/7
        "p3": [],  # P={p3}, T={p1,p2,p3}: 2*1/(1+3) = 0.5
        "p4": ["p4", "p5"],  # self listed too (counted once): P=T={p4,p5}: 1.0
        "p5": ["p4", "p6"],  # P={p5,p4,p6}, T={p4,p5}: 2*2/(3+2) = 0.8
        # p6 absent: it predicted only itself, P=T={p6}: 1.0
    }
    expected = (0.8 + 6 / 7 + 0.5 + 1.0 + 0.8 + 1.0) / 6
    assert shopee_f1(predicted, targets) == pytest.approx(expected)
    scores = match_scores(predicted, targets, include_self=True)
    assert scores.n == 6
    # precision: p1 2/2, p2 3/4, p3 1/1, p4 1, p5 2/3, p6 1
    assert scores.precision == pytest.approx((1 + 0.75 + 1 + 1 + 2 / 3 + 1) / 6)
    # recall: p1 2/3, p2 1, p3 1/3, p4 1, p5 1, p6 1
    assert scores.recall == pytest.approx((2 / 3 + 1 + 1 / 3 + 1 + 1 + 1) / 6)


def test_match_scores_without_self():
    targets = {"a": ["x", "y"], "b": ["z"]}
    predicted = {"a": ["x"], "b": []}  # a: P=1/1 R=1/2 F1=2/3; b: predicted nothing
    s = match_scores(predicted, targets)
    assert (s.precision, s.recall, s.f1) == pytest.approx((0.5, 0.25, 1 / 3))
    with pytest.raises(ValueError, match="no target"):
        match_scores({}, {"c": []})
