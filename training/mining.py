"""Negative mining from stage-1 hits, in the layout FlagEmbedding's trainers read.

A query's negatives are a mix (``MineConfig``):

* ``hard``: the best-ranked stage-1 candidates in ``ranks`` (1-based, the query's own
  point already dropped) that are neither a match nor of the query's group: the
  listings stage 1 confuses with the query, which is what a reranker must learn;
* ``random``: a few listings drawn from the whole gallery (seeded by seed and query
  id), so the model also sees easy pairs it would otherwise never be shown;
* a false-negative guard: a candidate whose stage-1 score is above the best positive's
  by more than ``margin`` is likely an unlabelled duplicate of the match and is
  dropped (FlagEmbedding's mining skips the top ranks with its range for the same
  reason; a score margin keeps the hard negatives just above the positive). Scores
  are stage 1's own (cosines for a dense vector); ``margin=None`` turns it off.

What was mined, guarded and left short is counted in ``MineCounts``. One JSON object a
line: ``{"query", "pos", "neg"}`` (texts, FlagEmbedding's layout) plus ``query_id``,
``pos_ids`` and ``neg_ids`` so our trainers can reach images and groups.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from retrieval.atomic import atomic_open
from retrieval.data.records import read_jsonl
from retrieval.errors import UsageError
from retrieval.types import Candidate, Hit, Product, Query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MineConfig:
    """What a query's negatives are made of (the defaults of ``search mine`` and of the
    rerankers' trainers when they mine for themselves)."""

    ranks: tuple[int, int] = (1, 50)  # stage-1 ranks the hard negatives come from
    hard: int = 7  # best-ranked non-matches kept
    random: int = 2  # random gallery listings added
    margin: float | None = 0.3  # drop candidates scored above the best positive + margin
    seed: int = 0

    def __post_init__(self) -> None:
        lo, hi = self.ranks
        if lo < 1 or hi < lo:
            raise UsageError(f"bad rank range {lo}-{hi}: expected 1 <= FIRST <= LAST")
        if self.hard < 0 or self.random < 0 or self.hard + self.random < 1:
            raise UsageError("need at least one negative: --negatives / --random must add to >= 1")
        if self.margin is not None and self.margin < 0:
            raise UsageError(f"the false-negative margin must be >= 0, not {self.margin}")


@dataclass
class MineCounts:
    """What a mining run found, for its report."""

    queries: int = 0  # labelled queries seen
    rows: int = 0  # queries with a positive, written
    hard: int = 0
    random: int = 0
    guarded: int = 0  # candidates dropped by the false-negative guard
    short: int = 0  # rows with fewer hard negatives than asked
    identical: int = 0  # negatives titled like their query or a positive (``unlike``)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for the log and the console."""
        return (
            f"{self.rows} rows: {self.hard} hard + {self.random} random negatives; "
            f"{self.guarded} candidates above a positive by the margin dropped as likely "
            f"false negatives; {self.short} rows short of hard negatives; {self.identical} "
            "negatives titled like their query or a positive (kept; text trainers skip them)"
        )


def read_alike(text: str) -> str:
    """A text as an uncased reader sees it: case and runs of whitespace do not count."""
    return " ".join(text.casefold().split())


def unlike(negatives: Sequence[str], *texts: str) -> list[int]:
    """Indices of the ``negatives`` that do not read like any of ``texts`` (a query and
    its positives). A text model trained on a negative that reads like its query or a
    positive sees one input labelled both ways and can only learn that identical text is
    no evidence of a match: on wdc-products, where offers with one title sit in different
    groups, 6,413 of 49,446 mined negatives (over half the rows) were such, and the
    cross-encoder trained on them scored a match with the query's own title below other
    matches (0.56 against 0.69, valid); left out, its test recall@1 went 0.254 -> 0.343.
    The trainers that read text alone leave them out; an image-text model need not."""
    seen = {read_alike(t) for t in texts}
    return [i for i, t in enumerate(negatives) if read_alike(t) not in seen]


def parse_range(text: str) -> tuple[int, int]:
    """``"2-200"`` -> ``(2, 200)``: 1-based ranks, both ends included."""
    lo, sep, hi = text.strip().partition("-")
    try:
        first, last = int(lo), int(hi)
    except ValueError:
        raise UsageError(f"bad rank range {text!r}: expected FIRST-LAST, e.g. 1-50") from None
    if not sep or first < 1 or last < first:
        raise UsageError(f"bad rank range {text!r}: expected 1 <= FIRST <= LAST, e.g. 1-50")
    return first, last


