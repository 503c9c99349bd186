"""Acceptance: ``search eval`` on the real Abt-Buy set against exact brute force.

Stage-1 recall@10 of the packaged MiniLM through the edge index must agree with an
exact numpy search (same encoder, cosine, top 10 over the whole gallery) to 0.01.
About 30 s on two CPU cores (MiniLM encodes the gallery and the queries twice).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.data import open_dataset
from retrieval.encoders import build_encoder
from retrieval.metrics import recall_at_k
from search.config import load_config
from search.evaluation.evaluate import evaluate_dataset

ABT_BUY = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "abt-buy"
pytest.importorskip("sentence_transformers")
pytestmark = pytest.mark.skipif(not ABT_BUY.exists(), reason="shared abt-buy set not present")


def brute_force_recall_at_10(dataset) -> float:
    encoder = build_encoder("text")
    gallery = list(dataset.products())
    queries = dataset.queries("test")
    g = np.stack(encoder.encode(gallery).vectors["text"])
    q = np.stack(encoder.encode([x.product for x in queries], query=True).vectors["text"])
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    top = np.argsort(-(q @ g.T), axis=1, kind="stable")[:, :10]
    ids = [p.id for p in gallery]
    run = {x.id: {ids[j]: 10.0 - r for r, j in enumerate(row)} for x, row in zip(queries, top)}
    known = set(ids)
    qrels = {x.id: {m: 1 for m in x.matches if m in known} for x in queries}
    return recall_at_k(run, qrels, 10)


def test_stage1_recall_at_10_matches_exact_search(tmp_path):
    cfg = load_config(
        None,
        store={"data_dir": tmp_path / "home"},
        stage1={"encoders": ["text"], "vector": "text", "k": 10},
    )
    res = evaluate_dataset(cfg, str(ABT_BUY), encoders=["text"], out=tmp_path / "run")
    for name in ("stage1.run", "stage2.run", "qrels.txt", "metrics.json", "report.md"):
        assert (res.out / name).exists()
    exact = brute_force_recall_at_10(open_dataset(ABT_BUY))
    assert res.metrics["queries/evaluated"] == 206
    assert res.metrics["stage1/recall@10"] == pytest.approx(exact, abs=0.01)
