"""``search eval`` on a catalogue: the matcher tuned on valid, every rule scored on valid
and test, the matcher written to the run folder (``tune_catalogue``).

With ``against="split"`` each split is matched within itself (a grouped listing
against its split, self excluded from retrieval, counted in the F1 as Shopee counts
it); the pair model (``pair``, its rules are stage 2) is trained on the train split's
edges cut into folds of valid's size (``folds``). With ``against="catalogue"`` every
split's listings are matched against the whole catalogue, as ``search match`` will
match them: one candidate search of every listing, each split a view of its queries
(``splits``). Either way the edge set, rules and pair model are the ones ``search
match`` applies (``search.match.edgeset``, ``rules``, ``pair_model``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.index.base import VectorIndex
from retrieval.types import Hit, ProgressFactory
from search.match.edgeset import weights_for
from search.match.labels import Label
from search.match.matcher import Matcher
from search.match.output import write_split_run
from search.match.tuning.folds import fold_count, folds
from search.match.tuning.labelled import TuningLabels, disagreements
from search.match.tuning.menu import (
    RuleScore,
    best_matcher,
    choose,
    largest_group,
    pair_rules,
    stage1_rules,
    tune_all,
)
from search.match.tuning.pair import fit_catalogue_pair, fit_pair
from search.match.tuning.splits import AGAINST, catalogue_sets, split_sets

log = logging.getLogger(__name__)
MATCHER_FILE = "matcher.json"
SPLIT_RUN = "match-{split}"  # against the catalogue: the scored split's run folder


@dataclass
class CatalogueScores:
    """Every tuned rule's scores, the matcher written, and the test split's predictions."""

    rules: list[RuleScore]
    matcher: Matcher
    path: Path
    predictions: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, float] = field(default_factory=dict)  # labels/* (``tuning.labelled``)

    def best(self, stage: str) -> RuleScore | None:
        """The rule of a stage chosen on valid (as the matcher chooses)."""
        rows = [r for r in self.rules if r.stage == stage]
        return choose(rows) if rows else None

    def metrics(self) -> dict[str, float]:
        """``match/<rule>/{f1,valid_f1,precision,recall}`` and each stage's chosen rule as
        ``stageN/f1`` (its test F1), ``stageN/match_precision`` / ``match_recall``."""
        out: dict[str, float] = {}
        for r in self.rules:
            out[f"match/{r.rule.name}/f1"] = r.test.f1
            out[f"match/{r.rule.name}/valid_f1"] = r.valid.f1
            out[f"match/{r.rule.name}/precision"] = r.test.precision
            out[f"match/{r.rule.name}/recall"] = r.test.recall
        for stage in ("stage1", "stage2"):
            best = self.best(stage)
            if best is not None:
                out[f"{stage}/f1"] = best.test.f1
                out[f"{stage}/tune_f1"] = best.valid.f1
                out[f"{stage}/match_precision"] = best.test.precision
                out[f"{stage}/match_recall"] = best.test.recall
        return {**out, **self.labels}


def tune_catalogue(
    index: VectorIndex,
    dataset: Dataset,
    collection: str,
    encoders: Sequence[str],
    vectors: Sequence[str],
    out: Path,
    *,
    split: str = "test",
    tune_split: str = "valid",
    k: int = 20,
    inb: int = 1,
    pair: bool = False,
    against: str = "split",
    labels: Mapping[tuple[str, str], Label] | None = None,
    answers: Mapping[str, Mapping[str, Sequence[Hit]] | None] | None = None,
    progress: ProgressFactory | None = None,
) -> CatalogueScores:
    """Tune every rule on ``tune_split``, score it on ``split``, write ``matcher.json``;
    ``against``: each split matched within itself or against the whole catalogue;
    ``labels``: a reviewer's pairs, learnt from unless they touch ``split``
    (``search.match.tuning.labelled``); ``answers``: the splits' listings already searched
    within their split, by listing id (``splits.split_sets``)."""
    if not dataset.self_match:
        raise UsageError(f"{dataset.name} is not a catalogue: nothing to self-match")
    if against not in AGAINST:
        raise UsageError(f"unknown --match-against {against!r}; known: {', '.join(AGAINST)}")
    template = Matcher(list(encoders), list(vectors), weights_for(vectors), [], "", k)
    splits = [split, tune_split] + (["train"] if pair else [])
    if against == "catalogue":
        sets = catalogue_sets(index, dataset, collection, template, splits, progress)
    else:
        sets = split_sets(
            index, dataset, collection, template, splits, tune_split, progress, answers
        )
    test, valid = sets[split], sets[tune_split]
    reviewed = None
    if labels:
        reviewed = TuningLabels.split(labels, list(dataset.products()), split)
        valid = reviewed.amend(valid)
    # a predicted group may be as large as the largest labelled one (tuning splits only)
    labelled = [p for p in dataset.products() if p.fields.get("split") in ("train", tune_split)]
    cap = largest_group(labelled)
    scores = tune_all(stage1_rules(list(vectors), inb, cap), valid, test, "stage1", progress)
    pair_model = None
    if pair and against == "catalogue":
        pair_model = fit_catalogue_pair(sets["train"], out, labels=reviewed, progress=progress)
    elif pair:
        parts = max(2, fold_count(sets["train"].n, valid.n))
        pair_model = fit_pair(
            folds(sets["train"], parts), valid, test, out, labels=reviewed, progress=progress
        )
    if pair:
        scores += tune_all(pair_rules(cap), valid, test, "stage2", progress)
    info: dict[str, Any] = {
        "dataset": dataset.name,
        "collection": collection,
        "tuned_on": tune_split,
        "scored_on": split,  # test_f1's split: search match reports its F1 there beside it
        "tuned_against": against,
        "tuned_listings": valid.n,  # the candidates each tuning query was matched among
    }
    matcher = best_matcher(scores, list(encoders), valid, pair_model, info)
    matcher.base = out
    path = matcher.save(out / MATCHER_FILE)
    chosen = matcher.chosen()
    sets_ = test.decide(chosen)
    predictions = {
        test.products[i].id: [test.products[j].id for j in sorted(sets_.get(int(i), ()))]
        for i in test.queries
    }
    if against == "catalogue":  # the test split's matches as a run the studio opens
        write_split_run(
            test,
            chosen,
            sets_,
            out / SPLIT_RUN.format(split=split),
            dataset=dataset.name,
            matcher=str(path),
        )
    result = CatalogueScores(scores, matcher, path, predictions)
    if reviewed is not None:
        every = (
            replace(test, queries=np.arange(test.n), rounds={}) if against == "catalogue" else valid
        )
        reviewed.score((test, sets_), (every, every.decide(chosen)))
        every_listing = list(dataset.products())
        reviewed.counts["labels/against_groups"] = disagreements(reviewed, every_listing)
        result.labels = reviewed.metrics()
    return result
