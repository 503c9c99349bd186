"""What a review queue hands the reviewer (``QueueItem``) and how both queues
(``search.match.review``: a match run, ``search.match.cold_start``: an unlabelled
catalogue) order and pick candidate pairs: distance to the decision threshold (in
logits for a probability), the edges a predicted group's merge hangs on (bridges of
the matched graph joining two parts of two listings or more), and a batch spread over
listings (no listing twice) and, before a model exists, over the score range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NEAR = "near the threshold"
BRIDGE = "a group merge hangs on this edge"
SPREAD = "spread over the score range"
UNSURE = "the models disagree"
EPS = 1e-6


@dataclass(frozen=True)
class QueueItem:
    """One pair to label: its ids, score, the threshold it is judged against, and why it
    is asked."""

    a: str
    b: str
    score: float
    threshold: float
    reason: str


def pair_key(a: str, b: str) -> tuple[str, str]:
    """An unordered pair as its sorted tuple (the labels' key)."""
    return (a, b) if a <= b else (b, a)


def distance(scores: np.ndarray, threshold: float, probability: bool) -> np.ndarray:
    """How far each score is from the threshold: in logits for a probability (0.5 to
    0.6 is closer than 0.9 to 0.99), plainly for a cosine."""
    s = np.asarray(scores, dtype=np.float64)
    if not probability:
        return np.abs(s - threshold)
    p = np.clip(s, EPS, 1 - EPS)
    t = min(max(threshold, EPS), 1 - EPS)
    return np.abs(np.log(p / (1 - p)) - math.log(t / (1 - t)))


def bridges(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """A mask of the edges (a[k], b[k]) over ``n`` nodes that are bridges with at least
    two nodes on each side: removing one splits a predicted group in two groups of two
    listings or more (one edge is all that merges them)."""
    import networkx as nx

    g = nx.Graph()
    g.add_edges_from(zip(a.tolist(), b.tolist()))
    out = np.zeros(len(a), dtype=bool)
    if not len(a):
        return out
    index = {pair_key(str(u), str(v)): k for k, (u, v) in enumerate(zip(a.tolist(), b.tolist()))}
    for u, v in nx.bridges(g):
        g.remove_edge(u, v)
        small = min(len(nx.node_connected_component(g, u)), len(nx.node_connected_component(g, v)))
        g.add_edge(u, v)
        if small >= 2:
            out[index[pair_key(str(u), str(v))]] = True
    return out


def pick(
    order: Iterable[int], a: Sequence[str], b: Sequence[str], n: int, seen: set[tuple[str, str]]
) -> list[int]:
    """The first ``n`` pairs of ``order`` not in ``seen``, no listing twice in the batch
    (then, if too few, the skipped ones in order)."""
    taken: list[int] = []
    later: list[int] = []
    used: set[str] = set()
    for k in order:
        if len(taken) >= n:
            break
        if pair_key(a[k], b[k]) in seen:
            continue
        if a[k] in used or b[k] in used:
            if len(later) < n:
                later.append(k)
            continue
        taken.append(k)
        used.update((a[k], b[k]))
    return taken + later[: n - len(taken)]


def stratified(
    scores: np.ndarray, candidates: np.ndarray, n: int, rng: np.random.Generator
) -> list[int]:
    """Positions of ``candidates`` (indices into ``scores``) in a random order that
    visits ``n`` equal-count score bins (quantiles) in turn, from the top: every part
    of the score range is asked about."""
    if not len(candidates) or n <= 0:
        return []
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    bins = np.array_split(order, min(n, len(order)))
    shuffled = [rng.permutation(chunk).tolist() for chunk in bins]
    out: list[int] = []
    for depth in range(max(len(s) for s in shuffled)):
        out += [s[depth] for s in shuffled if depth < len(s)]
    return out


def progress_counts(
    labels: Mapping[tuple[str, str], Any], pairs: int, threshold: float, f1: float | None
) -> dict[str, Any]:
    """What the queue page shows: labels by verdict, candidate pairs, threshold, F1."""
    counts = {v: 0 for v in ("match", "no_match", "skip")}
    for lab in labels.values():
        counts[lab.verdict] = counts.get(lab.verdict, 0) + 1
    return {
        "labelled": sum(counts.values()),
        **counts,
        "pairs": pairs,
        "threshold": threshold,
        "estimated_f1": f1,
    }
