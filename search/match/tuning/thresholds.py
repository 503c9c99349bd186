"""Thresholds of a rule chosen on a labelled split (valid), by coordinate ascent on F1.

Every F1 here is ``retrieval.metrics.match_scores`` with the listing itself in both
sets (the Shopee F1), the same function the reported figures come from. A rule's
thresholds start at each score's own best, then each is swept with the others fixed
(off included, for a union), then min2's floor, the group cap and again the thresholds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from retrieval.metrics import MatchScores, match_scores
from retrieval.types import Progress
from search.match.edges import Edges
from search.match.rules import Rule, decide

log = logging.getLogger(__name__)
Targets = Mapping[int, set[int]]
OFF = float("inf")
CAPS = (0, 8, 16, 32, 64)


def score_rule(edges: Edges, rule: Rule, n: int, targets: Targets) -> MatchScores:
    """Macro precision, recall and F1 of the rule's sets over the target rows."""
    sets = decide(edges, rule, n)
    return match_scores({r: sets.get(r, ()) for r in targets}, targets, include_self=True)


def grid(values: np.ndarray, points: int = 48) -> list[float]:
    """Candidate thresholds: quantiles of the upper part of a score's distribution."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return [0.0]
    qs = np.quantile(finite, np.linspace(0.5, 0.9995, points))
    return sorted({round(float(q), 5) for q in qs})


@dataclass(frozen=True)
class _Ascent:
    """What every step of one rule's ascent reads: the edges it decides on, the row
    count, each query row's targets, and ``tick(1)`` after each F1 evaluated."""

    edges: Edges
    n: int
    targets: Targets
    tick: Progress | None = None

    def best(self, rule: Rule, field: str, values: Sequence[object]) -> tuple[Rule, float]:
        """The rule with ``field`` set to the value of ``values`` of the highest F1."""
        best, best_f1 = rule, -1.0
        for v in values:
            cand = _with(rule, field, v)
            if cand is None:
                continue
            f1 = score_rule(self.edges, cand, self.n, self.targets).f1
            if self.tick:
                self.tick(1)
            if f1 > best_f1 + 1e-12:
                best, best_f1 = cand, f1
        return best, best_f1

    def ascend(self, rule: Rule, grids: Mapping[str, list[float]], passes: int) -> Rule:
        """Each threshold swept in turn, the others fixed (off too, for a union), up to
        ``passes`` times or until a pass changes none."""
        several = len(rule.thresholds) > 1
        for _ in range(passes):
            before = dict(rule.thresholds)
            for s in rule.thresholds:
                off = [OFF] if several and s != rule.primary else []
                rule, _ = self.best(rule, f"t:{s}", list(grids[s]) + off)
            if rule.thresholds == before:
                break
        return rule


def _with(rule: Rule, field: str, value: object) -> Rule | None:
    if field.startswith("t:"):
        name = field[2:]
        th = dict(rule.thresholds)
        th[name] = float(value)  # type: ignore[arg-type]
        return replace(rule, thresholds=th)
    return replace(rule, **{field: value})


def tune_rule(
    edges: Edges,
    rule: Rule,
    n: int,
    targets: Targets,
    passes: int = 2,
    tick: Progress | None = None,
) -> Rule:
    """The rule with thresholds (and min2 floor, group cap) that maximise F1 on ``targets``;
    ``tick(1)`` after each F1 evaluated (agglomerative grouping makes each one slow)."""
    if not len(edges):
        return rule
    run = _Ascent(edges, n, targets, tick)
    grids = {s: grid(edges.sims[s]) for s in rule.scores}
    th = {}
    for s in rule.thresholds:  # each score's own best as the start
        solo = replace(rule, thresholds={s: OFF}, primary=s, min2=None, groups="none")
        th[s] = run.best(solo, f"t:{s}", grids[s])[0].thresholds[s]
    rule = replace(rule, thresholds=th)
    want_min2, groups = rule.min2 is not None, rule.groups
    rule = run.ascend(replace(rule, min2=None, groups="none"), grids, passes)
    if want_min2:
        lower = [v for v in grids[rule.primary] if v <= rule.thresholds[rule.primary]]
        rule, _ = run.best(rule, "min2", lower or grids[rule.primary])
    if groups != "none":
        rule = replace(rule, groups=groups)
        if groups in ("components", "agglomerative") and not rule.group_cap:
            rule, _ = run.best(rule, "group_cap", CAPS)
        if groups == "agglomerative":
            rule, _ = run.best(rule, "group_threshold", grids[rule.primary])
        rule = run.ascend(rule, grids, 1)
    live = {s: t for s, t in rule.thresholds.items() if t != OFF or s == rule.primary}
    rule = replace(rule, thresholds=live, notes=dict(rule.notes))
    rule.notes["tune_f1"] = round(score_rule(edges, rule, n, targets).f1, 6)
    return rule
