"""The two-stage pipeline on the edge back-end with lexical vectors.

The reranker here scores by word overlap of titles, a rule simple enough to
compute by hand, so the pipeline's plumbing (order, top N, blend, features,
match decision) is checked against known numbers."""

from __future__ import annotations

import math

import pytest

from retrieval.index import open_index
from retrieval.retriever import Retriever
from retrieval.types import Product
from search.config import Stage1Config, Stage2Config
from search.pipeline import Pipeline, similarity

CATALOG = [
    Product("a1", "samsung galaxy a52 128gb", group="a"),
    Product("a2", "samsung galaxy a52 128gb black", group="a"),
    Product("b1", "samsung galaxy a52 256gb", group="b"),
    Product("c1", "xiaomi redmi note 10", group="c"),
]


class OverlapReranker:
    """Jaccard overlap of title words; asks the pipeline for per-vector features."""

    spec = "overlap"
    needs_features = True

    def __init__(self):
        self.seen: list[dict[str, float]] = []

    def score(self, pairs):
        out = []
        for q, c in pairs:
            self.seen.append(dict(c.features))
            a, b = set(q.title.split()), set(c.product.title.split())
            out.append(len(a & b) / len(a | b))
        return out


@pytest.fixture
def retriever(tmp_path):
    index = open_index("edge", data_dir=tmp_path)
    r = Retriever.from_specs(["sparse", "sparse:word,name=words"], index, "p")
    r.index_dataset(CATALOG, "toy")
    yield r
    index.close()


def test_stage2_reorders_and_keeps_top_n(retriever):
    rr = OverlapReranker()
    pipe = Pipeline(retriever, rr, Stage1Config(k=4, vector="sparse"), Stage2Config(n=2))
    run = pipe.run([Product("q", "samsung galaxy a52 128gb black")])
    res = run.results[0]
    assert len(res.stage1) == 4 and len(res.stage2) == 2
    assert res.stage2[0].id == "a2" and res.stage2[0].score == pytest.approx(1.0)
    assert res.stage2[1].id == "a1" and res.stage2[1].score == pytest.approx(4 / 5)
    # stage-1 ranks travel with the candidates; features were filled from stored vectors
    assert {c.stage1_rank for c in res.stage1} == {1, 2, 3, 4}
    assert all("sim_sparse" in f and "sim_words" in f for f in rr.seen)
    assert all(0.0 <= f["sim_words"] <= 1.0 + 1e-6 for f in rr.seen)
    # stage 2 rescored copies: the stage-1 candidates keep their stage-1 scores
    assert all(c.score == c.stage1_score for c in res.stage1)
    # the pipeline timed both stages itself: one latency share per query and stage
    assert len(run.timing.stage1_ms) == len(run.timing.stage2_ms) == 1
    assert run.no_vector == [] and run.failures == {}


def test_blend_mixes_normalised_stage1_score(retriever):
    s1, s2 = Stage1Config(k=4, vector="sparse"), Stage2Config(n=4, blend=1.0)
    pipe = Pipeline(retriever, OverlapReranker(), s1, s2)
    res = pipe.run([Product("q", "samsung galaxy a52 128gb black")]).results[0]
    # blend 1.0: the final order is the stage-1 order, scores min-max scaled to [0, 1]
    assert [c.id for c in res.stage2] == [c.id for c in res.stage1]
    assert res.stage2[0].score == pytest.approx(1.0) and res.stage2[-1].score == pytest.approx(0.0)


def test_exclude_self_and_no_reranker(retriever):
    pipe = Pipeline(retriever, None, Stage1Config(k=2, vector="hybrid"))
    res = pipe.run([CATALOG[0]], exclude_self=True).results[0]
    assert res.stage2 is None
    assert "a1" not in [c.id for c in res.stage1] and len(res.stage1) == 2
    assert res.final is res.stage1


def test_similarity_dense_and_sparse():
    import numpy as np

    from retrieval.encoders.base import SparseVec

    assert similarity(np.array([1.0, 0]), np.array([1.0, 1.0])) == pytest.approx(1 / math.sqrt(2))
    a = SparseVec(np.array([1, 5], dtype=np.uint32), np.array([1.0, 1.0], dtype=np.float32))
    b = SparseVec(np.array([5, 9], dtype=np.uint32), np.array([2.0, 0.0], dtype=np.float32))
    assert similarity(a, b) == pytest.approx(2 / (math.sqrt(2) * 2))
