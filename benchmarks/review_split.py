"""The review benchmark's ``split`` setting: every matcher scored as ``search eval``
scores a catalogue by default, the test split's grouped offers matched within the test
split (Shopee style, self counted in the F1), and thresholds tuned on valid matched
within valid.

On wdc-products the whole-catalogue setting is degenerate (the two source tables give
copies of one offer different group ids, so no match at all already scores 95% of the
full-train matcher's F1); within a split the full-train matcher is far ahead of "each
offer itself only", so a label budget can be read against that gap.

The edge sets are the project's (``tuning.splits.split_sets``: each split's listings
searched within their split with their stored vectors), the pair features
``EdgeSet.features``, the decision ``rules.decide`` through ``tuning.thresholds``
(``score_rule`` / ``tune_rule``, whose F1 is ``retrieval.metrics``' Shopee F1). The
full-train matcher is ``search eval --match-pair`` itself (``tune_catalogue``, default
settings: pair model on the train split's folds, every rule tuned on valid, the
stage-2 rule chosen on valid), run once and its figures kept in ``--work``. ``table``
renders either setting's figures as markdown; ``build`` makes what both settings read
(the index, the whole catalogue's edge set and features) and ``cached`` keeps models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.atomic import write_json
from retrieval.data import open_dataset
from retrieval.data.base import Dataset
from retrieval.index.base import VectorIndex
from search.indexing import connect, index_dataset
from search.match.edges import Edges
from search.match.edgeset import self_edgeset, weights_for
from search.match.matcher import Matcher
from search.match.pair_model import (
    NEIGHBOURS,
    PAIR,
    load_model,
    pair_scores,
    same_group,
    save_models,
)
from search.match.rules import Rule
from search.match.tuning.catalogue import MATCHER_FILE, tune_catalogue
from search.match.tuning.splits import split_sets
from search.match.tuning.thresholds import score_rule, tune_rule

log = logging.getLogger("review_bench")
FULL = "full-train-split"  # the folder in --work search eval's matcher and figures go to


def build(cfg, path: Path, work: Path, k: int, setting: str) -> tuple:
    """The whole catalogue's edge set and features; in the ``split`` setting also valid
    and test within themselves and ``search eval --match-pair``'s figures (else None)."""
    dataset = open_dataset(str(path))
    index = connect(cfg)
    if index.info("wdc") is None:
        index.close()
        index_dataset(cfg, str(path), collection="wdc")
        index = connect(cfg)
    try:
        products = list(dataset.products())
        names = [v.name for v in index.info("wdc").vectors]
        template = Matcher(list(cfg.stage1.encoders), names, weights_for(names), [], "", k)
        es = self_edgeset(index, "wdc", dataset.name, products, template)
        es.search()
        scorer = full = None
        if setting == "split":
            encoders = list(cfg.stage1.encoders)
            scorer = SplitScorer(index, dataset, "wdc", encoders, names, k)
            full = full_train(index, dataset, "wdc", encoders, names, work)
    finally:
        index.close()
    cache = work / f"features-k{k}.npy"
    if cache.is_file():
        x = np.load(cache, allow_pickle=False)
    else:
        x = es.features(NEIGHBOURS)
        np.save(cache, x, allow_pickle=False)
    assert len(x) == len(es.edges), "stale feature cache: delete it"
    return es, x, scorer, full


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
    pair model (boosters, none: each offer itself only) scored on them."""

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
        self.sets = split_sets(index, dataset, collection, template, ["valid", "test"],
                               "valid", None)  # fmt: skip
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

    def f1(self, boosters: list, threshold: float, split: str = "test") -> float:
        """Shopee F1 of the split's offers under ``pair >= threshold``, within the split."""
        rule = Rule(PAIR, {PAIR: threshold if boosters else 1.0}, PAIR)
        es = self.sets[split]
        return score_rule(self.pair_edges(boosters, split), rule, es.n, self.targets[split]).f1

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
    """Markdown: cold start by label count (means over the draws), then the warm start."""
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    full, base, c, w = res["full_train"], res["itself_only"], res["cold"], res["warm"]
    gain = full["test_f1"] - base
    lines = [
        "| labels | queue F1 | random F1 | queue / full-train | queue share of the gain "
        "| queue AP | random AP |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in c[0]["queue"]:
        q, r = mean([s["queue"][n] for s in c]), mean([s["random"][n] for s in c])
        qa, ra = mean([s["queue_ap"][n] for s in c]), mean([s["random_ap"][n] for s in c])
        share = (q - base) / gain if gain > 0 else float("nan")
        lines.append(
            f"| {n} | {q:.4f} | {r:.4f} | {q / full['test_f1']:.1%} | {share:.0%} "
            f"| {qa:.4f} | {ra:.4f} |"
        )
    lines.append(
        f"\nfull-train matcher ({full.get('rule', 'pair')}): test F1 {full['test_f1']:.4f}, "
        f"AP {full['test_ap']:.4f}; each offer itself only: F1 {base:.4f}"
    )
    b, q, r = (mean([s[k] for s in w]) for k in ("base", "queue", "random"))
    ba, qa, ra = (mean([s[k] for s in w]) for k in ("base_ap", "queue_ap", "random_ap"))
    lines.append(
        f"warm start: quarter-train matcher F1 {b:.4f} (AP {ba:.4f}); +200 queue labels "
        f"{q:.4f} (AP {qa:.4f}); +200 random {r:.4f} (AP {ra:.4f})"
    )
    return "\n".join(lines)
