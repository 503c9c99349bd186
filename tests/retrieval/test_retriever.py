"""Stage 1 end to end on the edge back-end with the lexical encoder (no torch)."""

from __future__ import annotations

import pytest

from retrieval.errors import UsageError
from retrieval.index import open_index, point_id
from retrieval.retriever import Retriever, batched
from retrieval.types import Product

CATALOG = [
    Product("a1", "Samsung Galaxy A52 128GB Hitam", group="a52-128", fields={"split": "test"}),
    Product(
        "a2", "galaxy a52 samsung 128 gb black promo", group="a52-128", fields={"split": "test"}
    ),
    Product("b1", "Samsung Galaxy A52 256GB Hitam", group="a52-256", fields={"split": "test"}),
    Product("b2", "samsung a52 256 gb original", group="a52-256", fields={"split": "train"}),
    Product("c1", "Xiaomi Redmi Note 10 64GB", group="rn10", fields={"split": "test"}),
    Product("c2", "redmi note 10 xiaomi 64 gb murah", group="rn10", fields={"split": "train"}),
]


@pytest.fixture
def retriever(tmp_path):
    index = open_index("edge", data_dir=tmp_path)
    r = Retriever.from_specs(["sparse", "sparse:word,name=words"], index, "cat")
    yield r
    index.close()


def test_batched_splits_evenly():
    assert [len(b) for b in batched(range(7), 3)] == [3, 3, 1]


def test_index_then_search_finds_the_same_product(retriever):
    report = retriever.index_dataset(CATALOG, "toy", batch_size=4)
    assert (report.written, report.skipped_existing, report.seen) == (6, 0, 6)
    hits = retriever.search([CATALOG[4]], using="sparse", k=3, exclude_self=True)[0]
    assert hits[0].id == "c2"  # the other Redmi listing, despite word order and units
    assert "c1" not in {h.id for h in hits}
    assert len(hits) == 3


def test_rerun_skips_stored_points_and_never_duplicates(retriever):
    retriever.index_dataset(CATALOG[:4], "toy", batch_size=2)
    report = retriever.index_dataset(CATALOG, "toy", batch_size=2)
    assert report.skipped_existing == 4 and report.written == 2
    assert retriever.index.info("cat").points == 6
    assert retriever.index.existing("cat", [point_id("toy", "c2")]) == {point_id("toy", "c2")}


def test_duplicate_ids_in_one_dataset_are_counted_once(retriever):
    report = retriever.index_dataset(CATALOG + [CATALOG[0]], "toy")
    assert report.duplicates == 1
    assert retriever.index.info("cat").points == 6


def test_hybrid_and_split_filter(retriever):
    retriever.index_dataset(CATALOG, "toy")
    hits = retriever.search(
        [CATALOG[4]], using="hybrid", k=5, filters=[{"split": "test"}], exclude_self=True
    )[0]
    assert {h.payload["split"] for h in hits} == {"test"}
    assert "c2" not in {h.id for h in hits}  # c2 is a train item
    assert hits[0].score > 0


def test_query_without_the_vector_gets_no_hits(retriever):
    retriever.index_dataset(CATALOG, "toy")
    hits = retriever.search([Product("q", ""), CATALOG[0]], using="sparse", k=2)
    assert hits[0] == [] and hits[1][0].id == "a1"


def test_for_collection_rebuilds_encoders_from_metadata(retriever, tmp_path):
    retriever.index_dataset(CATALOG, "toy")
    again = Retriever.for_collection(retriever.index, "cat")
    assert again.encoder_specs == ["sparse", "sparse:word,name=words"]
    assert again.vector_names() == ["sparse", "words"]


def test_unknown_vector_and_missing_collection(retriever):
    retriever.index_dataset(CATALOG, "toy")
    with pytest.raises(UsageError, match="unknown vector 'image'"):
        retriever.search([CATALOG[0]], using="image")
    with pytest.raises(UsageError, match="no collection 'other'"):
        Retriever.for_collection(retriever.index, "other")


def test_two_encoders_filling_one_vector_is_an_error(tmp_path):
    index = open_index("edge", data_dir=tmp_path)
    with pytest.raises(UsageError, match="rename one"):
        Retriever.from_specs(["sparse", "sparse:word"], index, "x")
