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

from training.embed_eval import THRESHOLDS, best_threshold_f1

__all__ = ["THRESHOLDS", "MatchF1Evaluator", "best_threshold_f1"]


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
