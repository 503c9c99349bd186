"""Scores of both stages of one evaluation, as flat ``stage/metric`` keys.

Ranking metrics run over the queries that have a match in the gallery and the
searched vector. Match sets: on Shopee-style sets (``self_match``) every posting of
the split with a vector counts, itself included in its target and prediction (the
competition's F1, so a posting alone in its group in the split still scores); on
query/gallery sets the queries with a match count. Thresholds come from the tuning
split and are applied to the scored split, once per rule (``keep_nearest`` off, on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.metrics import MatchScores, evaluate
from retrieval.types import Qrels, Query, Run
from search.config import EvalConfig
from search.evaluation.thresholds import MatchLists, Sweep, match_sets, sweep
from search.timing import Timing

Rows = dict[str, list[tuple[str, float]]]
STAGES = ("stage1", "stage2")
RULES = {False: "", True: "_nearest"}  # keep_nearest -> metric key suffix


@dataclass
class StageRows:
    """One split through the pipeline: each query's ranked (id, score) per stage."""

    split: str
    queries: list[Query]
    stage1: Rows
    stage2: Rows
    no_vector: list[str]
    timing: Timing
    vector: str = ""  # the stage-1 vector searched
    k: int = 0  # stage-1 depth
    n: int = 0  # stage-2 depth

    def rows(self, stage: str) -> Rows:
        return self.stage1 if stage == "stage1" else self.stage2


@dataclass
class MatchOutcome:
    """One stage under one rule: the tuned threshold, the scored split's sets, the curves."""

    stage: str
    keep_nearest: bool
    threshold: float
    scores: MatchScores
    tune: Sweep
    test: Sweep


@dataclass
class Scored:
    """Everything the report and the run files need."""

    metrics: dict[str, float]
    runs: dict[str, Run]
    qrels: Qrels
    ks: dict[str, list[int]]
    matches: list[MatchOutcome]
    predictions: dict[str, list[str]]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    catalogue: Any = None  # search.match.tuning.catalogue.CatalogueScores on a catalogue


@dataclass
class EvalResult:
    """What one evaluation measured and where it wrote it."""

    out: Path
    metrics: dict[str, float]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return self.out / "report.md"


def gallery_qrels(queries: Sequence[Query], gallery: set[str]) -> Qrels:
    """Qrels of the queries, keeping only matches present in the gallery."""
    return {q.id: {m: 1 for m in q.matches if m in gallery} for q in queries}


def stage_run(rows: Rows, qids: Sequence[str]) -> Run:
    """A TREC-style run of the given queries, candidates inserted in rank order."""
    return {q: dict(rows.get(q, [])) for q in qids}


def ranking_names(depth: int, ks: Sequence[int], n: int) -> tuple[list[int], list[str]]:
    """The recall cut-offs (those within ``depth``, and ``depth``) and every metric name;
    MAP is cut at the stage-2 depth ``n`` in both stages, so the two compare."""
    cuts = sorted({k for k in ks if k <= depth} | {depth})
    names = [f"recall@{k}" for k in cuts]
    names += [f"precision@{k}" for k in (1, 5, 10) if k <= depth]
    return cuts, names + ["mrr@10", "ndcg@10", f"map@{n}"]


def match_targets(rows: StageRows, gallery: set[str], self_match: bool) -> dict[str, set[str]]:
    """Each scored query's target set (see the module doc for which queries count)."""
    qrels, lacking = gallery_qrels(rows.queries, gallery), set(rows.no_vector)
    return {
        q.id: set(qrels[q.id])
        for q in rows.queries
        if q.id not in lacking and (self_match or qrels[q.id])
    }


