"""Stored vectors and candidate edges work the same on both back-ends: vectors fetched
by point id in batches, candidates asked with those vectors, calibrated cosines."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.encoders.base import SparseVec, VectorSpec
from retrieval.errors import UsageError
from retrieval.index import IndexConfig, PointBatch, open_index, point_id
from search.match.edges import MEAN, score_edges, search_candidates
from search.match.vectors import fetch_vectors

SPECS = [VectorSpec("text", 3), VectorSpec("sparse", None, distance="dot", idf=True)]
# a~b (same dense direction, shared terms), c~d, e alone
DENSE = {
    "a": [1, 0, 0],
    "b": [0.9, 0.1, 0],
    "c": [0, 1, 0],
    "d": [0, 0.95, 0.1],
    "e": [0, 0, 1],
}
TERMS = {"a": [1, 2, 3], "b": [1, 2, 4], "c": [5, 6], "d": [5, 6, 7], "e": [8, 9]}


@pytest.fixture(params=["edge", "server", "cluster"])
def index(request, tmp_path):
    if request.param == "edge":
        idx = open_index("edge", data_dir=tmp_path)
    elif request.param == "server":
        idx = open_index("server", url=request.getfixturevalue("qdrant_node").url)
    else:  # sharded and replicated: batched fetches and searches merge across peers
        cluster = request.getfixturevalue("qdrant_cluster")
        idx = open_index("server", url=cluster.url, config=IndexConfig(shards=3, replicas=2))
    idx.create("c", SPECS, {"encoders": ["x"], "dataset": "ds"}, recreate=True)
    ids = list(DENSE)
    vectors = {
        "text": [np.array(DENSE[i], dtype=np.float32) for i in ids],
        "sparse": [
            SparseVec(np.array(TERMS[i], dtype=np.uint32), np.ones(len(TERMS[i]), np.float32))
            for i in ids
        ],
    }
    payloads = [{"id": i, "title": i, "dataset": "ds"} for i in ids]
    idx.upsert("c", PointBatch([point_id("ds", i) for i in ids], vectors, payloads))
    idx.optimize("c")
    yield idx
    idx.close()


def test_fetch_search_and_score_without_encoding(index):
    store = fetch_vectors(index, "c", "ds", list(DENSE), ["text", "sparse"], batch_size=2)
    assert store.ids == list(DENSE) and set(store.names) == {"text", "sparse"}
    src, dst = search_candidates(index, "c", store, np.arange(5), ["text", "sparse"], 1)
    pairs = {(store.ids[i], store.ids[j]) for i, j in zip(src, dst)}
    assert {("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")} <= pairs
    assert all(i != j for i, j in zip(src, dst))  # self excluded
    edges = score_edges(store, src, dst, {"text": 1.0, "sparse": 1.0})
    ab = [e for e in range(len(edges)) if (store.ids[src[e]], store.ids[dst[e]]) == ("a", "b")][0]
    want = 0.9 / np.linalg.norm([0.9, 0.1, 0])
    assert edges.sims["text"][ab] == pytest.approx(want, abs=1e-5)
    assert 0 < edges.sims["sparse"][ab] < 1  # TF-IDF cosine of two of three shared terms
    assert edges.sims[MEAN][ab] == pytest.approx(
        (edges.sims["text"][ab] + edges.sims["sparse"][ab]) / 2, abs=1e-6
    )


def test_a_listing_missing_from_the_collection_is_one_line(index):
    with pytest.raises(UsageError, match="listing 'zz' is not in collection 'c'"):
        fetch_vectors(index, "c", "ds", ["a", "zz"], ["text"])
