"""Ranking and match-set metrics as pure functions over TREC-style runs and qrels.

A run maps query id -> {doc id: score}; qrels map query id -> {doc id: relevance}.
Definitions follow ranx (and trec_eval where they agree):

- a document is relevant when its relevance is >= 1; nDCG uses the relevance as gain
  (Järvelin & Kekäläinen, ranx's ``ndcg``), the ideal ranking sorts the qrels;
- ``precision@k`` divides by k even when the run holds fewer than k documents;
- ``MAP`` divides the sum of precisions at relevant ranks by *all* relevant documents;
- queries without relevant documents are left out of every average (``evaluable``
  lists the rest); the evaluator reports how many were left out, so no mean is a
  silent zero. ranx would average them in as zeroes.

Ties: documents are ranked by score, descending, and tied documents keep the order in
which the run lists them (a stable sort; Python dicts keep insertion order). Our
stages insert candidates in their own rank order and the run files list them in it,
so a tie is broken as the stage broke it. ranx behaves the same for a ``ranx.Run``
(built from a dict or read with ``Run.from_file``) as long as a query holds fewer
than 16 documents: it sorts with numba's quicksort, which hands such short arrays to
a stable insertion sort; past that its tie order is implementation-defined, and for a
plain dict given to ``ranx.evaluate`` it reverses tied documents. trec_eval breaks
ties by doc id, descending. Scores of real encoders rarely tie, so in practice all
agree; the tests compare with ranx on short runs with ties.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from retrieval.errors import UsageError
from retrieval.types import Qrels, Run

QueryMetric = Callable[[list[str], dict[str, int], int | None], float]


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Doc ids by descending score; ties keep the run's order (stable sort)."""
    return sorted(scores, key=lambda d: -scores[d])


def evaluable(qrels: Qrels) -> list[str]:
    """Query ids that have at least one relevant document."""
    return [q for q, rel in qrels.items() if any(v > 0 for v in rel.values())]


def _relevant(rels: dict[str, int]) -> set[str]:
    return {d for d, v in rels.items() if v > 0}


def _mean(run: Run, qrels: Qrels, k: int | None, fn: QueryMetric) -> float:
    """Mean of a per-query metric over the evaluable queries (0.0 when there are none)."""
    qids = evaluable(qrels)
    if not qids:
        return 0.0
    return sum(fn(ranked(run.get(q, {})), qrels[q], k) for q in qids) / len(qids)


def _recall(order: list[str], rels: dict[str, int], k: int | None) -> float:
    rel = _relevant(rels)
    return len(rel.intersection(order[:k])) / len(rel)


def _precision(order: list[str], rels: dict[str, int], k: int | None) -> float:
    top = order[:k]
    depth = k if k is not None else len(top)
    return len(_relevant(rels).intersection(top)) / depth if depth else 0.0


def _hit(order: list[str], rels: dict[str, int], k: int | None) -> float:
    return float(bool(_relevant(rels).intersection(order[:k])))


def _rr(order: list[str], rels: dict[str, int], k: int | None) -> float:
    rel = _relevant(rels)
    for i, d in enumerate(order[:k], 1):
        if d in rel:
            return 1.0 / i
    return 0.0


def _ap(order: list[str], rels: dict[str, int], k: int | None) -> float:
    rel = _relevant(rels)
    found, total = 0, 0.0
    for i, d in enumerate(order[:k], 1):
        if d in rel:
            found += 1
            total += found / i
    return total / len(rel)


def _ndcg(order: list[str], rels: dict[str, int], k: int | None) -> float:
    gains = [float(rels.get(d, 0)) if rels.get(d, 0) > 0 else 0.0 for d in order[:k]]
    dcg = sum(g / math.log2(i + 1) for i, g in enumerate(gains, 1))
    ideal = sorted((float(v) for v in rels.values() if v > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, 1))
    return dcg / idcg if idcg else 0.0


def recall_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean fraction of a query's relevant documents found in its top k."""
    return _mean(run, qrels, k, _recall)


def precision_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean fraction of the top k that is relevant (divided by k, as ranx does)."""
    return _mean(run, qrels, k, _precision)


def hit_rate_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Fraction of queries with at least one relevant document in the top k."""
    return _mean(run, qrels, k, _hit)


