"""Training jobs of the application: stage-1 candidates of a split -> a stage-2 model.

``train_pair_gbdt`` indexes the dataset if its collection is missing, runs stage 1 on
the train split's queries (restricted to the split and without the query itself on
self-matching sets such as Shopee), labels each candidate by the query's matches,
fits LightGBM with early stopping on the valid split, saves the model and reports
stage 1 against stage 2 on the valid split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank.base import Reranker, rerank_batch
from retrieval.data.base import Dataset
from retrieval.errors import UsageError, unknown_name
from retrieval.metrics import hit_rate_at_k, mrr_at_k, recall_at_k
from retrieval.retriever import Retriever, default_vector
from retrieval.types import Candidate, Qrels, Query, Run, queries_to_qrels
from search.config import AppConfig
from search.indexing import connect, index_dataset
from search.pipeline import Pipeline, PipelineConfig

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Callable[[int], None]]
Split = tuple[list[Query], list[list[Candidate]]]


@dataclass
class TrainReport:
    """What a reranker training run did and how stage 2 compares with stage 1."""

    out: Path
    collection: str
    vector: str
    k: int
    train_queries: int
    valid_queries: int
    info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def score_run(queries: Sequence[Query], rows: Sequence[Sequence[Candidate]], stage: int) -> Run:
    """A TREC run of one stage's scores. Ties are broken by doc id when scored, as in
    trec_eval and ranx: hybrid RRF ties often (rank 1 + 2 and rank 2 + 1 fuse alike)
    and Qdrant's own order of tied points changes from one process to the next."""
    return {
        q.id: {c.id: float(c.stage1_score if stage == 1 else (c.score or 0.0)) for c in row}
        for q, row in zip(queries, rows)
    }


def ranking_metrics(run: Run, qrels: Qrels, stage: str) -> dict[str, float]:
    """recall@1, recall@10, hit@1 and MRR@10 of one stage's run, keyed ``stage/metric``."""
    return {
        f"{stage}/recall@1": recall_at_k(run, qrels, 1),
        f"{stage}/recall@10": recall_at_k(run, qrels, 10),
        f"{stage}/hit@1": hit_rate_at_k(run, qrels, 1),
        f"{stage}/mrr@10": mrr_at_k(run, qrels, 10),
    }


def stage1_candidates(
    pipeline: Pipeline,
    dataset: Dataset,
    split: str,
    progress: ProgressFactory | None = None,
) -> Split:
    """A split's labelled queries and their stage-1 candidates with ``sim_*`` features."""
    queries = [q for q in dataset.queries(split) if q.matches]
    products = [q.product for q in queries]
    flt = dataset.search_filter(split)
    tick = progress(f"stage 1 · {split}", len(products)) if progress else None
    results = pipeline.run(
        products,
        filters=[flt] * len(products) if flt else None,
        exclude_self=dataset.self_match,
        progress=tick,
    )
    rows = [r.stage1 for r in results]
    size = pipeline.config.batch_size
    for start in range(0, len(products), size):
        pipeline.add_features(products[start : start + size], rows[start : start + size])
    return queries, rows


def stage1_splits(
    cfg: AppConfig,
    dataset: Dataset,
    name: str,
    k: int,
    splits: list[str],
    progress: ProgressFactory | None = None,
) -> tuple[str, list[Split]]:
    """Stage-1 candidates (with features) of several splits from one collection; returns
    the vector searched and one ``(queries, rows)`` per split."""
    index = connect(cfg)
    try:
        retriever = Retriever.for_collection(index, name)
        vector = default_vector(retriever.vector_names(), cfg.stage1.vector)
        config = PipelineConfig(
            k=k, using=vector, hybrid=cfg.stage1.hybrid, fusion=cfg.stage1.fusion
        )
        pipe = Pipeline(retriever, None, config)
        return vector, [stage1_candidates(pipe, dataset, s, progress) for s in splits]
    finally:
        index.close()


