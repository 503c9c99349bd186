"""Hard-negative mining from stage-1 hits, in the layout FlagEmbedding's trainers read.

For each training query, the candidates ranked ``lo``..``hi`` (1-based, the query's own
point already dropped) that are neither a match nor of the query's group are the pool;
``n`` of them are sampled with a generator seeded by (seed, query id), so a re-run, or
a run over a different query order, mines the same negatives (as ``hn_mine`` does).

One JSON object a line: ``{"query", "pos", "neg"}`` (texts, FlagEmbedding's layout) plus
``query_id``, ``pos_ids`` and ``neg_ids`` so our trainers can reach images and groups.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from retrieval.data.records import read_jsonl
from retrieval.errors import UsageError
from retrieval.types import Hit, Product, Query

log = logging.getLogger(__name__)


def parse_range(text: str) -> tuple[int, int]:
    """``"2-200"`` -> ``(2, 200)``: 1-based ranks, both ends included."""
    lo, sep, hi = text.strip().partition("-")
    try:
        first, last = int(lo), int(hi)
    except ValueError:
        raise UsageError(f"bad rank range {text!r}: expected FIRST-LAST, e.g. 2-200") from None
    if not sep or first < 1 or last < first:
        raise UsageError(f"bad rank range {text!r}: expected 1 <= FIRST <= LAST, e.g. 2-200")
    return first, last


def mine_query(
    query: Query,
    hits: Sequence[Hit],
    *,
    ranks: tuple[int, int] = (2, 200),
    n: int = 15,
    seed: int = 0,
) -> list[Hit]:
    """Up to ``n`` hard negatives of one query, in stage-1 rank order."""
    lo, hi = ranks
    matches = set(query.matches)
    group = query.product.group
    pool = [
        h
        for rank, h in enumerate(hits, start=1)
        if lo <= rank <= hi
        and h.id != query.id
        and h.id not in matches
        and (group is None or h.payload.get("group") != group)
    ]
    if len(pool) <= n:
        return pool
    rng = random.Random(f"{seed}:{query.id}")
    keep = set(rng.sample(range(len(pool)), n))
    return [h for i, h in enumerate(pool) if i in keep]


def mine_negatives(
    queries: Sequence[Query],
    hits: Sequence[Sequence[Hit]],
    products: Mapping[str, Product],
    *,
    ranks: tuple[int, int] = (2, 200),
    n: int = 15,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One JSONL row per query with at least one match among ``products``."""
    if n < 1:
        raise UsageError("--negatives must be at least 1")
    rows = []
    for query, row in zip(queries, hits):
        pos_ids = [m for m in query.matches if m in products]
        if not pos_ids:
            continue
        negs = mine_query(query, row, ranks=ranks, n=n, seed=seed)
        rows.append(
            {
                "query": query.product.title,
                "pos": [products[m].title for m in pos_ids],
                "neg": [h.title for h in negs],
                "query_id": query.id,
                "pos_ids": pos_ids,
                "neg_ids": [h.id for h in negs],
            }
        )
    short = sum(len(r["neg"]) < n for r in rows)
    if short:
        log.warning(
            "%d of %d queries have fewer than %d negatives in ranks %s", short, len(rows), n, ranks
        )
    return rows


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON lines (parent folders made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_mined(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a mined-negatives file; a missing or malformed file is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"negatives file not found: {path}; make one with `search mine`")
    rows = []
    for number, row in read_jsonl(path):
        if "query" not in row or "pos" not in row:
            raise UsageError(f"{path}:{number}: expected keys query, pos, neg")
        row.setdefault("neg", [])
        rows.append(row)
    return rows
