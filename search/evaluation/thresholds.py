"""The match decision swept over thresholds: F1 of the match sets as a function of it.

A stage's ranked candidates become a match set by ``match_sets``: every candidate
whose score reaches the threshold and, with ``keep_nearest``, always the first one.
``MatchLists`` runs the same rule on padded score matrices, so hundreds of thresholds
cost one vectorised pass each; ``MatchLists.scores_at`` agrees with
``retrieval.metrics.match_scores`` on the sets ``match_sets`` returns (tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.metrics import MatchScores

Ranked = Sequence[tuple[str, float]]  # (doc id, score), best first


@dataclass
class MatchLists:
    """Candidate scores and relevance of many queries, padded into (queries, depth) arrays.

    ``targets`` is the size of each query's target set; with ``include_self`` (Shopee)
    the query counts as its own match in both the target and the prediction."""

    ids: list[str]
    scores: np.ndarray  # float64, -inf where a row is shorter than the depth
    relevant: np.ndarray  # bool
    targets: np.ndarray  # int
    include_self: bool = False

    @classmethod
    def build(
        cls,
        rows: Mapping[str, Ranked],
        targets: Mapping[str, set[str]],
        *,
        include_self: bool = False,
    ) -> MatchLists:
        """Pad the ranked rows of the queries in ``targets`` (a missing row is empty)."""
        ids = list(targets)
        depth = max((len(rows.get(q, ())) for q in ids), default=0)
        scores = np.full((len(ids), max(depth, 1)), -np.inf)
        relevant = np.zeros(scores.shape, dtype=bool)
        for i, q in enumerate(ids):
            for j, (doc, score) in enumerate(rows.get(q, ())):
                scores[i, j] = score
                relevant[i, j] = doc in targets[q]
        sizes = np.array([len(targets[q]) for q in ids], dtype=np.int64)
        return cls(ids, scores, relevant, sizes, include_self)

    def scores_at(self, threshold: float, keep_nearest: bool) -> MatchScores:
        """Macro precision, recall and F1 of the match sets at one threshold."""
        n = len(self.ids)
        if n == 0:
            return MatchScores(0.0, 0.0, 0.0, 0)
        keep = self.scores >= threshold
        if keep_nearest:
            keep[:, 0] |= np.isfinite(self.scores[:, 0])
        tp = (keep & self.relevant).sum(axis=1).astype(np.float64)
        pred = keep.sum(axis=1).astype(np.float64)
        target = self.targets.astype(np.float64)
        if self.include_self:
            tp, pred, target = tp + 1, pred + 1, target + 1
        precision = np.divide(tp, pred, out=np.zeros(n), where=pred > 0)
        recall = np.divide(tp, target, out=np.zeros(n), where=target > 0)
        f1 = np.divide(2 * tp, pred + target, out=np.zeros(n), where=(pred + target) > 0)
        return MatchScores(float(precision.mean()), float(recall.mean()), float(f1.mean()), n)

    def grid(self, points: int) -> np.ndarray:
        """Candidate thresholds: quantiles of the scores, plus one above them all."""
        finite = self.scores[np.isfinite(self.scores)]
        if finite.size == 0:
            return np.array([0.0])
        qs = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, points - 1)))
        top = float(finite.max())
        return np.append(qs, top + max(abs(top), 1.0) * 1e-6)


@dataclass
class Sweep:
    """F1 (and precision, recall) at every threshold of a grid, and the best one."""

    thresholds: np.ndarray
    f1: np.ndarray
    precision: np.ndarray
    recall: np.ndarray

    @property
    def best(self) -> float:
        """The threshold of the highest F1 (the lowest such threshold on a tie)."""
        return float(self.thresholds[int(np.argmax(self.f1))])


def sweep(lists: MatchLists, thresholds: np.ndarray, keep_nearest: bool) -> Sweep:
    """Score the match sets at every threshold."""
    rows = [lists.scores_at(float(t), keep_nearest) for t in thresholds]
    return Sweep(
        np.asarray(thresholds, dtype=np.float64),
        np.array([r.f1 for r in rows]),
        np.array([r.precision for r in rows]),
        np.array([r.recall for r in rows]),
    )


def match_sets(
    rows: Mapping[str, Ranked], threshold: float, keep_nearest: bool
) -> dict[str, list[str]]:
    """The predicted matches of every query: each (id, score) row's ids whose score
    reaches ``threshold`` and, with ``keep_nearest``, always its first one."""
    out: dict[str, list[str]] = {}
    for q, row in rows.items():
        keep = [doc for doc, score in row if score >= threshold]
        if keep_nearest and row and row[0][0] not in keep:
            keep.insert(0, row[0][0])
        out[q] = keep
    return out
