"""Valid-split ranking lists and their metrics, shared by the trainers' epoch checks.

The numbers come from ``retrieval.metrics``, the functions ``search eval`` reports
with, so a trainer's valid hit@1 / MRR@10 agree with the evaluator's on the same lists.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rerank.base import stage1_prior
from retrieval.metrics import hit_rate_at_k, mrr_at_k
from retrieval.types import Candidate, Product, Qrels, Query, Run


@dataclass(frozen=True)
class ValidList:
    """One valid query: its text, its candidate texts (stage-1 order) and which match.

    ``missed`` counts the query's matches that stage 1 did not retrieve: a query with
    matches but none among its candidates is a miss, as in ``search eval``; a query
    without any match is left out of the averages."""

    query: str
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    missed: int = 0


def valid_run(lists: Sequence[ValidList], scores: Sequence[Sequence[float]]) -> tuple[Run, Qrels]:
    """The lists as a TREC-style run (candidates in stage-1 order, so ties keep it) and
    qrels (each labelled candidate, plus one placeholder per missed match)."""
    run: Run = {}
    qrels: Qrels = {}
    for n, (valid, row) in enumerate(zip(lists, scores)):
        qid = f"q{n}"
        run[qid] = {f"c{i}": float(s) for i, s in enumerate(row)}
        qrels[qid] = {f"c{i}": 1 for i, label in enumerate(valid.labels) if label}
        qrels[qid].update({f"missed{j}": 1 for j in range(valid.missed)})
    return run, qrels


def rank_metrics(lists: Sequence[ValidList], scores: Sequence[Sequence[float]]) -> dict[str, float]:
    """hit@1 and MRR@10 of the lists ranked by ``scores``, by ``retrieval.metrics``."""
    run, qrels = valid_run(lists, scores)
    return {"hit@1": hit_rate_at_k(run, qrels, 1), "mrr@10": mrr_at_k(run, qrels, 10)}


def sample_indices(count: int, queries: int = 0, seed: int = 0) -> list[int]:
    """Which of ``count`` valid queries a trainer ranks: at most ``queries`` (a seeded
    sample, in order); 0 keeps all."""
    if not queries or count <= queries:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), queries))


def sample_lists(
    lists: Sequence[ValidList], queries: int = 0, k: int = 0, seed: int = 0
) -> list[ValidList]:
    """At most ``queries`` lists (a seeded sample, in their order), each cut to its first
    ``k`` candidates (matches cut off count as missed); 0 keeps all."""
    chosen = [lists[i] for i in sample_indices(len(lists), queries, seed)]
    if k:
        chosen = [
            ValidList(v.query, v.texts[:k], v.labels[:k], v.missed + sum(v.labels[k:]))
            for v in chosen
        ]
    return chosen


def stage1_metrics(lists: Sequence[ValidList]) -> dict[str, float]:
    """hit@1 and MRR@10 of the lists as stage 1 ranked them: the bar a reranker must pass."""
    return rank_metrics(lists, [[-float(i) for i in range(len(v.texts))] for v in lists])


#: The weights of stage 1's rank a trainer tries on valid (``choose_stage1_weight``).
STAGE1_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def lean_on_stage1(
    lists: Sequence[ValidList], scores: Sequence[Sequence[float]], weight: float
) -> list[list[float]]:
    """Each list's scores plus ``weight * stage1_prior(rank)``, the lists being in stage-1
    order (rank 1 first), as the reranker adds it at query time."""
    return [
        [s + weight * stage1_prior(i) for i, s in enumerate(row, 1)] for row in scores[: len(lists)]
    ]


def choose_stage1_weight(
    lists: Sequence[ValidList],
    scores: Sequence[Sequence[float]],
    weights: Sequence[float] = STAGE1_WEIGHTS,
) -> tuple[float, list[dict[str, float]]]:
    """The weight of stage 1's rank that ranks the lists best, and every weight's metrics.

    The model alone (the smallest weight, 0) is kept unless a weight puts the match first
    in more lists (hit@1): a gain in MRR@10 alone is a few lists' second places, too
    little to add a term for. Among the weights that do, hit@1 then MRR@10 decide, a tie
    keeping the smaller."""
    rows = [
        {"stage1_weight": w, **rank_metrics(lists, lean_on_stage1(lists, scores, w))}
        for w in sorted(weights)
    ]
    alone = best = rows[0]
    for row in rows[1:]:
        better = (row["hit@1"], row["mrr@10"]) > (best["hit@1"], best["mrr@10"])
        if row["hit@1"] > alone["hit@1"] and better:
            best = row
    return best["stage1_weight"], rows


def weight_table(rows: Sequence[dict[str, float]], kept: float | None = None) -> str:
    """The valid metrics of each stage-1 weight as a Markdown table, the kept one marked."""
    lines = [
        "| stage-1 weight | hit@1 | MRR@10 | kept |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        mark = "yes" if row["stage1_weight"] == kept else ""
        lines.append(
            f"| {row['stage1_weight']:g} | {row['hit@1']:.3f} | {row['mrr@10']:.3f} | {mark} |"
        )
    return "\n".join(lines) + "\n"


def epoch_table(
    history: Sequence[dict[str, float]],
    best_epoch: float | None = None,
    stage1: dict[str, float] | None = None,
) -> str:
    """The valid metrics of every epoch as a Markdown table, the kept one marked; with
    ``stage1``, a first row for the stage-1 order of the same lists."""
    lines = ["| epoch | step | hit@1 | MRR@10 | kept |", "| --- | --- | --- | --- | --- |"]
    if stage1:
        lines.append(f"| stage 1 | | {stage1['hit@1']:.3f} | {stage1['mrr@10']:.3f} | |")
    for row in history:
        kept = "yes" if best_epoch is not None and row.get("epoch") == best_epoch else ""
        lines.append(
            f"| {row.get('epoch', 0):g} | {int(row.get('step', 0))} | {row['hit@1']:.3f} "
            f"| {row['mrr@10']:.3f} | {kept} |"
        )
    return "\n".join(lines) + "\n"


def valid_lists(
    queries: Sequence[Query],
    rows: Sequence[Sequence[Candidate]],
    text: Callable[[Product], str] | None = None,
) -> list[ValidList]:
    """The valid split's stage-1 candidate lists as the trainer ranks them (titles, or
    ``text(product)``), with the matches stage 1 missed, so the per-epoch checks count as
    ``search eval`` does."""
    read = text or (lambda p: p.title)
    lists = []
    for q, row in zip(queries, rows):
        found = {c.id for c in row}
        missed = len(set(q.matches) - found - {q.id})
        labels = tuple(int(c.id in q.matches) for c in row)
        lists.append(
            ValidList(read(q.product), tuple(read(c.product) for c in row), labels, missed)
        )
    return lists
