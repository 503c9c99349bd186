"""Acceptance on the real Abt-Buy set: packaged MiniLM, lexical sparse and hybrid.

Reference (README of the set, exact cosine search, 206 test queries): MiniLM
R@1 0.745, R@10 0.976. The gallery is indexed once per session (``abt_buy_indexed``).
"""

from __future__ import annotations

import pytest

from retrieval.data import open_dataset
from retrieval.index import open_index
from retrieval.metrics import recall_at_k
from retrieval.retriever import Retriever
from retrieval.types import hits_to_run, queries_to_qrels


@pytest.fixture(scope="module")
def runs(abt_buy_indexed):
    queries = open_dataset(str(abt_buy_indexed.path)).queries("test")
    index = open_index("edge", data_dir=abt_buy_indexed.data_dir)
    try:
        retriever = Retriever.for_collection(index, abt_buy_indexed.collection)
        assert retriever.encoder_specs == list(abt_buy_indexed.encoders)
        products = [q.product for q in queries]
        out = {"qrels": queries_to_qrels(queries)}
        for using in ("text", "sparse", "hybrid"):
            hits = retriever.search(products, using=using, k=10, payload=["id"])
            out[using] = hits_to_run([q.id for q in queries], hits)
    finally:
        index.close()
    return out


def test_test_split_has_206_queries(runs):
    assert len(runs["qrels"]) == 206


def test_minilm_recall_at_10_matches_exact_reference(runs):
    r10 = recall_at_k(runs["text"], runs["qrels"], 10)
    assert r10 >= 0.97


def test_hybrid_beats_minilm_at_recall_1(runs):
    text_r1 = recall_at_k(runs["text"], runs["qrels"], 1)
    hybrid_r1 = recall_at_k(runs["hybrid"], runs["qrels"], 1)
    assert 0.70 <= text_r1 <= 0.80  # the packaged model is the real all-MiniLM-L6-v2
    assert hybrid_r1 > text_r1
