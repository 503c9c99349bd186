"""The match rules on hand-made edges: thresholds, union, min2, groups, tuning."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.errors import UsageError
from retrieval.metrics import match_scores
from search.match.edges import MEAN, Edges, ranks, reverse_index
from search.match.groups import average_linkage, capped_components
from search.match.rules import Rule, decide
from search.match.tuning.thresholds import score_rule, tune_rule


def edges(rows: list[tuple[int, int, float, float]]) -> Edges:
    """Edges from (src, dst, text cosine, sparse cosine); the mean is their average."""
    src = np.array([r[0] for r in rows])
    dst = np.array([r[1] for r in rows])
    text = np.array([r[2] for r in rows], dtype=np.float32)
    sparse = np.array([r[3] for r in rows], dtype=np.float32)
    return Edges(src, dst, {"text": text, "sparse": sparse, MEAN: (text + sparse) / 2})


# 0~1 are the same product (high text, high sparse); 2~3 share a model code only
# (sparse high, text low); 4 is alone and its nearest (5) is weak.
E = edges(
    [
        (0, 1, 0.95, 0.90),
        (1, 0, 0.95, 0.90),
        (2, 3, 0.40, 0.85),
        (3, 2, 0.40, 0.85),
        (4, 5, 0.50, 0.30),
        (5, 4, 0.50, 0.30),
        (0, 2, 0.60, 0.20),
    ]
)


def test_single_threshold_keeps_edges_over_it():
    rule = Rule("text", {"text": 0.9}, "text")
    assert decide(E, rule, 6) == {0: {1}, 1: {0}}


def test_union_adds_the_other_vectors_matches():
    rule = Rule("union", {"text": 0.9, "sparse": 0.8}, "text")
    assert decide(E, rule, 6) == {0: {1}, 1: {0}, 2: {3}, 3: {2}}


def test_min2_keeps_the_nearest_of_a_listing_left_alone_unless_far():
    rule = Rule("t", {"text": 0.9}, "text", min2=0.45)
    # 2 and 3 (nearest 0.40) stay alone; 4 and 5 (0.50) get each other; 0 keeps only 1.
    assert decide(E, rule, 6) == {0: {1}, 1: {0}, 4: {5}, 5: {4}}


def test_mutual_and_symmetric_groups():
    one_way = Edges(np.array([0, 1]), np.array([1, 2]), {"s": np.array([0.9, 0.9])})
    mutual = Rule("m", {"s": 0.5}, "s", groups="mutual")
    symmetric = Rule("y", {"s": 0.5}, "s", groups="symmetric")
    assert decide(one_way, mutual, 3) == {}
    assert decide(one_way, symmetric, 3) == {0: {1}, 1: {0, 2}, 2: {1}}


def test_components_join_chains_and_respect_the_cap():
    # A~B (0.9), B~C (0.8), C~D (0.7): one chain of four.
    src, dst = np.array([0, 1, 2]), np.array([1, 2, 3])
    score = np.array([0.9, 0.8, 0.7])
    assert len(set(capped_components(src, dst, score, 4, 0))) == 1
    labels = capped_components(src, dst, score, 4, 3)  # the weakest join would make 4
    assert labels[0] == labels[1] == labels[2] != labels[3]
    rule = Rule("c", {"s": 0.75}, "s", groups="components")
    chain = Edges(src, dst, {"s": score.astype(np.float32)})
    assert decide(chain, rule, 4) == {0: {1, 2}, 1: {0, 2}, 2: {0, 1}}


def test_average_linkage_merges_on_the_mean_link():
    # 0-1 0.9, 1-2 0.8, 0-2 unproposed (counts 0): {0,1} then {0,1}+2 averages 0.4.
    src, dst = np.array([0, 1]), np.array([1, 2])
    labels = average_linkage(src, dst, np.array([0.9, 0.8]), 3, 0.5, 0)
    assert labels[0] == labels[1] != labels[2]
    labels = average_linkage(src, dst, np.array([0.9, 0.8]), 3, 0.35, 0)
    assert labels[0] == labels[1] == labels[2]


def test_ranks_and_reverse_edges():
    assert ranks(E.src, E.sims[MEAN]).tolist() == [1, 1, 1, 1, 1, 1, 2]
    rev = reverse_index(E, 6)
    assert rev.tolist() == [1, 0, 3, 2, 5, 4, -1]


def test_unknown_grouping_and_missing_score_are_usage_errors():
    with pytest.raises(UsageError, match="grouping"):
        Rule("x", {"s": 0.5}, "s", groups="cliques")
    with pytest.raises(UsageError, match="reads score"):
        decide(E, Rule("x", {"image": 0.5}, "image"), 6)


def test_tuned_rule_f1_is_the_metrics_function_on_the_decided_sets():
    targets = {0: {1}, 1: {0}, 2: {3}, 3: {2}, 4: set(), 5: set()}
    rule = tune_rule(E, Rule("u", {"text": 0.5, "sparse": 0.5}, "text", min2=0.1), 6, targets)
    sets = decide(E, rule, 6)
    want = match_scores({r: sets.get(r, ()) for r in targets}, targets, include_self=True)
    assert score_rule(E, rule, 6, targets) == want
    assert want.f1 == pytest.approx(1.0)  # the union finds 2~3, min2 stays off 4~5
    assert rule.notes["tune_f1"] == pytest.approx(1.0)


def test_tuning_ticks_once_per_f1_evaluated(monkeypatch):
    """The progress tick counts every F1 the tuner evaluates (one by one, so a slow
    agglomerative rule shows it is alive), and ticking changes nothing it chooses."""
    import search.match.tuning.thresholds as tune

    targets = {0: {1}, 1: {0}, 2: {3}, 3: {2}, 4: set(), 5: set()}
    tpl = Rule("u", {"text": 0.5, "sparse": 0.5}, "text", min2=0.1, groups="agglomerative")
    calls = {"n": 0}
    real = tune.score_rule

    def counted(*args):
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(tune, "score_rule", counted)
    ticks: list[int] = []
    rule = tune_rule(E, tpl, 6, targets, tick=ticks.append)
    assert ticks and set(ticks) == {1}
    assert len(ticks) == calls["n"] - 1  # all but the closing tune_f1 score
    monkeypatch.setattr(tune, "score_rule", real)
    assert tune_rule(E, tpl, 6, targets) == rule
