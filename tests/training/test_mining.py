"""Negative mining: best-ranked hard negatives, random ones, the false-negative guard,
the counts and the JSONL layout."""

from __future__ import annotations

import json

import pytest

from retrieval.errors import UsageError
from retrieval.types import Hit, Product, Query
from training.mining import (
    MineConfig,
    MineCounts,
    mine_negatives,
    mine_query,
    parse_range,
    random_negatives,
    read_mined,
    write_jsonl,
)


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


def test_hard_negatives_are_the_best_ranked_non_matches_in_range():
    row = hits(60)
    query = Query(Product("p3", "item 3", group="g3"), matches=("p10", "p17"))
    negs, guarded = mine_query(query, row, MineConfig(ranks=(5, 40), hard=10, margin=None))
    ranks = {h.id: r for r, h in enumerate(row, start=1)}
    # ranks 5..40 minus the query's group g3 (p10, p17 are also matches): p4 p5 p6 p7 p8 p9 p11..
    assert [h.id for h in negs] == ["p4", "p5", "p6", "p7", "p8", "p9", "p11", "p12", "p13", "p14"]
    for h in negs:
        assert 5 <= ranks[h.id] <= 40 and h.payload["group"] != "g3"
    assert guarded == 0


def test_guard_drops_candidates_far_above_the_positive():
    row = hits(30)  # scores 1.00, 0.99, ... : p20 (a match) scores 0.80
    query = Query(Product("q", "x"), matches=("p20",))
    negs, guarded = mine_query(query, row, MineConfig(ranks=(1, 30), hard=5, margin=0.05))
    # above 0.80 + 0.05 = 0.85: p0..p14 (scores 1.00 .. 0.86) are likely false negatives
    assert guarded == 15
    assert [h.id for h in negs] == ["p15", "p16", "p17", "p18", "p19"]
    # no positive among the hits: nothing to compare with, nothing dropped
    lost = Query(Product("q", "x"), matches=("elsewhere",))
    assert mine_query(lost, row, MineConfig(hard=3, margin=0.05)) == (row[:3], 0)


def test_random_negatives_are_seeded_and_never_a_match_or_the_group():
    products = [Product(f"p{i}", f"item {i}", group=f"g{i % 3}") for i in range(40)]
    query = Query(Product("p0", "item 0", group="g0"), matches=("p3",))
    first = random_negatives(query, products, {"p1"}, 5, seed=0)
    assert len(first) == 5 and len({p.id for p in first}) == 5
    assert all(p.group != "g0" and p.id not in ("p0", "p1", "p3") for p in first)
    assert first == random_negatives(query, products, {"p1"}, 5, seed=0)
    assert first != random_negatives(query, products, {"p1"}, 5, seed=1)


def test_small_pool_keeps_everything_it_has():
    query = Query(Product("q", "x"), matches=("p1",))
    negs, _ = mine_query(query, hits(4), MineConfig(ranks=(2, 200), hard=15))
    assert [h.id for h in negs] == ["p2", "p3"]  # p0 is rank 1, p1 a match


def test_rows_in_flag_embedding_layout_with_counts(tmp_path):
    products = {f"p{i}": Product(f"p{i}", f"item {i}") for i in range(30)}
    queries = [
        Query(Product("q1", "first"), matches=("p2",)),
        Query(Product("q2", "second"), matches=("gone",)),  # no match known: skipped
    ]
    counts = MineCounts()
    config = MineConfig(ranks=(1, 30), hard=3, random=2, margin=None)
    rows = mine_negatives(queries, [hits(30), hits(30)], products, config, counts=counts)
    assert len(rows) == 1
    row = rows[0]
    assert row["query"] == "first" and row["pos"] == ["item 2"] and row["pos_ids"] == ["p2"]
    assert row["neg_ids"][:3] == ["p0", "p1", "p3"]  # hard first, best-ranked
    assert len(row["neg"]) == 5 and row["neg"] == [products[i].title for i in row["neg_ids"]]
    assert (counts.queries, counts.rows, counts.hard, counts.random) == (2, 1, 3, 2)
    assert "3 hard + 2 random" in counts.describe()
    assert counts.identical == 0
    clones = hits(30)  # p0 titled like the query, p1 like its match
    clones[0].payload["title"], clones[1].payload["title"] = "FIRST ", "Item  2"
    again = MineCounts()
    kept = mine_negatives(queries[:1], [clones], products, config, counts=again)
    assert kept[0]["neg_ids"] == row["neg_ids"]  # counted, kept for image-text trainers
    assert again.identical == 2 and "2 negatives titled like" in again.describe()
    path = write_jsonl(rows, tmp_path / "sub" / "neg.jsonl")
    assert json.loads(path.read_text().splitlines()[0])["query_id"] == "q1"
    assert read_mined(path) == rows


def test_bad_mine_config():
    for bad in (dict(ranks=(0, 5)), dict(hard=0, random=0), dict(margin=-1.0)):
        with pytest.raises(UsageError):
            MineConfig(**bad)


def test_read_mined_errors(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        read_mined(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "pos": ["b"]}\n{oops\n')
    with pytest.raises(UsageError, match="bad.jsonl:2"):
        read_mined(bad)
