"""The query/gallery reader: the real Abt-Buy set as shipped, and small hand-written sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.data.base import split_of_group
from retrieval.data.query_gallery import QueryGalleryDataset
from retrieval.errors import UsageError

ABT_BUY = Path(__file__).resolve().parents[3] / "shared" / "data" / "abt-buy"


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


@pytest.fixture
def tiny(tmp_path) -> Path:
    _write(
        tmp_path / "gallery.jsonl",
        [
            {"id": "g1", "title": "Nike Air Max 90", "image": "img/g1.jpg", "brand": "nike"},
            {"id": "g2", "title": "Adidas Samba", "image": None},
            {"id": 3, "title": "Puma Suede"},  # numeric id, no image key
        ],
    )
    _write(
        tmp_path / "queries.jsonl",
        [
            {"id": "q1", "title": "air max 90", "image": None, "matches": ["g1"], "split": "test"},
            {"id": "q2", "title": "samba og", "matches": ["g2", "3"]},  # no split
            {"id": "q3", "title": "gone", "matches": ["nope"], "split": "test"},
        ],
    )
    return tmp_path


def test_tiny_gallery_products(tiny):
    data = QueryGalleryDataset(tiny)
    g1, g2, g3 = data.products()
    assert g1.image_path == str(tiny / "img" / "g1.jpg")  # relative to the folder
    assert g1.fields == {"brand": "nike"}
    assert g2.image_path is None and g2.group is None
    assert g3.id == "3" and g3.image_path is None
    assert data.name == tiny.name and not data.self_match
    assert data.search_filter("test") is None


def test_tiny_queries_and_splits(tiny, caplog):
    data = QueryGalleryDataset(tiny, seed=5)
    q1, q2, q3 = data.queries()
    assert q1.matches == ("g1",) and q1.split == "test" and q1.product.fields["split"] == "test"
    assert q2.matches == ("g2", "3")
    assert q2.split == split_of_group("q2", 5) == "train" == q2.product.fields["split"]
    assert q3.matches == ("nope",)  # kept: evaluators count it as a miss
    assert "1 of 3 queries" in caplog.text
    assert [q.id for q in data.queries("test")] == ["q1", "q3"]
    assert [q.id for q in data.queries("train")] == ["q2"]
    assert "matches" not in q1.product.fields


def test_bad_json_line_names_file_and_line(tiny):
    lines = (tiny / "queries.jsonl").read_text().splitlines()
    lines[1] = '{"id": "q2", "title": '
    (tiny / "queries.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UsageError, match=r"queries\.jsonl:2: bad JSON"):
        QueryGalleryDataset(tiny).queries()


def test_record_without_id_and_non_object_line(tiny):
    (tiny / "gallery.jsonl").write_text('{"id": "g1"}\n\n["not", "an", "object"]\n')
    with pytest.raises(UsageError, match=r"gallery\.jsonl:3"):
        list(QueryGalleryDataset(tiny).products())
    (tiny / "gallery.jsonl").write_text('{"title": "no id"}\n')
    with pytest.raises(UsageError, match=r"gallery\.jsonl:1: record has no 'id'"):
        list(QueryGalleryDataset(tiny).products())


def test_missing_queries_file(tmp_path):
    _write(tmp_path / "gallery.jsonl", [{"id": "g1"}])
    with pytest.raises(UsageError, match="no queries.jsonl"):
        QueryGalleryDataset(tmp_path)


abt = pytest.mark.skipif(not ABT_BUY.exists(), reason="shared abt-buy set not present")


@abt
def test_abt_buy_counts():
    data = QueryGalleryDataset(ABT_BUY)
    assert data.name == "abt-buy"
    assert len(list(data.products())) == 1035
    assert len(data.queries()) == 1016
    assert len(data.queries("test")) == 206
    gallery = {p.id for p in data.products()}
    assert all(set(q.matches) <= gallery for q in data.queries())


@abt
def test_abt_buy_records_as_written():
    data = QueryGalleryDataset(ABT_BUY)
    first = next(data.products())
    assert first.id == "buy-0002d7a45f9f"
    assert first.title == "sharp lc26dv24u 26 ' tv/dvd combo"
    assert first.image_path is None
    assert first.fields["price"] == "508.72"
    q = data.queries()[0]
    assert q.id == "abt-0049b1562194"
    assert q.matches == ("buy-95c386effbd7",)
    assert q.split == "valid"
    assert q.product.fields["hard_negatives"][0] == "buy-6f5c178a4462"
