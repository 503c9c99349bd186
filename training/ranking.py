"""Valid-split ranking lists and their metrics, shared by the trainers' epoch checks."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.types import Candidate, Query


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


def sample_lists(
    lists: Sequence[ValidList], queries: int = 0, k: int = 0, seed: int = 0
) -> list[ValidList]:
    """At most ``queries`` lists (a seeded sample, in their order), each cut to its first
    ``k`` candidates; 0 keeps all. Lists left without a match still count (as misses)."""
    chosen = list(lists)
    if queries and len(chosen) > queries:
        keep = set(random.Random(seed).sample(range(len(chosen)), queries))
        chosen = [v for i, v in enumerate(chosen) if i in keep]
    if k:
        chosen = [ValidList(v.query, v.texts[:k], v.labels[:k]) for v in chosen]
    return chosen


def epoch_table(history: Sequence[dict[str, float]], best_epoch: float | None = None) -> str:
    """The valid metrics of every epoch as a Markdown table, the kept one marked."""
    lines = ["| epoch | step | hit@1 | MRR@10 | kept |", "| --- | --- | --- | --- | --- |"]
    for row in history:
        kept = "yes" if best_epoch is not None and row.get("epoch") == best_epoch else ""
        lines.append(
            f"| {row.get('epoch', 0):g} | {int(row.get('step', 0))} | {row['hit@1']:.3f} "
            f"| {row['mrr@10']:.3f} | {kept} |"
        )
    return "\n".join(lines) + "\n"


def valid_lists(queries: Sequence[Query], rows: Sequence[Sequence[Candidate]]) -> list[ValidList]:
    """The valid split's stage-1 candidate lists as the trainer ranks them (titles)."""
    return [
        ValidList(
            q.product.title,
            tuple(c.product.title for c in row),
            tuple(int(c.id in q.matches) for c in row),
        )
        for q, row in zip(queries, rows)
    ]
