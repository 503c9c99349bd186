"""The metrics trainers show on the valid split are retrieval.metrics' (search eval's)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.metrics import hit_rate_at_k, mrr_at_k, recall_at_k
from training.ranking import ValidList, rank_metrics


def test_rank_metrics_leave_out_lists_without_a_match_and_count_missed_ones():
    lists = [
        ValidList("q0", ("a", "b", "c"), (0, 1, 0)),  # match ranked 1st by the scores below
        ValidList("q1", ("a", "b", "c"), (0, 0, 1)),  # match ranked 3rd
        ValidList("q2", ("a", "b"), (0, 0)),  # no match anywhere: left out
        ValidList("q3", ("a", "b"), (0, 0), missed=2),  # matches stage 1 missed: a miss
        ValidList("q4", ("a", "b"), (1, 1)),  # tie: stage-1 order, first is a match
    ]
    scores = [[0.1, 0.9, 0.2], [0.9, 0.5, 0.1], [0.3, 0.2], [0.4, 0.1], [0.5, 0.5]]
    got = rank_metrics(lists, scores)
    # four evaluable lists: hits at rank 1, 3, none, 1
    assert got == pytest.approx({"hit@1": 2 / 4, "mrr@10": (1 + 1 / 3 + 0 + 1) / 4})
    # the same numbers as search eval's functions on the equivalent run and qrels
    run = {"q0": {"b": 0.9, "c": 0.2, "a": 0.1}, "q1": {"a": 0.9, "b": 0.5, "c": 0.1}}
    run |= {"q3": {"a": 0.4, "b": 0.1}, "q4": {"a": 0.5, "b": 0.5}}
    qrels = {"q0": {"b": 1}, "q1": {"c": 1}, "q2": {}, "q3": {"x": 1, "y": 1}}
    qrels["q4"] = {"a": 1, "b": 1}
    assert got["hit@1"] == hit_rate_at_k(run, qrels, 1)
    assert got["mrr@10"] == pytest.approx(mrr_at_k(run, qrels, 10))


def test_rank_metrics_of_nothing_evaluable_are_zero():
    assert rank_metrics([ValidList("q", ("a",), (0,))], [[1.0]]) == {"hit@1": 0.0, "mrr@10": 0.0}


def test_text_recall_evaluator_uses_retrieval_metrics():
    pytest.importorskip("sentence_transformers")
    from training.text_eval import RecallEvaluator

    vectors = {"red shoe": [1.0, 0.0], "red shoes": [0.9, 0.1], "kettle": [0.0, 1.0]}
    vectors |= {"steel kettle": [0.1, 0.9], "lamp": [0.7, 0.7]}

    class Card:
        def set_evaluation_metrics(self, *args):
            pass

    class Model:
        model_card_data = Card()

        def encode(self, texts, **kwargs):
            rows = np.asarray([vectors[t] for t in texts], dtype=np.float32)
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    corpus = [("s1", "red shoe"), ("s2", "red shoes"), ("k1", "kettle"), ("k2", "steel kettle")]
    corpus.append(("l1", "lamp"))
    queries = [("s1", "red shoe"), ("k1", "kettle"), ("l1", "lamp")]
    relevant = {"s1": {"s2"}, "k1": {"k2"}}  # the lamp has no match: left out, not a zero
    got = RecallEvaluator(queries, corpus, relevant, ks=(1, 2), name="valid")(Model())
    assert got == {"valid_recall@1": 1.0, "valid_recall@2": 1.0}
    run = {"s1": {"s2": 0.99, "l1": 0.8}, "k1": {"k2": 0.99, "l1": 0.7}, "l1": {}}
    qrels = {"s1": {"s2": 1}, "k1": {"k2": 1}, "l1": {}}
    assert got["valid_recall@1"] == recall_at_k(run, qrels, 1)
