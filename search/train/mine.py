"""``search mine``: hard negatives for a split's queries from the dataset's collection.

The collection is picked (and indexed first when missing) as ``search eval`` picks it;
stage 1 runs each query of the split with ``K = last rank`` (restricted to the split and
without the query itself on self-matching sets), and training.mining samples the
negatives and writes the JSONL file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import UsageError
from retrieval.retriever import Retriever, default_vector
from search.config import AppConfig

log = logging.getLogger(__name__)
ProgressFactory = Callable[[str, int], Callable[[int], None]]


@dataclass
class MineReport:
    """What a mining run wrote."""

    out: Path
    collection: str
    vector: str
    queries: int
    rows: int
    negatives: int
    seconds: float


def mine(
    cfg: AppConfig,
    dataset_path: str,
    out: str | Path,
    *,
    encoders: Sequence[str] | None = None,
    collection: str | None = None,
    fmt: str | None = None,
    ranks: str = "2-200",
    negatives: int = 15,
    split: str | None = "train",
    seed: int = 0,
    progress: ProgressFactory | None = None,
) -> MineReport:
    """Mine hard negatives for one split's labelled queries and write them as JSONL."""
    from retrieval.data import open_dataset
    from search.collection import ensure_collection
    from search.indexing import connect
    from training.mining import MineConfig, mine_negatives, parse_range, write_jsonl

    start = time.perf_counter()
    lo, hi = parse_range(ranks)
    if negatives < 1:
        raise UsageError("--negatives must be at least 1")
    dataset = open_dataset(dataset_path, format=fmt)
    products = list(dataset.products())
    if not products:
        raise UsageError(f"dataset {dataset_path} has no products")
    queries = [q for q in dataset.queries(split) if q.matches]
    if not queries:
        raise UsageError(f"{dataset_path}: no labelled queries in split {split!r}")
    choice = ensure_collection(
        cfg, dataset, dataset_path, products, fmt, collection, encoders, progress
    )
    index = connect(cfg)
    try:
        retriever = Retriever.for_collection(index, choice.name)
        vector = default_vector(retriever.vector_names(), cfg.stage1.vector)
        flt = dataset.search_filter(split)
        tick = progress(f"stage 1 · {split}", len(queries)) if progress else None
        hits = retriever.search(
            [q.product for q in queries],
            using=vector,
            k=hi,
            hybrid=cfg.stage1.hybrid,
            fusion=cfg.stage1.fusion,
            filters=[flt] * len(queries) if flt else None,
            exclude_self=dataset.self_match,
            batch_size=cfg.stage1.batch_size,
            payload=["id", "title", "group"],
            progress=tick,
        )
    finally:
        index.close()
    by_id = {p.id: p for p in products}
    if not dataset.self_match:
        # query/gallery sets: positives are gallery items; queries are not in `products`
        by_id.update({q.id: q.product for q in queries if q.id not in by_id})
    config = MineConfig(ranks=(lo, hi), hard=negatives, seed=seed)
    rows = mine_negatives(queries, hits, by_id, config, gallery=products)
    path = write_jsonl(rows, out)
    log.info("wrote %d rows to %s", len(rows), path)
    return MineReport(
        path,
        choice.name,
        vector,
        len(queries),
        len(rows),
        sum(len(r["neg"]) for r in rows),
        time.perf_counter() - start,
    )
