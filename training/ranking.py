"""Valid-split ranking lists and their metrics, shared by the trainers' epoch checks.

The numbers come from ``retrieval.metrics``, the functions ``search eval`` reports
with, so a trainer's valid hit@1 / MRR@10 agree with the evaluator's on the same lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.metrics import hit_rate_at_k, mrr_at_k
from retrieval.types import Qrels, Run


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
