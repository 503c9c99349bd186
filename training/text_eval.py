"""Stage-1 recall@k of a SentenceTransformer on a valid split, as a trainer evaluator.

The recall is ``retrieval.metrics.recall_at_k``, the function ``search eval`` reports:
queries without a relevant item are left out of the average, as there."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from retrieval.metrics import recall_at_k
from retrieval.types import Qrels, Run


class RecallEvaluator(BaseEvaluator):
    """Exact cosine search of each query over the corpus; recall@k averaged over queries
    (a query's own id is never its own hit, as on self-matching sets)."""

    def __init__(
        self,
        queries: Sequence[tuple[str, str]],
        corpus: Sequence[tuple[str, str]],
        relevant: dict[str, set[str]],
        ks: Sequence[int] = (1, 10),
        name: str = "valid",
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        self.queries, self.corpus = list(queries), list(corpus)
        self.relevant, self.ks, self.name = relevant, tuple(ks), name
        self.batch_size = batch_size
        self.primary_metric = f"recall@{max(self.ks)}"

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict:
        def embed(texts: list[str]) -> np.ndarray:
            return np.asarray(
                model.encode(
                    texts,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ),
                dtype=np.float32,
            )

        q = embed([t for _, t in self.queries])
        c = embed([t for _, t in self.corpus])
        ids = [i for i, _ in self.corpus]
        sims = q @ c.T
        kmax = min(max(self.ks) + 1, len(ids))
        run: Run = {}
        for row, (qid, _) in zip(sims, self.queries):
            top = [j for j in np.argsort(-row, kind="stable")[:kmax] if ids[j] != qid]
            run[qid] = {ids[j]: float(row[j]) for j in top}
        qrels: Qrels = {q: dict.fromkeys(self.relevant.get(q, ()), 1) for q, _ in self.queries}
        metrics = {f"recall@{k}": recall_at_k(run, qrels, k) for k in self.ks}
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
