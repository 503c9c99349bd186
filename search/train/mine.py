"""``search mine``: hard negatives for a split's queries from the dataset's collection.

The collection is picked (and indexed first when missing) as ``search eval`` picks it;
stage 1 runs each query of the split with ``K = last rank`` (restricted to the split and
without the query itself on self-matching sets), and training.mining samples the
negatives and writes the JSONL file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.retriever import Retriever
from retrieval.types import Hit, Product, ProgressFactory, Query
from search.collection import open_collection
from search.config import AppConfig
from search.indexing import connect
from search.pipeline import Pipeline
from training.mining import MineConfig

log = logging.getLogger(__name__)


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
    counts: dict[str, Any] = field(default_factory=dict)  # training.mining.MineCounts


def mine(
    cfg: AppConfig,
    dataset_path: str,
    out: str | Path,
    *,
    encoders: Sequence[str] | None = None,
    collection: str | None = None,
    fmt: str | None = None,
    config: MineConfig | None = None,
    split: str | None = "train",
    progress: ProgressFactory | None = None,
) -> MineReport:
    """Mine negatives (``training.mining.MineConfig``: hard from stage-1 ranks, a few
    random, the false-negative guard) for one split's labelled queries; write JSONL."""
    from retrieval.data import open_dataset
    from training.mining import MineCounts, mine_negatives, write_jsonl

    start = time.perf_counter()
    config = config or MineConfig()
    hi = config.ranks[1]
    dataset = open_dataset(dataset_path, format=fmt)
    products = list(dataset.products())
    if not products:
        raise UsageError(f"dataset {dataset_path} has no products")
    queries = [q for q in dataset.queries(split) if q.matches]
    if not queries:
        raise UsageError(f"{dataset_path}: no labelled queries in split {split!r}")
    index, choice = open_collection(
        cfg, dataset, dataset_path, products, fmt, collection, encoders, progress
    )
    index.close()  # _stage1 opens it for its search
    vector, hits = _stage1(cfg, dataset, choice.name, split, queries, hi, progress)
    by_id = {p.id: p for p in products}
    if not dataset.self_match:
        # query/gallery sets: positives are gallery items; queries are not in `products`
        by_id.update({q.id: q.product for q in queries if q.id not in by_id})
    counts = MineCounts()
    pool = split_products(products, dataset.search_filter(split))
    rows = mine_negatives(queries, hits, by_id, config, gallery=pool, counts=counts)
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
        counts.as_dict(),
    )


def _stage1(
    cfg: AppConfig,
    dataset: Dataset,
    collection: str,
    split: str | None,
    queries: list[Query],
    k: int,
    progress: ProgressFactory | None,
) -> tuple[str, list[list[Hit]]]:
    """The vector searched and each query's top ``k`` (within the split, self excluded)."""
    index = connect(cfg)
    try:
        pipe = Pipeline(Retriever.for_collection(index, collection), None, replace(cfg.stage1, k=k))
        products = [q.product for q in queries]
        run = pipe.run_split(dataset, split, products, progress, f"stage 1 · {split}")
    finally:
        index.close()
    return pipe.vector, [r.hits for r in run.results]


def split_products(products: Sequence[Product], flt: dict[str, str] | None) -> list[Product]:
    """The products a split's queries search among (random negatives come from there, so
    a catalogue's other splits never leak into training)."""
    if not flt:
        return list(products)
    return [p for p in products if all(p.fields.get(k) == v for k, v in flt.items())]


def mined_rows(
    cfg: AppConfig, job: Any, opts: Any, dataset: Any, name: str
) -> tuple[list[dict[str, Any]], dict[str, Any], str, Any]:
    """Mined rows (from ``opts.negatives``, or mined here from the train split's stage-1
    candidates), the mining counts, the vector searched and the valid split's candidates."""
    from search.train.candidates import stage1_splits
    from training.mining import MineCounts, candidate_hits, mine_negatives, read_mined

    negatives = getattr(opts, "negatives", None)
    splits = [opts.valid_split] if negatives else [opts.valid_split, opts.split]
    mine = MineConfig()
    k = max(opts.k, mine.ranks[1])
    vector, runs = stage1_splits(cfg, dataset, name, k, splits, job.progress)
    valid_q, valid_rows = runs[0]
    valid_rows = [row[: opts.k] for row in valid_rows]
    if negatives:
        rows = read_mined(negatives)
        if not rows:
            raise UsageError(f"{negatives}: no rows")
        return rows, {}, vector, (valid_q, valid_rows)
    train_q, train_rows = runs[1]
    if not train_q:
        raise UsageError(f"{job.dataset}: no labelled queries in split {opts.split!r}")
    products = {p.id: p for p in dataset.products()}
    gallery = split_products(list(products.values()), dataset.search_filter(opts.split))
    products.update({q.id: q.product for q in train_q if q.id not in products})
    counts = MineCounts()
    rows = mine_negatives(
        train_q, candidate_hits(train_rows), products, mine, gallery=gallery, counts=counts
    )
    log.info("negatives mined from stage 1: %s", counts.describe())
    return rows, {**asdict(mine), **counts.as_dict()}, vector, (valid_q, valid_rows)
