"""The catalogue reader: one JSONL, JSON or CSV file, matched within groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.data.catalog import CatalogDataset
from retrieval.errors import UsageError

# split_of_group(..., seed=0): "a" -> valid, "b" -> train
RECORDS = [
    {"id": "p1", "title": "Kaos A", "image": "img/p1.jpg", "group": "a", "price": "10"},
    {"id": "p2", "title": "Kaos A murah", "image": "/abs/p2.jpg", "group": "a", "price": ""},
    {"id": "p3", "title": "Botol", "image": "", "group": "b", "price": ""},
    {"id": "p4", "title": "Tas", "image": "", "group": "", "price": ""},  # no group
    {"id": "p5", "title": "Botol 1L", "image": "", "group": "b", "price": "5"},
]


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(params=["jsonl", "csv", "json"])
def catalog(request, tmp_path, write_csv) -> Path:
    if request.param == "jsonl":
        return _jsonl(tmp_path / "items.jsonl", RECORDS)
    if request.param == "json":
        path = tmp_path / "items.json"
        path.write_text(json.dumps(RECORDS, indent=1), encoding="utf-8")
        return path
    header = tuple(RECORDS[0])
    return write_csv(tmp_path / "items.csv", header, [tuple(r.values()) for r in RECORDS])


def test_products(catalog):
    data = CatalogDataset(catalog)
    products = {p.id: p for p in data.products()}
    assert list(products) == ["p1", "p2", "p3", "p4", "p5"]
    assert products["p1"].image_path == str(catalog.parent / "img" / "p1.jpg")
    assert products["p2"].image_path == "/abs/p2.jpg"
    assert products["p3"].image_path is None
    assert products["p1"].fields == {"price": "10", "split": "valid"}
    assert products["p4"].group is None and products["p4"].fields["split"] == "unlabelled"
    assert {p.fields["split"] for p in products.values() if p.group == "b"} == {"train"}
    assert data.name == "items" and data.format == "catalog" and data.self_match


def test_queries(catalog):
    data = CatalogDataset(catalog)
    assert {q.id: q.matches for q in data.queries()} == {
        "p1": ("p2",),
        "p2": ("p1",),
        "p3": ("p5",),
        "p5": ("p3",),
    }  # p4 has no group: indexed, never a query
    assert [q.id for q in data.queries("valid")] == ["p1", "p2"]
    assert data.queries("test") == []


def test_minimal_jsonl_and_numeric_values(tmp_path):
    path = _jsonl(
        tmp_path / "c.jsonl", [{"id": 1, "title": "x", "group": 7}, {"id": 2, "group": 7}]
    )
    one, two = CatalogDataset(path).products()
    assert (one.id, one.group, two.title) == ("1", "7", "")


def test_record_without_id(tmp_path):
    path = _jsonl(tmp_path / "c.jsonl", [{"id": "x"}, {"title": "no id"}])
    with pytest.raises(UsageError, match=r"c\.jsonl:2: record has no 'id'"):
        list(CatalogDataset(path).products())


def test_csv_without_id_column(tmp_path, write_csv):
    path = write_csv(tmp_path / "c.csv", ("sku", "title"), [("1", "x")])
    with pytest.raises(UsageError, match=r"c\.csv: missing column 'id'"):
        list(CatalogDataset(path).products())


def test_bad_json_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "1"}\n{oops\n')
    with pytest.raises(UsageError, match=r"c\.jsonl:2: bad JSON"):
        list(CatalogDataset(path).products())


def test_wrong_suffix_or_missing_file(tmp_path):
    (tmp_path / "c.txt").write_text("id\n")
    with pytest.raises(UsageError, match="a catalog is a"):
        CatalogDataset(tmp_path / "c.txt")
    with pytest.raises(UsageError, match="dataset not found"):
        CatalogDataset(tmp_path / "nope.jsonl")
