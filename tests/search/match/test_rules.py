"""The match rules on hand-made edges: thresholds, union, min2, groups."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.match_edges import E

from retrieval.errors import UsageError
from search.match.edges import MEAN, Edges, ranks, reverse_index
from search.match.groups import average_linkage, capped_components
from search.match.rules import Rule, decide


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
