"""Hard-negative mining: rank range, exclusions, seeded sampling, the JSONL layout."""

from __future__ import annotations

import json

import pytest

from retrieval.errors import UsageError
from retrieval.types import Hit, Product, Query
from training.mining import mine_negatives, mine_query, parse_range, read_mined, write_jsonl


def hits(n: int, group_of=lambda i: f"g{i % 7}") -> list[Hit]:
    return [
        Hit(f"p{i}", 1.0 - i / 100, {"id": f"p{i}", "title": f"item {i}", "group": group_of(i)})
        for i in range(n)
    ]


def test_parse_range():
    assert parse_range("2-200") == (2, 200)
    assert parse_range(" 1-1 ") == (1, 1)
    for bad in ("200-2", "0-5", "x-3", "5"):
        with pytest.raises(UsageError):
            parse_range(bad)


def test_negatives_skip_matches_and_group_and_stay_in_range():
    row = hits(60)
    query = Query(Product("p3", "item 3", group="g3"), matches=("p10", "p17"))
    negs = mine_query(query, row, ranks=(5, 40), n=10, seed=1)
    assert len(negs) == 10
    ranks = {h.id: r for r, h in enumerate(row, start=1)}
    for h in negs:
        assert 5 <= ranks[h.id] <= 40  # inside the asked range
        assert h.id not in ("p3", "p10", "p17")  # never the query or a match
        assert h.payload["group"] != "g3"  # never the query's group
    assert [ranks[h.id] for h in negs] == sorted(ranks[h.id] for h in negs)


def test_sampling_is_seeded_per_query():
    row = hits(100)
    query = Query(Product("q", "x"), matches=("p0",))
    first = mine_query(query, row, ranks=(2, 100), n=5, seed=0)
    assert first == mine_query(query, list(row), ranks=(2, 100), n=5, seed=0)
    assert first != mine_query(query, row, ranks=(2, 100), n=5, seed=1)


def test_small_pool_keeps_everything_it_has():
    query = Query(Product("q", "x"), matches=("p1",))
    negs = mine_query(query, hits(4), ranks=(2, 200), n=15)
    assert [h.id for h in negs] == ["p2", "p3"]  # p0 is rank 1, p1 a match


def test_rows_in_flag_embedding_layout(tmp_path):
    products = {f"p{i}": Product(f"p{i}", f"item {i}") for i in range(30)}
    queries = [
        Query(Product("q1", "first"), matches=("p2",)),
        Query(Product("q2", "second"), matches=("gone",)),  # no match known: skipped
    ]
    rows = mine_negatives(queries, [hits(30), hits(30)], products, ranks=(2, 30), n=3)
    assert len(rows) == 1
    row = rows[0]
    assert row["query"] == "first" and row["pos"] == ["item 2"] and row["pos_ids"] == ["p2"]
    assert len(row["neg"]) == 3 and row["neg"] == [products[i].title for i in row["neg_ids"]]
    path = write_jsonl(rows, tmp_path / "sub" / "neg.jsonl")
    assert json.loads(path.read_text().splitlines()[0])["query_id"] == "q1"
    assert read_mined(path) == rows


def test_read_mined_errors(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        read_mined(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "pos": ["b"]}\n{oops\n')
    with pytest.raises(UsageError, match="bad.jsonl:2"):
        read_mined(bad)
