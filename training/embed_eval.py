"""Retrieval metrics of embeddings among grouped listings (exact cosine, self excluded):
precision@1, MRR@10 and recall@k through ``retrieval.metrics``. The ArcFace trainers
pick their best epoch with it; the image benchmark scores with it too. And the match F1
of the cosine at its best threshold (``best_threshold_f1``), which ``search eval
--fine-tune`` picks its step on (``training.match_eval`` for text, ``training.image_catalogue``)."""

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


THRESHOLDS = 200  # most cut points of the sweep


def best_threshold_f1(
    vectors: np.ndarray, groups: Sequence[str], thresholds: int = THRESHOLDS
) -> tuple[float, float]:
    """(best mean F1, its threshold) of matching every row to the others at cosine >= t,
    t each pair cosine above the median, or ``thresholds`` of them (quantiles from the
    50th to the 99.9th percentile) when there are more. ``vectors`` are L2-normalised."""
    labels = np.unique(np.asarray(groups), return_inverse=True)[1]
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    truth = same.sum(axis=1) + 1.0  # the listing itself is in its true set
    sims = np.asarray(vectors, dtype=np.float32) @ np.asarray(vectors, dtype=np.float32).T
    np.fill_diagonal(sims, -np.inf)
    pairs = sims[np.triu_indices(len(sims), 1)]
    if pairs.size == 0:
        return 0.0, 1.0
    top = np.unique(pairs[pairs >= np.median(pairs)])
    if top.size > thresholds:  # a grid of pair cosines; each cut is a pair's own cosine
        top = np.unique(np.quantile(pairs, np.linspace(0.5, 0.999, thresholds), method="higher"))
    cuts = top
    best = (0.0, float(cuts[-1]))
    for t in cuts:
        hit = sims >= t
        tp = (hit & same).sum(axis=1) + 1.0
        f1 = float(np.mean(2 * tp / (hit.sum(axis=1) + 1.0 + truth)))
        if f1 > best[0]:
            best = (f1, float(t))
    return best