def _excluded(query: Query) -> tuple[set[str], str | None]:
    return {query.id, *query.matches}, query.product.group


def mine_query(
    query: Query, hits: Sequence[Hit], config: MineConfig | None = None
) -> tuple[list[Hit], int]:
    """The hard negatives of one query in stage-1 rank order, and how many candidates
    the false-negative guard dropped."""
    cfg = config or MineConfig()
    lo, hi = cfg.ranks
    skip, group = _excluded(query)
    pos_scores = [h.score for h in hits if h.id in query.matches]
    ceiling = max(pos_scores) + cfg.margin if pos_scores and cfg.margin is not None else None
    pool, guarded = [], 0
    for rank, h in enumerate(hits, start=1):
        if not lo <= rank <= hi or h.id in skip:
            continue
        if group is not None and h.payload.get("group") == group:
            continue
        if ceiling is not None and h.score > ceiling:
            guarded += 1
            continue
        pool.append(h)
    return pool[: cfg.hard], guarded


def random_negatives(
    query: Query,
    products: Sequence[Product],
    taken: set[str],
    n: int,
    seed: int = 0,
) -> list[Product]:
    """``n`` gallery listings drawn with a generator seeded by (seed, query id) that are
    not the query, a match, of its group or already ``taken``."""
    if n <= 0 or not products:
        return []
    skip, group = _excluded(query)
    rng = random.Random(f"random:{seed}:{query.id}")
    out: list[Product] = []
    seen: set[str] = set()
    for _ in range(20 * n):  # rejection sampling; a tiny gallery may give fewer
        p = products[rng.randrange(len(products))]
        if p.id in skip or p.id in taken or p.id in seen:
            continue
        if group is not None and p.group == group:
            continue
        seen.add(p.id)
        out.append(p)
        if len(out) == n:
            break
    return out


def mine_negatives(
    queries: Sequence[Query],
    hits: Sequence[Sequence[Hit]],
    products: Mapping[str, Product],
    config: MineConfig | None = None,
    *,
    gallery: Sequence[Product] | None = None,
    counts: MineCounts | None = None,
) -> list[dict[str, Any]]:
    """One JSONL row per query with at least one match among ``products``; random
    negatives come from ``gallery`` (default: every product). ``counts``, when
    given, is filled with what was mined."""
    cfg = config or MineConfig()
    counts = counts if counts is not None else MineCounts()
    pool = list(gallery) if gallery is not None else list(products.values())
    rows = []
    for query, row in zip(queries, hits):
        counts.queries += 1
        pos_ids = [m for m in query.matches if m in products]
        if not pos_ids:
            continue
        hard, guarded = mine_query(query, row, cfg)
        taken = {h.id for h in hard}
        easy = random_negatives(query, pool, taken, cfg.random, cfg.seed)
        counts.rows += 1
        counts.hard += len(hard)
        counts.random += len(easy)
        counts.guarded += guarded
        counts.short += len(hard) < cfg.hard
        negs = [h.title for h in hard] + [p.title for p in easy]
        pos_titles = [products[m].title for m in pos_ids]
        counts.identical += len(negs) - len(unlike(negs, query.product.title, *pos_titles))
        rows.append(
            {
                "query": query.product.title,
                "pos": pos_titles,
                "neg": negs,
                "query_id": query.id,
                "pos_ids": pos_ids,
                "neg_ids": [h.id for h in hard] + [p.id for p in easy],
            }
        )
    log.info("mined: %s", counts.describe())
    if counts.short:
        log.warning(
            "%d of %d queries have fewer than %d hard negatives in ranks %d-%d",
            counts.short,
            counts.rows,
            cfg.hard,
            *cfg.ranks,
        )
    return rows


def with_overrides(config: MineConfig, **changes: Any) -> MineConfig:
    """``config`` with the changes that are not None (CLI flags left unset keep the default)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON lines (parent folders made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
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


def candidate_hits(rows: Sequence[Sequence[Candidate]]) -> list[list[Hit]]:
    """Stage-1 candidates (a trainer's own stage-1 run) as the hits the miner reads."""
    return [
        [
            Hit(
                c.id,
                c.stage1_score,
                {"id": c.id, "title": c.product.title, "group": c.product.group},
            )
            for c in row
        ]
        for row in rows
    ]
