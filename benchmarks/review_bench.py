"""The review queue, measured on wdc-products with a simulated reviewer (the true groups
answer each pair it is asked about).

(a) Cold start, the groups hidden: ``ColdStart`` (``search review``) asks 300 pairs in
batches of 20, refitting its pair model and threshold from the labels alone after each;
test match F1 after 100, 200 and 300 labels, beside the same models fitted on as many
uniformly random candidate pairs, and beside the matcher tuned on the whole train split
(``search eval --match-pair``, below) and each offer matched to itself only. (b) Warm start: a matcher trained on a quarter of
the train split's groups (threshold on valid), then 200 labels from ``RunQueue`` over its
run versus 200 random candidate pairs, each added to its training rows, the model
refitted and the threshold tuned again on valid.

Where the F1 is read (``--setting``): ``split`` (the default, ``search eval``'s) scores
the test split's grouped offers matched within the test split and tunes thresholds on
valid within valid (``review_split``); the full-train matcher is then ``search eval
--match-pair`` itself, its stage-2 rule chosen on valid. ``catalogue`` matches the test
offers against the whole catalogue (10,000 offers) as ``search match`` does, the
full-train matcher being ``--match-against catalogue``'s pair model with the ``pair``
threshold tuned on valid (on wdc-products nearly degenerate: no match at all scores 95%
of it). Either way the queues and random draws only ask about pairs of non-test offers,
whose candidates come from one search of the whole catalogue, the groups hidden. The
index (MiniLM + sparse, offline), the pair features and the full-train models are built
once in ``--work`` and reused. Measured, not asserted; run it niced on a shared machine:

    nice -n 5 python benchmarks/review_bench.py --work /tmp/review-bench --seeds 2
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import shared_data  # noqa: E402
from benchmarks.review_split import SplitScorer, build, cached, full_boosters, table  # noqa: E402
from retrieval.atomic import write_json  # noqa: E402
from search.config import load_config  # noqa: E402
from search.match.artifacts import undirected  # noqa: E402
from search.match.cold_start import ColdStart, expected_f1  # noqa: E402
from search.match.edges import Edges  # noqa: E402
from search.match.edgeset import EdgeSet  # noqa: E402
from search.match.labels import Label  # noqa: E402
from search.match.pair_model import (  # noqa: E402
    PAIR,
    columns,
    pair_scores,
    same_group,
)
from search.match.review import RunQueue  # noqa: E402
from search.match.review_folder import Candidates  # noqa: E402
from search.match.rules import Rule  # noqa: E402
from search.match.tuning.folds import fold_of  # noqa: E402
from search.match.tuning.thresholds import score_rule, tune_rule  # noqa: E402
from training.match_pair import train_pair_models  # noqa: E402
from training.match_review import fit_label_models  # noqa: E402

WDC = shared_data("wdc-products") / "catalog.jsonl"
ENCODERS = ["text", "sparse"]
log = logging.getLogger("review_bench")


class Bench:
    """The whole catalogue's edge set and features, the splits' rows, and the oracle."""

    def __init__(self, es: EdgeSet, x: np.ndarray, threads: int) -> None:
        self.es, self.x, self.threads = es, x, threads
        self.edges: Edges = es.edges  # type: ignore[assignment]
        split = np.array([p.fields.get("split") for p in es.products], dtype=object)
        grouped = np.array([p.group is not None for p in es.products])
        self.rows = {s: np.flatnonzero(grouped & (split == s)) for s in ("train", "valid", "test")}
        self.targets = {s: replace(es, queries=r).targets() for s, r in self.rows.items()}
        self.group = {p.id: p.group for p in es.products}
        self.not_test = split != "test"
        self.cols = columns(list(es.weights))
        self.split: SplitScorer | None = None  # set: scored within the splits, not against all

    def verdict(self, a: str, b: str) -> str:
        ga, gb = self.group[a], self.group[b]
        return "match" if ga is not None and ga == gb else "no_match"

    def scores(self, boosters: list) -> np.ndarray:
        return pair_scores(boosters, self.x, self.edges, self.es.n)

    def f1(self, boosters: list, threshold: float, split: str = "test") -> float:
        """Shopee F1 of the split's grouped offers; no model: each offer matches itself only."""
        if self.split is not None:
            return self.split.f1(boosters, threshold, split)
        p = self.scores(boosters) if boosters else np.zeros(len(self.edges))
        edges = Edges(self.edges.src, self.edges.dst, {PAIR: p})
        threshold = threshold if boosters else 1.0
        rule = Rule(PAIR, {PAIR: threshold}, PAIR)
        return score_rule(edges, rule, self.es.n, self.targets[split]).f1

    def ap(self, boosters: list) -> float:
        """Average precision of the pair score over the test offers' candidate edges
        (same group = relevant): the model's ranking, whatever the threshold."""
        from sklearn.metrics import average_precision_score

        if self.split is not None:
            return self.split.ap(boosters)
        if not boosters:
            return float("nan")
        test = np.zeros(self.es.n, dtype=bool)
        test[self.rows["test"]] = True
        mask = test[self.edges.src]
        y = same_group(self.edges, self.es.products)[mask]
        return float(average_precision_score(y, self.scores(boosters)[mask]))

    def tuned(self, boosters: list) -> float:
        """The ``pair`` threshold tuned on valid, as ``search eval`` tunes it."""
        if self.split is not None:
            return self.split.tuned(boosters)
        edges = Edges(self.edges.src, self.edges.dst, {PAIR: self.scores(boosters)})
        rule = tune_rule(edges, Rule(PAIR, {PAIR: 0.5}, PAIR), self.es.n, self.targets["valid"])
        return rule.thresholds[PAIR]

    def split_model(self, queries: np.ndarray, extra=None) -> list:
        """The pair model of ``fit_catalogue_pair`` on these queries' edges (group-disjoint
        folds, the last stopping the boosting), ``extra`` (x, y) rows in the first fold."""
        part = np.full(self.es.n, -1)
        for i in queries.tolist():
            p = self.es.products[i]
            part[i] = fold_of(p.group, p.id, 5)
        y = same_group(self.edges, self.es.products)
        sp = part[self.edges.src]
        folds = [(self.x[sp == f], y[sp == f]) for f in range(5)]
        if extra is not None:
            folds[0] = (np.vstack([folds[0][0], extra[0]]), np.r_[folds[0][1], extra[1]])
        return train_pair_models(folds, self.cols, num_threads=self.threads)

    def label_rows(self, labels: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Directed edges of labelled pairs: features, y, pair index."""
        ids = [p.id for p in self.es.products]
        y = {k: lab.verdict == "match" for k, lab in labels.items() if lab.verdict != "skip"}
        keys = [tuple(sorted((ids[i], ids[j]))) for i, j in zip(self.edges.src, self.edges.dst)]
        rows = [e for e, k in enumerate(keys) if k in y]
        pairs = {k: n for n, k in enumerate(sorted(y))}
        return (
            self.x[rows],
            np.array([y[keys[e]] for e in rows], dtype=np.float64),
            np.array([pairs[keys[e]] for e in rows]),
        )

    def from_labels(self, labels: dict) -> tuple[list, float]:
        """Cold-start models and threshold from labels alone (what ``ColdStart`` fits)."""
        x, y, groups = self.label_rows(labels)
        if not len(y) or y.min() == y.max():
            return [], 1.0
        boosters = fit_label_models(x, y, groups, self.cols)
        return boosters, expected_f1(
            self.edges.src, self.scores(boosters).astype(float), self.es.n
        )[0]


def label(bench: Bench, a: str, b: str) -> Label:
    return Label.now(a, b, bench.verdict(a, b), "bench")


def random_labels(bench: Bench, allowed: np.ndarray, count: int, seed: int) -> list[dict]:
    """Labels of uniformly random candidate pairs among ``allowed`` rows, growing."""
    ids = [p.id for p in bench.es.products]
    e, lo, hi = undirected(ids, bench.edges.src, bench.edges.dst, bench.edges.sims["mean"])
    ok = np.flatnonzero(allowed[lo] & allowed[hi])
    take = np.random.default_rng(seed).permutation(ok)[:count]
    labs = [label(bench, ids[lo[k]], ids[hi[k]]) for k in take]
    return labs


def cold(bench: Bench, marks: list[int], batch: int, seed: int) -> dict:
    es = bench.es
    cands = Candidates(
        [replace(p, group=None) for p in es.products],  # the groups hidden
        Edges(es.edges.src, es.edges.dst, dict(es.edges.sims)),
        bench.x, ENCODERS, dict(es.weights), es.collection, es.k,
    )  # fmt: skip
    cs = ColdStart(cands, None, batch=batch, pool=bench.not_test, seed=seed)
    out: dict = {"queue": {}, "random": {}, "queue_ap": {}, "random_ap": {}}
    out.update(queue_threshold={}, queue_positives={})
    while len(cs.labels) < max(marks):
        for item in cs.next(batch):
            cs.record(label(bench, item.a, item.b))
        if len(cs.labels) in marks:
            n = len(cs.labels)
            out["queue"][n] = round(bench.f1(cs.boosters, cs.threshold), 4)
            out["queue_ap"][n] = round(bench.ap(cs.boosters), 4)
            out["queue_threshold"][n] = cs.threshold
            out["queue_positives"][n] = sum(v.verdict == "match" for v in cs.labels.values())
            log.info("cold seed %d: %d queue labels, test F1 %s", seed, n, out["queue"][n])
    labs = random_labels(bench, bench.not_test, max(marks), seed)
    for n in marks:
        boosters, t = bench.from_labels({lab.pair: lab for lab in labs[:n]})
        out["random"][n] = round(bench.f1(boosters, t), 4)
        out["random_ap"][n] = round(bench.ap(boosters), 4)
    out["random_positives"] = sum(lab.verdict == "match" for lab in labs)
    return out


def quarter_of(bench: Bench) -> np.ndarray:
    """The train split's offers whose group falls in one of four group-hash parts."""
    train = bench.rows["train"]
    return np.array([i for i in train if fold_of(bench.es.products[i].group, "", 4) == 0])


def warm(bench: Bench, base: list, t0: float, count: int, batch: int, seed: int) -> dict:
    quarter = quarter_of(bench)
    p = bench.scores(base)
    ids = [pr.id for pr in bench.es.products]
    e, lo, hi = undirected(ids, bench.edges.src, bench.edges.dst, p)
    allowed = bench.not_test.copy()  # the other three quarters of train, and ungrouped offers
    allowed[quarter] = False
    allowed[bench.rows["valid"]] = False
    ok = allowed[lo] & allowed[hi]
    q = RunQueue([ids[i] for i in lo[ok]], [ids[i] for i in hi[ok]], p[e[ok]].astype(float),
                 p[e[ok]] >= t0, t0)  # fmt: skip
    while len(q.labels) < count:
        for item in q.next(batch):
            q.record(label(bench, item.a, item.b))
    out = {"quarter_queries": len(quarter), "base": round(bench.f1(base, t0), 4)}
    out["base_ap"] = round(bench.ap(base), 4)
    runs = {"queue": list(q.labels.values()), "random": random_labels(bench, allowed, count, seed)}
    for name, labs in runs.items():
        x, y, _ = bench.label_rows({lab.pair: lab for lab in labs})
        model = bench.split_model(quarter, (x, y))
        out[name] = round(bench.f1(model, bench.tuned(model)), 4)
        out[f"{name}_ap"] = round(bench.ap(model), 4)
        out[f"{name}_positives"] = sum(lab.verdict == "match" for lab in labs)
        log.info("warm: %s labels -> test F1 %s", name, out[name])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(".review-bench"))
    ap.add_argument("--wdc", type=Path, default=WDC)
    ap.add_argument("--seeds", type=int, default=3, help="queue / random draws averaged")
    ap.add_argument("--warm-seeds", type=int, default=2, help="warm-start random draws")
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--setting", choices=["split", "catalogue"], default="split",
        help="test offers matched within the test split (search eval's default) or "
        "against the whole catalogue (search match's density)",
    )  # fmt: skip
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, store={"data_dir": args.work / "home"}, stage1={"encoders": ENCODERS})
    start = time.perf_counter()
    es, x, scorer, evaluated = build(cfg, args.wdc, args.work, 20, args.setting)
    bench = Bench(es, x, args.threads)
    res: dict = {"setting": args.setting, "cores": os.cpu_count()}
    res["load_avg_start"] = os.getloadavg()
    if scorer is None:
        full = cached(args.work / "full-train", lambda: bench.split_model(bench.rows["train"]))
        t_full = bench.tuned(full)
        res["full_train"] = {"threshold": t_full, "test_f1": round(bench.f1(full, t_full), 4)}
    else:  # search eval --match-pair's own matcher and figures
        bench.split = scorer
        full = full_boosters(args.work)
        t_full = evaluated["pair_rule"]["threshold"]
        res["full_train"] = {**evaluated, "pair_rule_rescored": round(bench.f1(full, t_full), 4)}
    res["itself_only"] = round(bench.f1([], 1.0), 4)
    res["full_train"]["test_ap"] = round(bench.ap(full), 4)
    marks = [100, 200, 300]
    res["cold"] = [cold(bench, marks, args.batch, s) for s in range(args.seeds)]
    base = cached(args.work / "quarter-train", lambda: bench.split_model(quarter_of(bench)))
    t0 = bench.tuned(base)
    res["warm"] = [warm(bench, base, t0, 200, args.batch, s) for s in range(args.warm_seeds)]
    res["seconds"] = round(time.perf_counter() - start, 1)
    res["load_avg_end"] = os.getloadavg()
    write_json(args.work / f"review_bench-{args.setting}.json", res)
    print(table(res), flush=True)


if __name__ == "__main__":
    main()
