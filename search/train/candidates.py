"""What the reranker trainers share: a split's stage-1 candidates and the comparison of
stage 1 with the trained stage 2 on the valid split.

``open_for_training`` indexes the dataset if its collection is missing;
``stage1_splits`` runs stage 1 on each split's labelled queries (restricted to the
split and without the query itself on self-matching sets such as Shopee) and adds the
``sim_*`` features; ``compare_stages`` scores both stages on the same candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rerank.base import Reranker, rerank_batch
from retrieval.data.base import Dataset
from retrieval.metrics import hit_rate_at_k, mrr_at_k, recall_at_k
from retrieval.retriever import Retriever
from retrieval.types import Candidate, Qrels, Query, Run, queries_to_qrels
from search.config import AppConfig
from search.indexing import connect, index_dataset
from search.pipeline import Pipeline
from search.train.registry import ProgressFactory, SplitOptions

log = logging.getLogger(__name__)
Split = tuple[list[Query], list[list[Candidate]]]


@dataclass
class CandidateOptions(SplitOptions):
    """Options of the trainers that learn from stage-1 candidates."""

    k: int = 50  # stage-1 candidates per query


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
    run = pipeline.run_split(dataset, split, products, progress, f"stage 1 · {split}")
    rows = [r.stage1 for r in run.results]
    size = pipeline.stage1.batch_size
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
        pipe = Pipeline(retriever, None, replace(cfg.stage1, k=k))
        return pipe.vector, [stage1_candidates(pipe, dataset, s, progress) for s in splits]
    finally:
        index.close()


def compare_stages(
    reranker: Reranker, queries: list[Query], rows: list[list[Candidate]]
) -> dict[str, float]:
    """Stage-1 and stage-2 metrics of the same queries and candidates."""
    qrels = queries_to_qrels(queries)
    reranked = rerank_batch(reranker, [(q.product, row) for q, row in zip(queries, rows)])
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
