"""The match F1 of a SentenceTransformer's cosine on a valid split, as a trainer evaluator.

``search eval --fine-tune`` picks its step count on this: every valid listing is matched
against the rest of its split by the cosine of its title vector, a threshold swept over
the cosines, and the score is the best mean per-listing F1 (the Shopee F1 that the
matcher is tuned on: the listing itself counted in both its predicted and its true set).
Recall@k, the ranking metric of ``training.text_eval``, keeps rising after the cosines stop
separating matches from non-matches; this score is what the match rules read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

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


class MatchF1Evaluator(BaseEvaluator):
    """Best-threshold mean F1 of the cosine over one split's titles and groups."""

    def __init__(
        self,
        titles: Sequence[str],
        groups: Sequence[str],
        name: str = "valid",
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        if len(titles) != len(groups):
            raise ValueError("one group per title")
        self.titles, self.groups = list(titles), list(groups)
        self.name, self.batch_size = name, batch_size
        self.primary_metric = "match_f1"

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict:
        vecs = model.encode(
            self.titles,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        f1, threshold = best_threshold_f1(np.asarray(vecs, dtype=np.float32), self.groups)
        metrics = self.prefix_name_to_metrics(
            {"match_f1": f1, "match_threshold": threshold}, self.name
        )
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
