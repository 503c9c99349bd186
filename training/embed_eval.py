"""Retrieval metrics of embeddings among grouped listings (exact cosine, self excluded):
precision@1, MRR@10 and recall@k through ``retrieval.metrics``. The ArcFace trainers
pick their best epoch with it; the image benchmark scores with it too."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.metrics import mrr_at_k, precision_at_k, recall_at_k
from retrieval.types import Qrels, Run


def group_run(
    ids: Sequence[str], groups: Sequence[str | None], vectors: np.ndarray, k: int = 10
) -> tuple[Run, Qrels]:
    """Each listing queries all the others by cosine (rows of ``vectors`` are L2-normal):
    its top ``k`` as a run, the other members of its group as qrels."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    run: Run = {}
    qrels: Qrels = {}
    for i, qid in enumerate(ids):
        rel = {ids[j]: 1 for j, g in enumerate(groups) if g == groups[i] and j != i}
        if groups[i] is None or not rel:
            continue
        qrels[qid] = rel
        run[qid] = {ids[j]: float(sims[i, j]) for j in top[i]}
    return run, qrels


def group_metrics(
    ids: Sequence[str], groups: Sequence[str | None], vectors: np.ndarray, k: int = 10
) -> dict[str, float]:
    """precision@1, MRR@10 and recall@k of every grouped listing against the rest."""
    if len(ids) < 2:
        return {}
    run, qrels = group_run(ids, groups, np.asarray(vectors, dtype=np.float32), max(k, 10))
    if not qrels:
        return {}
    return {
        "precision@1": precision_at_k(run, qrels, 1),
        "mrr@10": mrr_at_k(run, qrels, 10),
        f"recall@{k}": recall_at_k(run, qrels, k),
    }