def mrr_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean reciprocal rank of the first relevant document within the top k."""
    return _mean(run, qrels, k, _rr)


def ndcg_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean nDCG@k with the relevance as gain and a log2(rank + 1) discount."""
    return _mean(run, qrels, k, _ndcg)


def average_precision(run: Run, qrels: Qrels, k: int | None = None) -> float:
    """MAP (``k=None``: the whole run) or MAP@k: precision at each relevant rank within
    the top k, summed and divided by the number of relevant documents, averaged."""
    return _mean(run, qrels, k, _ap)


RANKING_METRICS: dict[str, QueryMetric] = {
    "recall": _recall,
    "precision": _precision,
    "hit_rate": _hit,
    "mrr": _rr,
    "ndcg": _ndcg,
    "map": _ap,
}
_NAME = re.compile(r"^(?P<name>[a-z_]+)(?:@(?P<k>\d+))?$")


def parse_metric(name: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``"map"`` -> ``("map", None)``."""
    m = _NAME.match(name)
    if m is None or m["name"] not in RANKING_METRICS:
        raise UsageError(f"unknown metric {name!r}; known: {', '.join(RANKING_METRICS)} (@k)")
    k = int(m["k"]) if m["k"] else None
    if k is not None and k < 1:
        raise UsageError(f"bad cut-off in {name!r}: k must be at least 1")
    return m["name"], k


def evaluate(run: Run, qrels: Qrels, metrics: Iterable[str]) -> dict[str, float]:
    """Several ranking metrics by name (``recall@10``, ``mrr@10``, ``map``, ...), each
    averaged over the evaluable queries; ranking each query once."""
    parsed = {name: parse_metric(name) for name in metrics}
    qids = evaluable(qrels)
    out = dict.fromkeys(parsed, 0.0)
    if not qids:
        return out
    for q in qids:
        order = ranked(run.get(q, {}))
        for name, (kind, k) in parsed.items():
            out[name] += RANKING_METRICS[kind](order, qrels[q], k)
    return {name: value / len(qids) for name, value in out.items()}


# -- match sets ------------------------------------------------------------------------
@dataclass(frozen=True)
class MatchScores:
    """Macro-averaged precision, recall and F1 of predicted match sets over ``n`` queries."""

    precision: float
    recall: float
    f1: float
    n: int


def match_scores(
    predicted: Mapping[str, Iterable[str]],
    targets: Mapping[str, Iterable[str]],
    *,
    include_self: bool = False,
) -> MatchScores:
    """Per-query precision |P∩T|/|P|, recall |P∩T|/|T| and F1 2|P∩T|/(|P|+|T|), averaged
    over the queries of ``targets`` (a query missing from ``predicted`` predicted nothing).

    ``include_self`` adds the query id to both sets, as the Shopee competition counts a
    posting as its own match. An empty prediction has precision 0 (sklearn's
    ``zero_division=0``); a query whose target set is empty (and ``include_self`` off)
    is an error, since no score would mean anything: drop such queries first."""
    if not targets:
        return MatchScores(0.0, 0.0, 0.0, 0)
    p_sum = r_sum = f_sum = 0.0
    for qid, target in targets.items():
        t = set(target)
        p = set(predicted.get(qid, ()))
        if include_self:
            t.add(qid)
            p.add(qid)
        if not t:
            raise ValueError(f"query {qid!r} has no target matches; leave it out")
        tp = len(p & t)
        p_sum += tp / len(p) if p else 0.0
        r_sum += tp / len(t)
        f_sum += 2 * tp / (len(p) + len(t))
    n = len(targets)
    return MatchScores(p_sum / n, r_sum / n, f_sum / n, n)


def shopee_f1(
    predicted: Mapping[str, Iterable[str]], targets: Mapping[str, Iterable[str]]
) -> float:
    """The Shopee "Price Match Guarantee" score: for every posting, the F1 between its
    predicted matches and its group (the posting itself in both), averaged over postings.

    ``targets[posting]`` holds the other postings of its group (self may be present or
    not); ``predicted`` likewise. Postings absent from ``predicted`` predicted only
    themselves."""
    return match_scores(predicted, targets, include_self=True).f1
