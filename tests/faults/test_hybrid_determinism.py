"""Issue 10, item 7: a hybrid (RRF / DBSF) query returns the same order every time,
whatever order the points were stored in, while the fused scores stay Qdrant's."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.encoders.base import VectorSpec
from retrieval.index import HYBRID, PointBatch, SearchRequest, open_index, point_id
from retrieval.index.rank_fusion import fuse, settled, tied_ranks
from retrieval.types import Hit

SPECS = [VectorSpec("a", 4), VectorSpec("b", 4)]


def store(index, name, vectors, order):
    index.create(name, SPECS, {"dataset": "d"})
    ids = [f"p{i}" for i in order]
    index.upsert(
        name,
        PointBatch(
            [point_id("d", i) for i in ids],
            {k: [vectors[k][i] for i in order] for k in ("a", "b")},
            [{"id": i} for i in ids],
        ),
    )


def hybrid(index, name, query, fusion, limit=30, prefetch=10):
    req = SearchRequest(query, HYBRID, limit, ("a", "b"), fusion, prefetch_limit=prefetch)
    return [(h.id, round(h.score, 6)) for h in index.search(name, [req])[0]]


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_ties_break_the_same_way_whatever_the_storage_order(tmp_path, fusion):
    rng = np.random.default_rng(0)
    # 60 points but only 6 distinct vectors per name: almost every score is a tie,
    # including at the prefetch limit
    base = {k: rng.normal(size=(6, 4)).astype(np.float32) for k in ("a", "b")}
    vectors = {k: [base[k][i % 6] for i in range(60)] for k in ("a", "b")}
    query = {k: rng.normal(size=4).astype(np.float32) for k in ("a", "b")}
    index = open_index("edge", data_dir=tmp_path)
    try:
        store(index, "forward", vectors, list(range(60)))
        store(index, "backward", vectors, list(reversed(range(60))))
        answers = {hybrid(index, name, query, fusion).__repr__() for name in ["forward"] * 3}
        answers.add(hybrid(index, "backward", query, fusion).__repr__())
        assert len(answers) == 1
    finally:
        index.close()


def above_last(pairs):
    """Id -> score of the points that beat the last one (the cut may split its tie)."""
    pairs = list(pairs)
    last = pairs[-1][1] + 1e-5
    return {pid: score for pid, score in pairs if score > last}


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_fusion_matches_qdrants_own_when_nothing_ties(tmp_path, fusion):
    rng = np.random.default_rng(1)
    vectors = {k: list(rng.normal(size=(200, 4)).astype(np.float32)) for k in ("a", "b")}
    query = {k: rng.normal(size=4).astype(np.float32) for k in ("a", "b")}
    index = open_index("edge", data_dir=tmp_path)
    try:
        store(index, "c", vectors, list(range(200)))
        ours = hybrid(index, "c", query, fusion, limit=20, prefetch=50)
        qe = index.qe
        prefetches = [
            qe.Prefetch(limit=50, query=qe.Query.Nearest(query[n].tolist(), using=n))
            for n in ("a", "b")
        ]
        method = qe.Fusion.Rrf(k=60) if fusion == "rrf" else qe.Fusion.Dbsf()
        request = qe.QueryRequest(limit=20, prefetches=prefetches, query=method, with_payload=True)
        theirs = index._shard("c").query_batch(qe.QueryBatchRequest([request]))[0]
        assert np.allclose([s for _, s in ours], [p.score for p in theirs], atol=1e-5)
        # the same points at the same scores; RRF ties (rank 3 in one list only, in
        # either) may come in another order from Qdrant, in id order from us
        mine, qdrant = above_last(ours), above_last((p.payload["id"], p.score) for p in theirs)
        assert len(mine) > 5 and mine == pytest.approx(qdrant, abs=1e-5)
    finally:
        index.close()


def test_a_tie_group_cut_by_the_limit_is_left_out():
    hits = [Hit("x", 0.9), Hit("c", 0.5), Hit("a", 0.5), Hit("b", 0.5)]
    # a full answer (4 fetched) ending in a tie: who else scored 0.5 is unknown
    assert [h.id for h in settled(hits, cut=3, fetched=4)] == ["x"]
    # a short answer holds every point: the tie is kept, in id order
    assert [h.id for h in settled(hits, cut=3, fetched=10)] == ["x", "a", "b"]
    fused = fuse([[Hit("b", 1.0), Hit("a", 0.5)], [Hit("a", 1.0), Hit("b", 0.5)]], "rrf")
    assert [h.id for h in fused] == ["a", "b"] and fused[0].score == fused[1].score


def test_tied_scores_share_a_rank_so_the_other_vector_decides():
    # four listings share one title (tied text scores); the image list alone tells
    # them apart, so the fused order must follow the image list, not the ids
    title = [Hit("a", 0.9), Hit("b", 0.9), Hit("c", 0.9), Hit("d", 0.9), Hit("e", 0.2)]
    image = [Hit("d", 0.8), Hit("c", 0.7), Hit("b", 0.6), Hit("a", 0.5), Hit("e", 0.1)]
    fused = fuse([title, image], "rrf")
    assert [h.id for h in fused] == ["d", "c", "b", "a", "e"]
    assert fused[0].score == 1 / 60 + 1 / 60
    assert tied_ranks([0.9, 0.9, 0.7, 0.7, 0.7, 0.1]) == [0, 0, 2, 2, 2, 5]
