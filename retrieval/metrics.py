"""Ranking metrics as pure functions over TREC-style runs and qrels.

A run maps query id -> {doc id: score}; ranking is by score, descending, ties broken
by doc id (as ranx and trec_eval sort). Queries without relevant documents are left
out of averages and counted by ``evaluable``.
"""

from __future__ import annotations

from retrieval.types import Qrels, Run


def ranked(scores: dict[str, float]) -> list[str]:
    """Doc ids by descending score, ties by ascending id."""
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def evaluable(qrels: Qrels) -> list[str]:
    """Query ids that have at least one relevant document."""
    return [q for q, rel in qrels.items() if any(v > 0 for v in rel.values())]


def recall_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean fraction of a query's relevant documents found in its top k."""
    qids = evaluable(qrels)
    if not qids:
        return 0.0
    total = 0.0
    for q in qids:
        rel = {d for d, v in qrels[q].items() if v > 0}
        top = ranked(run.get(q, {}))[:k]
        total += len(rel.intersection(top)) / len(rel)
    return total / len(qids)


def hit_rate_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Fraction of queries with at least one relevant document in the top k."""
    qids = evaluable(qrels)
    if not qids:
        return 0.0
    hits = 0
    for q in qids:
        rel = {d for d, v in qrels[q].items() if v > 0}
        hits += bool(rel.intersection(ranked(run.get(q, {}))[:k]))
    return hits / len(qids)


def mrr_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean reciprocal rank of the first relevant document within the top k."""
    qids = evaluable(qrels)
    if not qids:
        return 0.0
    total = 0.0
    for q in qids:
        rel = {d for d, v in qrels[q].items() if v > 0}
        for i, d in enumerate(ranked(run.get(q, {}))[:k], 1):
            if d in rel:
                total += 1.0 / i
                break
    return total / len(qids)