def score_stages(
    test: StageRows,
    tune: StageRows | None,
    gallery: set[str],
    self_match: bool,
    ev: EvalConfig,
    items: dict[str, int],
    *,
    reranked: bool,
    catalogue: Any = None,
) -> Scored:
    """Ranking metrics, tuned match sets, latency and counts of both stages. On a
    catalogue with a tuned matcher (``catalogue``: ``CatalogueScores``) the match sets
    are the matcher's (calibrated scores): no threshold is swept on the ranking score."""
    qrels_all = gallery_qrels(test.queries, gallery)
    lacking = set(test.no_vector)
    if len(lacking) == len(test.queries):
        raise UsageError(
            f"none of the {len(test.queries)} {test.split!r} queries has a {test.vector!r} "
            "vector (no title, or no readable image for an image vector); pick another --vector"
        )
    no_match = [q.id for q in test.queries if not qrels_all[q.id]]
    evaluated = [q.id for q in test.queries if qrels_all[q.id] and q.id not in lacking]
    if not evaluated:
        raise UsageError(f"no {test.split!r} query has a match in the gallery: nothing to score")
    qrels = {q: qrels_all[q] for q in evaluated}
    metrics: dict[str, float] = {
        "queries/total": len(test.queries),
        "queries/evaluated": len(evaluated),
        "skipped/no_match_in_gallery": len(no_match),
        "skipped/no_vector": len(lacking),
        **items,
    }
    runs, ks = {}, {}
    for stage, depth in (("stage1", test.k), ("stage2", test.n)):
        runs[stage] = stage_run(test.rows(stage), evaluated)
        cuts = ev.ks if stage == "stage1" else (1, 5, 10)
        ks[stage], names = ranking_names(depth, cuts, test.n)
        for name, value in evaluate(runs[stage], qrels, names).items():
            metrics[f"{stage}/{name}"] = value
    metrics["stage2/recall_ceiling"] = metrics[f"stage1/recall@{test.k}"]
    outcomes: list[MatchOutcome] = []
    if catalogue is None:
        outcomes = _match_outcomes(test, tune or test, gallery, self_match, ev.thresholds)
        predictions = _outcome_metrics(outcomes, test, metrics)
    else:
        metrics["queries/match_scored"] = len(match_targets(test, gallery, self_match))
        predictions = catalogue.predictions
    metrics.update(test.timing.summary("stage1"))
    if reranked:
        metrics.update(test.timing.summary("stage2"))
    if catalogue is not None:
        metrics.update(catalogue.metrics())
    skipped = {"no_match_in_gallery": no_match, "no_vector": sorted(lacking)}
    notes = _notes(skipped, self_match)
    return Scored(
        metrics, runs, qrels, ks, outcomes, predictions, skipped, notes, catalogue=catalogue
    )


def _outcome_metrics(
    outcomes: list[MatchOutcome], test: StageRows, metrics: dict[str, float]
) -> dict[str, list[str]]:
    """Each stage and rule's match figures into ``metrics``; the predictions of the
    stage-2 rule best on the tuning split."""
    for o in outcomes:
        suffix = RULES[o.keep_nearest]
        metrics[f"{o.stage}/f1{suffix}"] = o.scores.f1
        metrics[f"{o.stage}/match_precision{suffix}"] = o.scores.precision
        metrics[f"{o.stage}/match_recall{suffix}"] = o.scores.recall
        metrics[f"{o.stage}/threshold{suffix}"] = o.threshold
        metrics[f"{o.stage}/tune_f1{suffix}"] = float(o.tune.f1.max())
    metrics["queries/match_scored"] = outcomes[0].scores.n
    final = max((o for o in outcomes if o.stage == "stage2"), key=lambda o: float(o.tune.f1.max()))
    return match_sets(test.stage2, final.threshold, final.keep_nearest)


def _match_outcomes(
    test: StageRows, tune: StageRows, gallery: set[str], self_match: bool, points: int
) -> list[MatchOutcome]:
    test_t = match_targets(test, gallery, self_match)
    tune_t = match_targets(tune, gallery, self_match)
    out = []
    for stage in STAGES:
        tune_l = MatchLists.build(tune.rows(stage), tune_t, include_self=self_match)
        test_l = MatchLists.build(test.rows(stage), test_t, include_self=self_match)
        grid = tune_l.grid(points)
        for keep in RULES:
            tuned = sweep(tune_l, grid, keep)
            t = tuned.best
            out.append(
                MatchOutcome(
                    stage, keep, t, test_l.scores_at(t, keep), tuned, sweep(test_l, grid, keep)
                )
            )
    return out


def _notes(skipped: dict[str, list[str]], self_match: bool) -> list[str]:
    notes = []
    if n := len(skipped["no_match_in_gallery"]):
        why = (
            "alone in their group within the split: left out of ranking metrics, still "
            "scored by the F1 as matching themselves"
            if self_match
            else "no match in the gallery: left out of every metric"
        )
        notes.append(f"{n} queries skipped, {why}")
    if n := len(skipped["no_vector"]):
        notes.append(f"{n} queries lack the searched vector: left out of every metric")
    return notes
