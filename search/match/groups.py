"""Group consistency: predicted match sets that agree with each other.

Kept edges (i, j) become listing sets by one of:

- ``mutual``: i matches j only when j also matches i (fewer false pairs);
- ``symmetric``: i matches j when either kept the other (fewer missed pairs);
- ``components``: the connected components of the kept edges, so A~B and B~C put A
  with C; edges are joined best score first and a join that would pass ``group_cap``
  listings is refused, so a chain cannot pull a whole category into one group;
- ``agglomerative``: average-linkage clustering of the primary score over every
  candidate pair (a pair no one proposed counts 0), merging while the average link
  reaches ``group_threshold`` and the cap holds (3rd place's merging of pair
  probabilities); listings left alone then follow min2, if the rule has it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

import numpy as np

from search.match.edges import Edges, nearest_mask

Sets = dict[int, set[int]]
GROUPINGS = ("none", "mutual", "symmetric", "components", "agglomerative")


def apply_groups(
    edges: Edges,
    keep: np.ndarray,
    n: int,
    *,
    mode: str,
    score: str,
    cap: int,
    threshold: float,
    min2: float | None,
    apart: Sequence[tuple[int, int]] = (),
) -> Sets:
    """Listing sets under a grouping ``mode`` (see the module doc): ``score`` orders the
    joins, ``threshold`` is agglomerative's average link, ``min2`` its fallback floor;
    no join puts both rows of an ``apart`` pair (a reviewer's non-match) in one group."""
    src, dst = edges.src[keep], edges.dst[keep]
    if mode in ("mutual", "symmetric"):
        pairs = set(zip(src.tolist(), dst.tolist()))
        out: Sets = {}
        for i, j in pairs:
            if mode == "symmetric" or (j, i) in pairs:
                out.setdefault(i, set()).add(j)
                out.setdefault(j, set()).add(i)
        return out
    if mode == "components":
        return _members(capped_components(src, dst, edges.sims[score][keep], n, cap, apart))
    labels = average_linkage(edges.src, edges.dst, edges.sims[score], n, threshold, cap, apart)
    out = _members(labels)
    if min2 is not None and len(edges):
        grouped = np.array([i in out for i in range(n)], dtype=bool)
        near = nearest_mask(edges, score, grouped[edges.src], min2)
        for i, j in zip(edges.src[near].tolist(), edges.dst[near].tolist()):
            out.setdefault(i, set()).add(j)
    return out


def _members(labels: np.ndarray) -> Sets:
    """Each row's fellow members of its label (rows alone get nothing)."""
    groups: dict[int, list[int]] = {}
    for row, lab in enumerate(labels.tolist()):
        groups.setdefault(lab, []).append(row)
    out: Sets = {}
    for rows in groups.values():
        if len(rows) > 1:
            for r in rows:
                out[r] = set(rows) - {r}
    return out


def _find(parent: list[int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def _cannot(apart: Sequence[tuple[int, int]]) -> dict[int, set[int]]:
    """Per row, the rows it must stay apart from (kept per group root as groups join)."""
    out: dict[int, set[int]] = {}
    for i, j in apart:
        out.setdefault(i, set()).add(j)
        out.setdefault(j, set()).add(i)
    return out


def _kept_apart(cannot: dict[int, set[int]], root: Callable[[int], int], a: int, b: int) -> bool:
    """Whether joining the groups of roots ``a`` and ``b`` would join an apart pair."""
    return any(root(y) == b for y in cannot.get(a, ())) if cannot else False


def capped_components(
    src: np.ndarray,
    dst: np.ndarray,
    score: np.ndarray,
    n: int,
    cap: int,
    apart: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """Component label per row: edges joined best first; a join past ``cap`` rows, or of
    the two rows of an ``apart`` pair, is refused."""
    parent, size = list(range(n)), [1] * n
    cannot = _cannot(apart)
    for e in np.argsort(-score, kind="stable").tolist():
        a, b = _find(parent, int(src[e])), _find(parent, int(dst[e]))
        if a == b or (cap and size[a] + size[b] > cap):
            continue
        if _kept_apart(cannot, lambda x: _find(parent, x), a, b):
            continue
        if size[a] < size[b]:
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        if b in cannot:
            cannot.setdefault(a, set()).update(cannot.pop(b))
    return np.array([_find(parent, i) for i in range(n)])


def average_linkage(
    src: np.ndarray,
    dst: np.ndarray,
    score: np.ndarray,
    n: int,
    threshold: float,
    cap: int,
    apart: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """Cluster label per row by average linkage over the (symmetrised) pair scores; no
    merge joins the two rows of an ``apart`` pair."""
    cannot = _cannot(apart)
    pair: dict[tuple[int, int], list[float]] = {}
    for i, j, s in zip(src.tolist(), dst.tolist(), score.tolist()):
        key = (i, j) if i < j else (j, i)
        pair.setdefault(key, []).append(s)
    link: dict[int, dict[int, float]] = {}
    for (i, j), ss in pair.items():
        s = max(sum(ss) / len(ss), 0.0)
        link.setdefault(i, {})[j] = s
        link.setdefault(j, {})[i] = s
    size = [1] * n
    alive = [True] * n
    heap = [(-s, i, j) for (i, j), ss in pair.items() if (s := sum(ss) / len(ss)) >= threshold]
    heapq.heapify(heap)
    label = list(range(n))
    while heap:
        neg, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue
        total = link.get(a, {}).get(b, 0.0)
        if abs(total / (size[a] * size[b]) + neg) > 1e-9:
            continue  # a stale entry: the link changed since it was pushed
        if cap and size[a] + size[b] > cap:
            continue
        if _kept_apart(cannot, lambda x: _root(label, x), a, b):
            continue
        alive[b] = False
        label[b] = a
        size[a] += size[b]
        if b in cannot:
            cannot.setdefault(a, set()).update(cannot.pop(b))
        for c, s in link.pop(b, {}).items():
            link[c].pop(b, None)
            if c == a:
                continue
            merged = link.setdefault(a, {}).get(c, 0.0) + s
            link[a][c] = merged
            link[c][a] = merged
        for c, s in link.get(a, {}).items():
            avg = s / (size[a] * size[c])
            if avg >= threshold:
                heapq.heappush(heap, (-avg, min(a, c), max(a, c)))
    return np.array([_root(label, i) for i in range(n)])


def _root(label: list[int], i: int) -> int:
    while label[i] != i:
        i = label[i]
    return i