def compare_stages(
    reranker: Reranker, queries: list[Query], rows: list[list[Candidate]]
) -> dict[str, float]:
    """Stage-1 and stage-2 metrics of the same queries and candidates."""
    qrels = queries_to_qrels(queries)
    fresh = [
        [Candidate(c.product, c.stage1_score, c.stage1_rank, dict(c.features)) for c in row]
        for row in rows
    ]
    reranked = rerank_batch(reranker, [(q.product, row) for q, row in zip(queries, fresh)])
    return {
        **ranking_metrics(score_run(queries, rows, 1), qrels, "stage1"),
        **ranking_metrics(score_run(queries, reranked, 2), qrels, "stage2"),
    }


def open_for_training(
    cfg: AppConfig,
    dataset_path: str,
    collection: str | None,
    fmt: str | None,
    progress: ProgressFactory | None = None,
) -> tuple[Dataset, str]:
    """The dataset and its collection, indexed first with the configured encoders if missing."""
    from retrieval.data import open_dataset

    dataset = open_dataset(dataset_path, format=fmt)
    name = collection or dataset.name
    index = connect(cfg)
    try:
        exists = index.info(name) is not None
    finally:
        index.close()
    if not exists:
        log.info("collection %s missing: indexing %s", name, dataset_path)
        tick = (lambda total: progress("indexing", total or 0)) if progress else None
        index_dataset(cfg, dataset_path, fmt=fmt, collection=name, progress=tick)
    return dataset, name


def train_pair_gbdt(
    cfg: AppConfig,
    dataset_path: str,
    out: str | Path,
    *,
    collection: str | None = None,
    fmt: str | None = None,
    k: int = 50,
    split: str = "train",
    valid_split: str = "valid",
    objective: str = "binary",
    progress: ProgressFactory | None = None,
) -> TrainReport:
    """Train the ``pair-gbdt`` reranker on one split's stage-1 candidates and save it."""
    from rerank.pair_gbdt import PairGbdtReranker
    from training.pair_gbdt import GbdtParams, fit_pair_gbdt, label_candidates

    start = time.perf_counter()
    params = GbdtParams(objective=objective)
    dataset, name = open_for_training(cfg, dataset_path, collection, fmt, progress)
    vector, ((train_q, train_rows), (valid_q, valid_rows)) = stage1_splits(
        cfg, dataset, name, k, [split, valid_split], progress
    )
    if not train_q:
        raise UsageError(f"{dataset_path}: no labelled queries in split {split!r}")

    def examples(queries: list[Query], rows: list[list[Candidate]]) -> list:
        return [(q.product, row, label_candidates(q.matches, row)) for q, row in zip(queries, rows)]

    info = {"dataset": dataset.name, "collection": name, "vector": vector, "k": k, "split": split}
    model = fit_pair_gbdt(
        examples(train_q, train_rows), examples(valid_q, valid_rows), params, info
    )
    path = model.save(out)
    metrics = compare_stages(PairGbdtReranker(model), valid_q, valid_rows) if valid_q else {}
    return TrainReport(
        path,
        name,
        vector,
        k,
        len(train_q),
        len(valid_q),
        model.info,
        metrics,
        time.perf_counter() - start,
    )


RERANKER_KINDS = ("pair-gbdt", "cross-encoder", "qwen-vl")


def train_reranker(cfg: AppConfig, kind: str, dataset_path: str, out: str | Path, **kwargs: Any):
    """Train a stage-2 reranker of one kind; only ``pair-gbdt`` is built so far."""
    if kind == "pair-gbdt":
        return train_pair_gbdt(cfg, dataset_path, out, **kwargs)
    if kind == "qwen-vl":
        from search.train.qwen_vl import train_qwen_vl_reranker

        kwargs.pop("objective", None)
        return train_qwen_vl_reranker(cfg, dataset_path, out, **kwargs)
    if kind == "cross-encoder":
        from search.train.cross_encoder import train_cross_encoder_reranker

        kwargs.pop("objective", None)
        return train_cross_encoder_reranker(cfg, dataset_path, out, **kwargs)
    if kind in RERANKER_KINDS:
        raise UsageError(
            f"training {kind} rerankers is not built yet (issue 5); "
            "use a pretrained model with --reranker, or train --kind pair-gbdt"
        )
    raise unknown_name("reranker kind to train", kind, RERANKER_KINDS)
