"""What the review benchmark reads, every matcher scored as ``search eval`` scores a
catalogue by default: the test split's grouped offers matched within the test split
(Shopee style, self counted in the F1), thresholds tuned on valid matched within valid.

The edge sets are the project's (``tuning.splits.split_sets``: each split's listings
searched within their split with their stored vectors), the pair features
``EdgeSet.features``, the decision ``rules.decide`` (a reviewer's verdicts kept as
``search match --labels`` keeps them) and the F1 ``retrieval.metrics``' Shopee F1. The
test split within itself is also the catalogue the simulated cold-start reviewer
reviews, so its candidate pairs are those the F1 is read on. The full-train matcher is
``search eval --match-pair`` itself (``tune_catalogue``, default settings: pair model
on the train split's folds, every rule tuned on valid, the stage-2 rule chosen on
valid), run once and its figures kept in ``--work``; the warm start's matcher is fitted
on one of the train folds ``search eval`` cuts (``tuning.folds``). ``build`` makes what
the bench reads, ``cached`` keeps models and ``table`` renders the figures as markdown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.atomic import write_json
from retrieval.data import open_dataset
from retrieval.data.base import Dataset
from retrieval.index.base import VectorIndex
from retrieval.metrics import match_scores
from search.indexing import connect, index_dataset
from search.match.edges import Edges
from search.match.edgeset import weights_for
from search.match.labels import Label
from search.match.matcher import Matcher
from search.match.pair_model import (
    NEIGHBOURS,
    PAIR,
    load_model,
    pair_scores,
    same_group,
    save_models,
)
from search.match.rules import Rule, decide
from search.match.tuning.catalogue import MATCHER_FILE, tune_catalogue
from search.match.tuning.folds import fold_count, folds
from search.match.tuning.splits import split_sets
from search.match.tuning.thresholds import score_rule, tune_rule
from search.match.verdicts import row_verdicts

log = logging.getLogger("review_bench")
FULL = "full-train-split"  # the folder in --work search eval's matcher and figures go to


def build(cfg, path: Path, work: Path, k: int) -> tuple[SplitScorer, dict[str, Any]]:
    """The catalogue indexed (once, into ``cfg``'s store), valid, test and the train
    folds within themselves (``SplitScorer``) and ``search eval --match-pair``'s figures."""
    dataset = open_dataset(str(path))
    index = connect(cfg)
    if index.info("wdc") is None:
        index.close()
        index_dataset(cfg, str(path), collection="wdc")
        index = connect(cfg)
    try:
        names = [v.name for v in index.info("wdc").vectors]
        encoders = list(cfg.stage1.encoders)
        scorer = SplitScorer(index, dataset, "wdc", encoders, names, k)
        full = full_train(index, dataset, "wdc", encoders, names, work)
    finally:
        index.close()
    return scorer, full


def cached(folder: Path, fit) -> list:
    """Boosters kept as LightGBM text files in ``folder`` (fitted once, then read back)."""
    import lightgbm as lgb

    files = sorted(folder.glob("seed*.txt"))
    if files:
        return [lgb.Booster(model_file=str(f)) for f in files]
    boosters = fit()
    folder.mkdir(parents=True, exist_ok=True)
    save_models(boosters, [folder / f"seed{i}.txt" for i in range(len(boosters))])
    return boosters


class SplitScorer:
    """Valid and test, each matched within itself, their pair features and targets; a
    pair model (boosters, none: each offer itself only) scored on them, a reviewer's
    labels kept as verdicts when given. ``train_folds``: the train split cut as ``search
    eval`` cuts it for its pair model (group-disjoint folds of valid's size, each
    matched within itself)."""

    def __init__(
        self,
        index: VectorIndex,
        dataset: Dataset,
        collection: str,
        encoders: Sequence[str],
        vectors: Sequence[str],
        k: int,
    ) -> None:
        template = Matcher(list(encoders), list(vectors), weights_for(vectors), [], "", k)
        self.dataset = dataset
        self.sets = split_sets(index, dataset, collection, template, ["valid", "test", "train"],
                               "valid", None)  # fmt: skip
        train = self.sets.pop("train")
        self.train_folds = folds(train, max(2, fold_count(train.n, self.sets["valid"].n)))
        self.x = {s: es.features(NEIGHBOURS) for s, es in self.sets.items()}
        self.targets = {s: es.targets() for s, es in self.sets.items()}
        log.info(
            "within split: %s",
            ", ".join(f"{s} {es.n} offers, {len(es.edges)} edges" for s, es in self.sets.items()),
        )

    def pair_edges(self, boosters: list, split: str) -> Edges:
        """The split's candidate edges with the model's ``pair`` score (zeros: none)."""
        es = self.sets[split]
        assert es.edges is not None
        if boosters:
            p = pair_scores(boosters, self.x[split], es.edges, es.n)
        else:
            p = np.zeros(len(es.edges), dtype=np.float32)
        return Edges(es.edges.src, es.edges.dst, {PAIR: p})

    def f1(
        self,
        boosters: list,
        threshold: float,
        split: str = "test",
        labels: Mapping[tuple[str, str], Label] | None = None,
    ) -> float:
        """Shopee F1 of the split's offers under ``pair >= threshold``, within the split;
        ``labels``' verdicts kept whatever the model says (``search match --labels``)."""
        rule = Rule(PAIR, {PAIR: threshold if boosters else 1.0}, PAIR)
        es, edges = self.sets[split], self.pair_edges(boosters, split)
        if not labels:
            return score_rule(edges, rule, es.n, self.targets[split]).f1
        sets = decide(edges, rule, es.n, row_verdicts(es, self.dataset, labels))
        targets = self.targets[split]
        return match_scores({r: sets.get(r, ()) for r in targets}, targets, include_self=True).f1

    def ap(self, boosters: list) -> float:
        """Average precision of the pair score over the test split's edges within it."""
        from sklearn.metrics import average_precision_score

        if not boosters:
            return float("nan")
        es = self.sets["test"]
        assert es.edges is not None
        y = same_group(es.edges, es.products)
        return float(average_precision_score(y, self.pair_edges(boosters, "test").sims[PAIR]))

    def tuned(self, boosters: list) -> float:
        """The ``pair`` threshold tuned on valid within itself, as ``search eval`` does."""
        es = self.sets["valid"]
        rule = tune_rule(self.pair_edges(boosters, "valid"), Rule(PAIR, {PAIR: 0.5}, PAIR),
                         es.n, self.targets["valid"])  # fmt: skip
        return rule.thresholds[PAIR]


def full_train(
    index: VectorIndex,
    dataset: Dataset,
    collection: str,
    encoders: Sequence[str],
    vectors: Sequence[str],
    work: Path,
) -> dict[str, Any]:
    """``search eval --match-pair`` (within splits, defaults) once: its stage-2 rule chosen
    on valid and that rule's test F1, beside the plain ``pair`` rule's; kept in ``work``."""
    import json

    out = work / FULL
    cache = out / "figures.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    out.mkdir(parents=True, exist_ok=True)
    scores = tune_catalogue(index, dataset, collection, list(encoders), list(vectors), out,
                            pair=True)  # fmt: skip
    best = scores.best("stage2")
    assert best is not None
    plain = next(r for r in scores.rules if r.rule.name == "pair")
    s1 = scores.best("stage1")
    res = {
        "rule": best.rule.name,
        "valid_f1": round(best.valid.f1, 4),
        "test_f1": round(best.test.f1, 4),
        "pair_rule": {"threshold": plain.rule.thresholds[PAIR],
                      "valid_f1": round(plain.valid.f1, 4), "test_f1": round(plain.test.f1, 4)},
        "stage1": {"rule": s1.rule.name if s1 else None,
                   "test_f1": round(s1.test.f1, 4) if s1 else None},
    }  # fmt: skip
    write_json(cache, res)
    return res


def full_boosters(work: Path) -> list:
    """The pair model ``full_train``'s ``search eval`` saved beside its matcher."""
    matcher = Matcher.load(work / FULL / MATCHER_FILE)
    assert matcher.pair is not None
    pair, base = matcher.pair, work / FULL
    return [load_model(p, pair.columns, pair.files[i] if i < len(pair.files) else None)
            for i, p in enumerate(pair.paths(base))]  # fmt: skip


def table(res: dict) -> str:
    """Markdown: the cold start by label count (means over the draws, and in how many
    draws the queue is ahead), then the warm start's three ways to use the labels."""
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    full, c, w = res["full_train"]["test_f1"], res["cold"], res["warm"]
    lines = [
        "| labels | queue: matcher alone | random: matcher alone | queue: + verdicts "
        "| random: + verdicts | queue alone / full-train | queue ahead (alone, + verdicts) "
        "| queue AP | random AP |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    marks = [n for n in c[0]["queue"] if all(n in d["queue"] and n in d["random"] for d in c)]
    for n in marks:
        q, r = [d["queue"][n] for d in c], [d["random"][n] for d in c]
        cell = {(k, s): mean([f[k] for f in x]) for k in ("f1", "verdicts", "ap")
                for s, x in (("q", q), ("r", r))}  # fmt: skip
        ahead = [sum(a[k] > b[k] for a, b in zip(q, r)) for k in ("f1", "verdicts")]
        lines.append(
            f"| {n} | {cell['f1', 'q']:.4f} | {cell['f1', 'r']:.4f} | {cell['verdicts', 'q']:.4f} "
            f"| {cell['verdicts', 'r']:.4f} | {cell['f1', 'q'] / full:.1%} "
            f"| {ahead[0]}/{len(c)}, {ahead[1]}/{len(c)} | {cell['ap', 'q']:.4f} "
            f"| {cell['ap', 'r']:.4f} |"
        )
    lines.append(
        f"\nfull-train matcher ({res['full_train'].get('rule', 'pair')}): test F1 {full:.4f}, "
        f"AP {res['full_train']['test_ap']:.4f}; each offer itself only: F1 "
        f"{res['itself_only']:.4f}; {len(c)} cold draws\n"
    )
    lines += [
        f"| warm start: train-fold matcher {w['base']:.4f} | + 200 queue labels "
        f"| + 200 random, mean of {len(w['random'])} (range) |",
        "| --- | ---: | ---: |",
    ]
    for k, name in (("verdicts", "kept as verdicts"), ("rows", "added to the rows"),
                    ("rows_verdicts", "both")):  # fmt: skip
        rs = [d[k] for d in w["random"]]
        lines.append(
            f"| {name} | {w['queue'][k]:.4f} | {mean(rs):.4f} ({min(rs):.4f}-{max(rs):.4f}) |"
        )
    return "\n".join(lines)
