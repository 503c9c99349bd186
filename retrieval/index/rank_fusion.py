"""Hybrid queries fused on our side, deterministically: the same query on the same
collection returns the same order every time.

Qdrant's own fusion ranks each prefetch list in the order its segments returned tied
scores, and which of several tied points make the cut at the prefetch limit varies from
run to run: a hybrid run on Abt-Buy differed in 32 of 206 queries between two runs. So
each vector is searched on its own, a little past the prefetch limit; every list is
sorted by (score, id); a tie group that reaches the end of a full list is dropped (the
points tied with it that were not returned are unknown); then the lists are fused with
Qdrant's formulas (RRF: ``1 / (60 + rank)``, 0-based; DBSF: each list normalised by its
mean +- 3 sample standard deviations, summed) and the result is ordered by (score, id).

One departure from Qdrant's RRF: points with the same score in a list share that tie
group's best rank. Qdrant numbers tied points in the order it returned them, so when
many listings carry one title (56 photos titled "Juice", two products), the title list
hands one product's photos the better ranks for every query and decides the fused order
by id; with shared ranks the tied title is no evidence either way and the other vector
decides.

Every answer, single-vector ones included, is ordered the same way, so the two back-ends
agree: each request asks for ``EXTRA`` points past its limit and the hits are sorted into
tie groups before the cut. The embedded engine and a Qdrant server add up a sparse dot
product or a cosine in different float orders (on Abt-Buy with the ``sparse`` vector, 8,300
of 10,160 top-10 scores differed, by at most 2e-7 of their value), so points with equal
scores in exact arithmetic came back tied on one back-end and a hair apart on the other, in
another order, and a tie group cut at the limit kept other points: 139 of 1,016 queries
ranked differently. A tie group is a run of scores within ``TIE_RTOL`` (1e-5) of the run's
best one; a group is ordered by id. Rounding to 5 significant digits, tried first, split a
tie whenever the noise straddled a rounding boundary (one query in 240 on a replicated
cluster, in CI); a tolerance measured from the group's head has no such boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from retrieval.index.base import HYBRID, SearchRequest
from retrieval.types import Hit

RRF_K = 60
EXTRA = 16  # points fetched past the prefetch limit, to see the boundary's tie group


def prefetch_limit(req: SearchRequest) -> int:
    """How many points each vector of a hybrid request contributes to the fusion."""
    return req.prefetch_limit or max(req.limit, 100)


def split_hybrid(requests: Sequence[SearchRequest]) -> tuple[list[SearchRequest], list[int]]:
    """Single-vector requests for a batch: a hybrid request becomes one per fused vector.
    Returns them and, per original request, how many consecutive answers are its own."""
    flat: list[SearchRequest] = []
    counts: list[int] = []
    for req in requests:
        # a hybrid request that rescores its prefetches with another vector (``rescore``,
        # where the request type has it) is left to Qdrant: that order is a score, not a fusion
        if req.using != HYBRID or getattr(req, "rescore", None):
            flat.append(replace(req, limit=req.limit + EXTRA))
            counts.append(1)
            continue
        limit = prefetch_limit(req) + EXTRA
        for name in req.hybrid:
            flat.append(replace(req, using=name, limit=limit, hybrid=(), prefetch_limit=None))
        counts.append(len(req.hybrid))
    return flat, counts


def join_hybrid(
    requests: Sequence[SearchRequest], counts: Sequence[int], answers: Sequence[list[Hit]]
) -> list[list[Hit]]:
    """The answers of ``split_hybrid``'s requests folded back: hybrid ones fused."""
    out: list[list[Hit]] = []
    pos = 0
    for req, n in zip(requests, counts):
        lists = answers[pos : pos + n]
        pos += n
        if req.using != HYBRID or getattr(req, "rescore", None):
            out.append(ranked_hits(lists[0])[: req.limit])
            continue
        cut = prefetch_limit(req)
        ranked = [settled(hits, cut, prefetch_limit(req) + EXTRA) for hits in lists]
        out.append(fuse(ranked, req.fusion)[: req.limit])
    return out


TIE_RTOL = 1e-5  # scores this close (relative) to a tie group's best are tied


def tie_groups(scores: Sequence[float]) -> list[int]:
    """For scores sorted best first, the index of each one's tie group: a group starts at
    a score and holds the following ones within ``TIE_RTOL`` of it (module docstring)."""
    groups: list[int] = []
    head = 0.0
    for i, score in enumerate(scores):
        if i and math.isclose(score, head, rel_tol=TIE_RTOL, abs_tol=1e-12):
            groups.append(groups[-1])
        else:
            head = score
            groups.append(i)
    return groups


def ranked_hits(hits: Sequence[Hit]) -> list[Hit]:
    """Hits best first, each tie group ordered by id: the order of every answer."""
    by_score = sorted(hits, key=lambda h: (-h.score, h.id))
    groups = tie_groups([h.score for h in by_score])
    return [h for _, h in sorted(zip(groups, by_score), key=lambda gh: (gh[0], gh[1].id))]


def settled(hits: list[Hit], cut: int, fetched: int) -> list[Hit]:
    """The first ``cut`` hits in tie-group order, leaving out a tie group that reaches
    the end of a full answer (unless it is the whole answer)."""
    ranked = ranked_hits(hits)
    if len(ranked) >= fetched and ranked:
        last = max(tied_ranks([h.score for h in ranked]))  # where the last tie group starts
        if last:
            ranked = ranked[:last]
    return ranked[:cut]


def fuse(lists: Sequence[list[Hit]], fusion: str) -> list[Hit]:
    """Fused hits of ranked lists, best first, ties by id; payloads from the first list
    holding each point."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for hits in lists:
        for hit, value in zip(hits, _contributions(hits, fusion)):
            scores[hit.id] = scores.get(hit.id, 0.0) + value
            first.setdefault(hit.id, hit)
    fused = [replace(first[pid], score=score) for pid, score in scores.items()]
    return ranked_hits(fused)


def tied_ranks(scores: Sequence[float]) -> list[int]:
    """0-based ranks of scores in any order, a tie group sharing its best rank (1224
    ranking)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    groups = tie_groups([scores[i] for i in order])
    ranks = [0] * len(scores)
    for i, group in zip(order, groups):
        ranks[i] = group
    return ranks


def _contributions(hits: list[Hit], fusion: str) -> list[float]:
    if fusion == "rrf":
        return [1.0 / (RRF_K + rank) for rank in tied_ranks([h.score for h in hits])]
    values = [h.score for h in hits]
    if len(values) < 2:
        return [0.5] * len(values)
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    if std == 0:
        return [0.5] * len(values)
    low = mean - 3 * std
    return [(v - low) / (6 * std) for v in values]
