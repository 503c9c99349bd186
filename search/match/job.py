"""``search match DATASET``: every listing's matches, written as a Kaggle submission.

A catalogue (Shopee folder or zip, ``test.csv`` included; a catalogue file) is matched
against itself with the vectors stored at index time, fetched by point id (never
encoded again). A query/gallery set encodes its queries and matches them to the
gallery. The decision is a saved matcher's rule (or one given by flags).

Outputs, each written whole at the end (a killed run leaves the old file, and a
re-run writes the same one): ``matches.csv`` (``posting_id,matches``, the listing
itself first, space-separated) and ``matches.jsonl`` (each listing's matches with
their scores and the rule part that admitted them).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.atomic import write_text
from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.index.base import VectorIndex
from retrieval.types import Product
from search.match.edges import Edges
from search.match.edgeset import EdgeSet
from search.match.matcher import Matcher
from search.match.pairs import load_model
from search.match.rules import Rule, Sets, kept_edges
from search.match.vectors import build_store, fetch_vectors

log = logging.getLogger(__name__)
ProgressFactory = Callable[[str, int], Callable[[int], None]]
QUERY_PREFIX = "\x1fquery:"  # query rows' ids in a query/gallery store, apart from gallery ids


@dataclass
class MatchResult:
    """What a match job wrote and how fast it ran."""

    out: Path
    listings: int
    pairs: int
    rule: str
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def csv(self) -> Path:
        return self.out / "matches.csv"

    @property
    def jsonl(self) -> Path:
        return self.out / "matches.jsonl"

    @property
    def rate(self) -> float:
        return self.listings / self.seconds if self.seconds else 0.0


def self_edgeset(
    index: VectorIndex,
    collection: str,
    dataset: str,
    products: list[Product],
    matcher: Matcher,
    *,
    filter_key: str | None = None,
    progress: ProgressFactory | None = None,
) -> EdgeSet:
    """Listings matched against each other, with their stored vectors."""
    from search.match.edgeset import query_filters

    tick = progress("fetching vectors", len(products)) if progress else None
    store = fetch_vectors(
        index, collection, dataset, [p.id for p in products], matcher.vectors, progress=tick
    )
    rows = np.arange(len(products))
    flt = query_filters(products, rows, filter_key)
    return EdgeSet(index, collection, products, store, rows, matcher.weights, matcher.k, flt)


def query_edgeset(
    index: VectorIndex,
    collection: str,
    dataset: Dataset,
    matcher: Matcher,
    progress: ProgressFactory | None = None,
) -> EdgeSet:
    """Queries (encoded now) matched to the gallery (stored vectors)."""
    from retrieval.retriever import Retriever

    gallery = list(dataset.products())
    queries = [q.product for q in dataset.queries()]
    tick = progress("fetching vectors", len(gallery)) if progress else None
    g = fetch_vectors(
        index, collection, dataset.name, [p.id for p in gallery], matcher.vectors, progress=tick
    )
    retriever = Retriever.for_collection(index, collection)
    raw: list[dict[str, Any]] = []
    tick = progress("encoding queries", len(queries)) if progress else None
    for start in range(0, len(queries), 64):
        batch = queries[start : start + 64]
        enc = retriever.encode(batch, query=True)
        for i in range(len(batch)):
            raw.append({n: col[i] for n, col in enc.vectors.items() if col[i] is not None})
        if tick:
            tick(len(batch))
    ids = g.ids + [QUERY_PREFIX + q.id for q in queries]
    store = build_store(ids, g.raw + raw, matcher.vectors)
    products = gallery + queries
    allowed = np.r_[np.ones(len(gallery), bool), np.zeros(len(queries), bool)]
    rows = np.arange(len(gallery), len(products))
    return EdgeSet(
        index, collection, products, store, rows, matcher.weights, matcher.k, None, allowed
    )


def add_pair_scores(es: EdgeSet, matcher: Matcher, progress: ProgressFactory | None) -> None:
    """Score the edges with the matcher's pair model."""
    assert matcher.pair is not None
    booster = load_model(matcher.pair.path(matcher.base), matcher.pair.columns)
    tick = progress("pair model", 1) if progress else None
    es.add_pair(booster, es.features(matcher.pair.neighbours))
    if tick:
        tick(1)


def explain(edges: Edges, rule: Rule, sets: Sets, n: int) -> dict[tuple[int, int], dict]:
    """Why each matched pair is there: the first thresholded score it reaches, else
    ``min2`` (kept as the nearest) or ``group`` (joined by group consistency)."""
    keys = edges.keys(n)
    order = np.argsort(keys)
    kept = kept_edges(edges, rule)
    out: dict[tuple[int, int], dict] = {}
    for i, js in sets.items():
        for j in js:
            pos = int(np.searchsorted(keys[order], i * n + j)) if len(keys) else 0
            e = int(order[pos]) if pos < len(keys) and keys[order][pos] == i * n + j else -1
            if e < 0:
                out[(i, j)] = {"rule": "group", "score": None}
                continue
            why = next(
                (s for s, t in rule.thresholds.items() if edges.sims[s][e] >= t),
                "min2" if kept[e] else "group",
            )
            out[(i, j)] = {
                "rule": why,
                "score": round(float(edges.sims[rule.primary][e]), 6),
                "scores": {s: round(float(v[e]), 6) for s, v in edges.sims.items()},
            }
    return out


def write_matches(
    es: EdgeSet, sets: Sets, why: dict[tuple[int, int], dict], out: Path, self_match: bool
) -> tuple[Path, Path]:
    """``matches.csv`` and ``matches.jsonl``, both written atomically."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["posting_id", "matches"])
    lines = []
    for i in es.queries.tolist():
        pid = es.products[i].id
        js = sorted(sets.get(i, ()), key=lambda j: (-(why[(i, j)]["score"] or 0.0), j))
        ids = [es.products[j].id for j in js]
        writer.writerow([pid, " ".join(([pid] if self_match else []) + ids)])
        matches = [{"id": es.products[j].id, **why[(i, j)]} for j in js]
        lines.append(json.dumps({"id": pid, "matches": matches}))
    out.mkdir(parents=True, exist_ok=True)
    csv_path = write_text(out / "matches.csv", rows.getvalue())
    jsonl_path = write_text(out / "matches.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    return csv_path, jsonl_path


def run_match(
    index: VectorIndex,
    collection: str,
    dataset: Dataset,
    matcher: Matcher,
    rule: Rule,
    out: Path,
    progress: ProgressFactory | None = None,
) -> MatchResult:
    """Match the dataset with an open index and write the outputs."""
    start = time.perf_counter()
    info = index.info(collection)
    if info is None:
        raise UsageError(f"no collection {collection!r}; run `search index` first")
    matcher.check(info, rule)
    if dataset.self_match:
        products = list(dataset.products())
        es = self_edgeset(index, collection, dataset.name, products, matcher, progress=progress)
    else:
        es = query_edgeset(index, collection, dataset, matcher, progress)
    es.search(progress)
    if "pair" in rule.scores:
        add_pair_scores(es, matcher, progress)
    edges = es.edges_for(rule, progress)
    sets = es.decide(rule, progress)
    why = explain(edges, rule, sets, es.n)
    write_matches(es, sets, why, out, dataset.self_match)
    pairs = sum(len(v) for k, v in sets.items() if k in set(es.queries.tolist()))
    return MatchResult(out, len(es.queries), pairs, rule.name, time.perf_counter() - start)
