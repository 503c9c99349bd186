"""Valid-split ranking lists and their metrics, shared by the trainers' epoch checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ValidList:
    """One valid query: its text, its candidate texts (stage-1 order) and which match."""

    query: str
    texts: tuple[str, ...]
    labels: tuple[int, ...]


def rank_metrics(lists: Sequence[ValidList], scores: Sequence[Sequence[float]]) -> dict[str, float]:
    """hit@1 and MRR@10 of the lists ranked by ``scores`` (ties keep the stage-1 order);
    a list without any match counts as a miss."""
    if not lists:
        return {"hit@1": 0.0, "mrr@10": 0.0}
    hit = mrr = 0.0
    for v, row in zip(lists, scores):
        order = sorted(range(len(row)), key=lambda i: (-row[i], i))
        for rank, i in enumerate(order[:10], start=1):
            if v.labels[i]:
                hit += rank == 1
                mrr += 1.0 / rank
                break
    return {"hit@1": hit / len(lists), "mrr@10": mrr / len(lists)}
