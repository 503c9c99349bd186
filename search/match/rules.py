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

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from retrieval.errors import UsageError
from search.match.edges import Edges, nearest_mask
from search.match.groups import GROUPINGS, apply_groups

Sets = dict[int, set[int]]


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


def kept_edges(edges: Edges, rule: Rule) -> np.ndarray:
    """The edges the thresholds and min2 keep (a boolean mask)."""
    missing = [s for s in rule.scores if s not in edges.sims]
    if missing:
        raise UsageError(
            f"rule {rule.name!r} reads score(s) {missing}; the edges have {sorted(edges.sims)}"
        )
    keep = np.zeros(len(edges), dtype=bool)
    for name, t in rule.thresholds.items():
        keep |= edges.sims[name] >= t
    if rule.min2 is not None and len(edges):
        keep |= nearest_mask(edges, rule.primary, keep, rule.min2)
    return keep


def decide(edges: Edges, rule: Rule, n: int) -> Sets:
    """Each source row's matched rows (itself not included) under ``rule``."""
    keep = kept_edges(edges, rule)
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
        )
    out: Sets = {}
    for i, j in zip(edges.src[keep].tolist(), edges.dst[keep].tolist()):
        out.setdefault(i, set()).add(j)
    return out
