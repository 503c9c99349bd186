"""The match decision on candidate edges: the Shopee winners' rules as switches.

A ``Rule`` keeps an edge (i, j) when any of its thresholded scores reaches its
threshold (one score: a plain threshold; several: the **union** of the per-score match
sets, 1st place), then optionally:

- **min2**: a listing left with no match keeps its nearest candidate (by the rule's
  primary score) unless that score is under a second, lower threshold;
- **groups**: predicted sets made consistent (``search.match.groups``): ``mutual``
  edges only, ``symmetric`` closure, connected ``components`` with a size cap, or
  ``agglomerative`` average-linkage merging of the primary scores, with the cap.

Scores are calibrated (cosines, their weighted mean, a pair model's probability), so
one threshold means the same for every listing. ``inb`` names how many rounds of
neighbourhood blending the edges went through first (``search.match.inb``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from retrieval.errors import UsageError
from search.match.edges import Edges, nearest_mask
from search.match.groups import GROUPINGS, apply_groups

Sets = dict[int, set[int]]
Verdicts = Mapping[tuple[int, int], bool]  # a reviewer's pairs of rows -> match or not


@dataclass
class Rule:
    """One decision rule: thresholds per score, min2, groups, INB rounds."""

    name: str
    thresholds: dict[str, float]
    primary: str
    min2: float | None = None
    groups: str = "none"
    group_cap: int = 0  # 0: no cap
    group_threshold: float | None = None  # agglomerative: the average link to merge at
    inb: int = 0  # rounds of neighbourhood blending before the decision
    inb_threshold: float | None = None  # neighbours blended in: mean score >= this
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.groups not in GROUPINGS:
            raise UsageError(f"unknown grouping {self.groups!r}; known: {', '.join(GROUPINGS)}")
        if self.primary not in self.thresholds:
            raise UsageError(f"rule {self.name!r}: primary score {self.primary!r} has no threshold")

    @property
    def scores(self) -> list[str]:
        """Every score the rule reads."""
        return sorted(set(self.thresholds) | {self.primary})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        known = {f for f in cls.__dataclass_fields__}
        extra = sorted(set(data) - known)
        if extra:
            raise UsageError(f"unknown rule field(s) {extra}; known: {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise UsageError(f"bad rule {data.get('name')!r}: {exc}") from exc


def kept_edges(edges: Edges, rule: Rule, forced: np.ndarray | None = None) -> np.ndarray:
    """The edges the thresholds and min2 keep (a boolean mask); ``forced`` (1 keep, -1
    drop, 0 as the rule says, per edge: ``with_verdicts``) overrides the thresholds."""
    missing = [s for s in rule.scores if s not in edges.sims]
    if missing:
        raise UsageError(
            f"rule {rule.name!r} reads score(s) {missing}; the edges have {sorted(edges.sims)}"
        )
    keep = np.zeros(len(edges), dtype=bool)
    for name, t in rule.thresholds.items():
        keep |= edges.sims[name] >= t
    if forced is not None:
        keep = np.where(forced != 0, forced > 0, keep)
    if rule.min2 is not None and len(edges):
        keep |= nearest_mask(edges, rule.primary, keep, rule.min2)
    return keep


def with_verdicts(
    edges: Edges, verdicts: Verdicts, primary: str, n: int
) -> tuple[Edges, np.ndarray]:
    """The edges a reviewer's verdicts decide: a match pair present both ways (added
    where it was no candidate, its other scores NaN) with its ``primary`` score raised to
    at least 1, a non-match pair's ``primary`` score -inf (no min2 or linkage picks it);
    and per edge 1 (forced in), -1 (forced out) or 0."""
    keys = edges.keys(n)
    have = set(keys.tolist())
    add = [
        (i, j)
        for (a, b), same in verdicts.items()
        if same
        for i, j in ((a, b), (b, a))
        if i * n + j not in have
    ]
    if add:
        src, dst = np.array(add, dtype=edges.src.dtype).T
        sims = {
            k: np.r_[v, np.full(len(add), np.nan, dtype=v.dtype)] for k, v in edges.sims.items()
        }
        edges = Edges(np.r_[edges.src, src], np.r_[edges.dst, dst], sims)
        keys = edges.keys(n)
    want = {i * n + j: same for (a, b), same in verdicts.items() for i, j in ((a, b), (b, a))}
    forced = np.array(
        [0 if (v := want.get(k)) is None else 1 if v else -1 for k in keys.tolist()], np.int8
    )
    score = edges.sims[primary].astype(np.float64)
    score = np.where(forced > 0, np.fmax(score, 1.0), np.where(forced < 0, -np.inf, score))
    edges = Edges(edges.src, edges.dst, {**edges.sims, primary: score})
    return edges, forced


def decide(edges: Edges, rule: Rule, n: int, verdicts: Verdicts | None = None) -> Sets:
    """Each source row's matched rows (itself not included) under ``rule``; a reviewer's
    ``verdicts`` keep their pairs in or out whatever the scores say, before group
    consistency (which never joins a pair a verdict keeps apart)."""
    forced, apart = None, []
    if verdicts:
        edges, forced = with_verdicts(edges, verdicts, rule.primary, n)
        apart = [pair for pair, same in verdicts.items() if not same]
    keep = kept_edges(edges, rule, forced)
    if rule.groups != "none":
        t = rule.group_threshold
        return apply_groups(
            edges,
            keep,
            n,
            mode=rule.groups,
            score=rule.primary,
            cap=rule.group_cap,
            threshold=t if t is not None else rule.thresholds[rule.primary],
            min2=rule.min2,
            apart=apart,
        )
    out: Sets = {}
    for i, j in zip(edges.src[keep].tolist(), edges.dst[keep].tolist()):
        out.setdefault(i, set()).add(j)
    return out
