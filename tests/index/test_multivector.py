"""Multivectors (ColBERT token vectors, MAX_SIM) on every back-end, and the hybrid query
that prefetches dense + sparse candidates and rescores them with the multivector."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.encoders.base import SparseVec, VectorSpec, l2_normalize
from retrieval.errors import UsageError
from retrieval.index import HYBRID, PointBatch, SearchRequest, point_id

SPECS = [
    VectorSpec("dense", 4),
    VectorSpec("lex", None, "dot"),
    VectorSpec("colbert", 3, multivector=True),
]


def tokens(rng, n):
    return l2_normalize(rng.normal(size=(n, 3)))


def fill(index, name, n=12):
    """Point i: a random dense vector, sparse term i and term 100, 2..4 token vectors."""
    rng = np.random.default_rng(0)
    dense = l2_normalize(rng.normal(size=(n, 4)))
    cols = [tokens(rng, 2 + i % 3) for i in range(n)]
    vectors = {
        "dense": list(dense),
        "lex": [
            SparseVec(np.array([i, 100], dtype=np.uint32), np.array([1.0, 0.1], np.float32))
            for i in range(n)
        ],
        "colbert": cols,
    }
    ids = [point_id("ds", f"p{i}") for i in range(n)]
    index.create(name, SPECS, {"encoders": ["bge-m3"]})
    index.upsert(name, PointBatch(ids, vectors, [{"id": f"p{i}"} for i in range(n)]))
    index.optimize(name)
    return dense, cols


def max_sim(query: np.ndarray, doc: np.ndarray) -> float:
    return float((query @ doc.T).max(axis=1).sum())


def test_multivector_roundtrip_and_max_sim_order(index):
    name = index.test_prefix + "mv"
    dense, cols = fill(index, name)
    info = index.info(name)
    assert [v.multivector for v in info.vectors] == [False, False, True]
    stored = index.fetch(name, [point_id("ds", "p4")])[point_id("ds", "p4")]
    assert stored["colbert"].shape == cols[4].shape
    np.testing.assert_allclose(stored["colbert"], cols[4], atol=1e-5)
    query = cols[7][:2]
    req = SearchRequest({"colbert": query}, "colbert", 5)
    hits = index.search(name, [req])[0]
    expected = sorted(range(len(cols)), key=lambda i: -max_sim(query, cols[i]))[:5]
    assert [h.id for h in hits] == [f"p{i}" for i in expected]
    assert hits[0].score == pytest.approx(max_sim(query, cols[expected[0]]), abs=1e-4)


def test_hybrid_prefetch_rescored_by_multivector(index):
    name = index.test_prefix + "hy"
    dense, cols = fill(index, name)
    query = {
        "dense": dense[3],
        # only p3 and p5 share a term with the query: the sparse prefetch finds just them
        "lex": SparseVec(np.array([3, 5], dtype=np.uint32), np.array([1.0, 1.0], np.float32)),
        "colbert": cols[5],
    }
    req = SearchRequest(query, HYBRID, 4, ("dense", "lex"), prefetch_limit=2, rescore="colbert")
    hits = index.search(name, [req])[0]
    assert hits[0].id == "p5"  # its own token vectors win MAX_SIM
    scores = [max_sim(cols[5], cols[int(h.id[1:])]) for h in hits]
    np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-4)
    if getattr(index, "config", None) is not None and index.config.shards > 1:
        # Qdrant runs the whole query on every shard and merges: the prefetch limit holds
        # per shard, so the pool is each shard's top 2 (a superset of the global top 2)
        assert scores == sorted(scores, reverse=True) and len(hits) == 4
        return
    dense_top = list(np.argsort(-(dense @ dense[3]))[:2])
    pool = sorted(set(dense_top) | {3, 5})
    expected = sorted(pool, key=lambda i: -max_sim(cols[5], cols[i]))
    assert [h.id for h in hits] == [f"p{i}" for i in expected][:4]


def test_multivector_query_errors_are_one_line(index):
    name = index.test_prefix + "bad"
    dense, cols = fill(index, name)
    plain = index.test_prefix + "plain"
    index.create(plain, SPECS[:2], {"encoders": ["x"]})
    # a multivector query against a collection without that vector
    with pytest.raises(UsageError, match="unknown vector 'colbert'"):
        index.search(plain, [SearchRequest({"colbert": cols[0]}, "colbert", 3)])
    with pytest.raises(UsageError, match="not a multivector of this collection"):
        req = SearchRequest(
            {"dense": dense[0], "lex": SparseVec(np.array([1], np.uint32), np.ones(1, np.float32))},
            HYBRID,
            3,
            ("dense", "lex"),
            rescore="dense",
        )
        index.search(name, [req])
    with pytest.raises(UsageError, match="is a single vector"):
        index.search(name, [SearchRequest({"colbert": cols[0][0]}, "colbert", 3)])
    with pytest.raises(UsageError, match="has size 2"):
        index.search(name, [SearchRequest({"colbert": cols[0][:, :2]}, "colbert", 3)])
