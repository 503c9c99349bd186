"""Behaviour every VectorIndex back-end shares (edge, local qdrant-client, server)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.encoders.base import SparseVec, VectorSpec, l2_normalize
from retrieval.errors import SearchError, UsageError
from retrieval.index import PointBatch, SearchRequest, point_id

SPECS = [VectorSpec("text", 8), VectorSpec("image", 4), VectorSpec("sparse", None, "dot", idf=True)]


def sparse(*pairs: tuple[int, float]) -> SparseVec:
    idx, val = zip(*sorted(pairs))
    return SparseVec(np.array(idx, dtype=np.uint32), np.array(val, dtype=np.float32))


def fill(index, name, n=20, seed=0):
    """n points; point i has text = one-hot-ish vector, image only for even i,
    sparse term i and the shared term 999; split alternates train/test."""
    rng = np.random.default_rng(seed)
    text = l2_normalize(rng.normal(size=(n, 8)))
    image = l2_normalize(rng.normal(size=(n, 4)))
    ids = [point_id("ds", f"p{i}") for i in range(n)]
    vectors = {
        "text": list(text),
        "image": [image[i] if i % 2 == 0 else None for i in range(n)],
        "sparse": [sparse((i, 1.0), (999, 1.0)) for i in range(n)],
    }
    payloads = [
        {
            "id": f"p{i}",
            "title": f"item {i}",
            "group": f"g{i // 2}",
            "split": "train" if i % 2 else "test",
        }
        for i in range(n)
    ]
    index.create(name, SPECS, {"encoders": ["x"]})
    index.upsert(name, PointBatch(ids, vectors, payloads))
    index.optimize(name)
    return text, image


def test_point_id_is_stable_and_dataset_scoped():
    assert point_id("shopee", "a") == point_id("shopee", "a")
    assert point_id("shopee", "a") != point_id("other", "a")


def test_upsert_twice_keeps_one_point_per_id(index):
    name = index.test_prefix + "dup"
    fill(index, name)
    fill(index, name)  # the same ids again: replaced, not duplicated
    info = index.info(name)
    assert info.points == 20
    assert {v.name for v in info.vectors} == {"text", "image", "sparse"}
    assert info.meta["encoders"] == ["x"]
    assert name in index.collections()


def test_existing_reports_stored_ids(index):
    name = index.test_prefix + "ex"
    fill(index, name, n=4)
    stored = index.existing(name, [point_id("ds", "p1"), point_id("ds", "nope")])
    assert stored == {point_id("ds", "p1")}


def test_dense_search_finds_itself_first_in_batch_order(index):
    name = index.test_prefix + "dense"
    text, _ = fill(index, name)
    reqs = [SearchRequest({"text": text[i]}, "text", 3) for i in (5, 0, 17)]
    hits = index.search(name, reqs)
    assert [row[0].id for row in hits] == ["p5", "p0", "p17"]
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0][0].title == "item 5"
    assert all(len(row) == 3 for row in hits)


def test_missing_vector_points_are_not_in_that_vector(index):
    name = index.test_prefix + "img"
    _, image = fill(index, name)
    hits = index.search(name, [SearchRequest({"image": image[2]}, "image", 20)])[0]
    ids = {h.id for h in hits}
    assert hits[0].id == "p2"
    assert ids == {f"p{i}" for i in range(0, 20, 2)}  # odd items have no image


def test_sparse_search_uses_idf(index):
    name = index.test_prefix + "sparse"
    fill(index, name)
    # term 999 is in every point (idf ~ 0); term 7 only in p7: p7 must win
    hits = index.search(
        name, [SearchRequest({"sparse": sparse((7, 1.0), (999, 1.0))}, "sparse", 5)]
    )[0]
    assert hits[0].id == "p7"


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_hybrid_fuses_dense_and_sparse(index, fusion):
    name = index.test_prefix + "hyb" + fusion
    text, _ = fill(index, name)
    # dense points to p3, sparse points to p3 as well: fused top-1 is p3
    req = SearchRequest(
        {"text": text[3], "sparse": sparse((3, 1.0))}, "hybrid", 5, ("text", "sparse"), fusion
    )
    hits = index.search(name, [req])[0]
    assert hits[0].id == "p3"
    assert len(hits) == 5


def test_filter_restricts_to_split(index):
    name = index.test_prefix + "flt"
    text, _ = fill(index, name)
    hits = index.search(
        name, [SearchRequest({"text": text[4]}, "text", 20, filter={"split": "train"})]
    )[0]
    assert hits and all(h.payload["split"] == "train" for h in hits)
    assert "p4" not in {h.id for h in hits}  # p4 is a test item


def test_payload_subset_keeps_id(index):
    name = index.test_prefix + "pay"
    text, _ = fill(index, name)
    hit = index.search(name, [SearchRequest({"text": text[1]}, "text", 1, payload=["title"])])[0][0]
    assert hit.id == "p1"
    assert set(hit.payload) == {"id", "title"}


def test_size_mismatch_names_recreate(index):
    name = index.test_prefix + "size"
    fill(index, name, n=2)
    with pytest.raises(UsageError, match="--recreate"):
        index.create(name, [VectorSpec("text", 16)], {"encoders": ["x"]})
    with pytest.raises(UsageError, match="--recreate"):
        index.create(name, SPECS, {"encoders": ["other-model"]})
    index.create(name, [VectorSpec("text", 16)], {"encoders": ["y"]}, recreate=True)
    assert index.info(name).points == 0


def test_bad_query_vectors_are_usage_errors(index):
    name = index.test_prefix + "badq"
    fill(index, name, n=2)
    with pytest.raises(UsageError, match="size 3"):
        index.search(name, [SearchRequest({"text": np.ones(3, dtype=np.float32)}, "text", 1)])
    with pytest.raises(UsageError, match="unknown vector"):
        index.search(name, [SearchRequest({"nope": np.ones(8, dtype=np.float32)}, "nope", 1)])
    with pytest.raises(UsageError, match="fusion"):
        req = SearchRequest(
            {"text": np.ones(8), "image": np.ones(4)}, "hybrid", 1, ("text", "image"), "max"
        )
        index.search(name, [req])


def test_drop_removes_collection(index):
    name = index.test_prefix + "drop"
    fill(index, name, n=2)
    index.drop(name)
    assert index.info(name) is None
    assert name not in index.collections()


def test_unreachable_server_is_one_clear_error():
    from retrieval.index import open_index

    idx = open_index("server", url="http://127.0.0.1:9")
    with pytest.raises(SearchError, match="docker compose up -d qdrant"):
        idx.collections()


def test_fetch_returns_stored_vectors(index):
    name = index.test_prefix + "fetch"
    text, image = fill(index, name, n=4)
    got = index.fetch(name, [point_id("ds", "p0"), point_id("ds", "p1"), point_id("ds", "zz")])
    assert set(got) == {point_id("ds", "p0"), point_id("ds", "p1")}
    p0, p1 = got[point_id("ds", "p0")], got[point_id("ds", "p1")]
    assert set(p0) == {"text", "image", "sparse"} and set(p1) == {"text", "sparse"}
    assert np.allclose(p0["text"], text[0], atol=1e-5)
    assert sorted(p1["sparse"].indices.tolist()) == [1, 999]
