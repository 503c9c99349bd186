"""Acceptance: ``search eval`` on the real Abt-Buy set against exact brute force.

Stage-1 recall@10 of the packaged MiniLM through the edge index must agree with an
exact numpy search (cosine, top 10 over the whole gallery's stored vectors) to 0.01.
The gallery is indexed once per session (``abt_buy_indexed``); the evaluation runs on
that collection as indexed, and the exact search reads the very vectors it stored.
"""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.data import open_dataset
from retrieval.index import open_index
from retrieval.index.base import point_id
from retrieval.metrics import recall_at_k
from retrieval.retriever import Retriever
from search.config import load_config
from search.evaluation.evaluate import evaluate_dataset


def brute_force_recall_at_10(indexed) -> float:
    dataset = open_dataset(str(indexed.path))
    gallery = list(dataset.products())
    queries = dataset.queries("test")
    index = open_index("edge", data_dir=indexed.data_dir)
    try:
        ids = [p.id for p in gallery]
        stored = index.fetch(indexed.collection, [point_id(dataset.name, i) for i in ids])
        g = np.stack([stored[point_id(dataset.name, i)]["text"] for i in ids])
        encoded = Retriever.for_collection(index, indexed.collection).encode(
            [x.product for x in queries], query=True
        )
        q = np.stack(encoded.vectors["text"])
    finally:
        index.close()
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    top = np.argsort(-(q @ g.T), axis=1, kind="stable")[:, :10]
    run = {x.id: {ids[j]: 10.0 - r for r, j in enumerate(row)} for x, row in zip(queries, top)}
    known = set(ids)
    qrels = {x.id: {m: 1 for m in x.matches if m in known} for x in queries}
    return recall_at_k(run, qrels, 10)


def test_stage1_recall_at_10_matches_exact_search(abt_buy_indexed, tmp_path):
    cfg = load_config(
        None, store={"data_dir": abt_buy_indexed.data_dir}, stage1={"vector": "text", "k": 10}
    )
    res = evaluate_dataset(
        cfg, str(abt_buy_indexed.path), collection=abt_buy_indexed.collection, out=tmp_path / "run"
    )
    for name in ("stage1.run", "stage2.run", "qrels.txt", "metrics.json", "report.md"):
        assert (res.out / name).exists()
    exact = brute_force_recall_at_10(abt_buy_indexed)
    assert res.metrics["queries/evaluated"] == 206
    assert res.metrics["stage1/recall@10"] == pytest.approx(exact, abs=0.01)
