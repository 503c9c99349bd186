"""The review queue, measured on wdc-products with a simulated reviewer (the true groups
answer each pair it is asked about).

(a) Cold start, the groups hidden: ``ColdStart`` (``search review``) asks 300 pairs in
batches of 20, refitting its pair model and threshold from the labels alone after each;
test match F1 after 100, 200 and 300 labels, beside the same models fitted on as many
uniformly random candidate pairs, and beside the matcher tuned on the whole train split
(``search eval --match-against catalogue --match-pair``: pair model on train's queries,
the ``pair`` threshold tuned on valid). (b) Warm start: a matcher trained on a quarter of
the train split's groups (threshold on valid), then 200 labels from ``RunQueue`` over its
run versus 200 random candidate pairs, each added to its training rows, the model
refitted and the threshold tuned again on valid.

Every F1 is the Shopee F1 of the test split's grouped offers matched against the whole
catalogue (10,000 offers), as ``search match`` matches them. The queues never ask about a
test offer. The index (MiniLM + sparse, offline) and the pair features are built once in
``--work`` and reused. Measured, not asserted; run it niced on a shared machine:

    nice -n 5 python benchmarks/review_bench.py --work /tmp/review-bench
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from retrieval.atomic import write_json
from retrieval.data import open_dataset
from search.config import load_config
from search.indexing import connect, index_dataset
from search.match.artifacts import undirected
from search.match.cold_start import ColdStart, expected_f1
from search.match.edges import Edges
from search.match.edgeset import EdgeSet, self_edgeset, weights_for
from search.match.labels import Label
from search.match.matcher import Matcher
from search.match.pair_model import (
    NEIGHBOURS,
    PAIR,
    columns,
    pair_scores,
    same_group,
    save_models,
)
from search.match.review import RunQueue
from search.match.review_folder import Candidates
from search.match.rules import Rule
from search.match.tuning.folds import fold_of
from search.match.tuning.thresholds import score_rule, tune_rule
from training.match_pair import train_pair_models
from training.match_review import fit_label_models

WDC = Path("../shared/data/wdc-products/catalog.jsonl")  # relative to the repository root
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

    def verdict(self, a: str, b: str) -> str:
        ga, gb = self.group[a], self.group[b]
        return "match" if ga is not None and ga == gb else "no_match"

    def scores(self, boosters: list) -> np.ndarray:
        return pair_scores(boosters, self.x, self.edges, self.es.n)

    def f1(self, boosters: list, threshold: float, split: str = "test") -> float:
        """Shopee F1 of the split's grouped offers; no model: each offer matches itself only."""
        p = self.scores(boosters) if boosters else np.zeros(len(self.edges))
        edges = Edges(self.edges.src, self.edges.dst, {PAIR: p})
        threshold = threshold if boosters else 1.0
        rule = Rule(PAIR, {PAIR: threshold}, PAIR)
        return score_rule(edges, rule, self.es.n, self.targets[split]).f1

    def ap(self, boosters: list) -> float:
        """Average precision of the pair score over the test offers' candidate edges
        (same group = relevant): the model's ranking, whatever the threshold."""
        from sklearn.metrics import average_precision_score

        if not boosters:
            return float("nan")
        test = np.zeros(self.es.n, dtype=bool)
        test[self.rows["test"]] = True
        mask = test[self.edges.src]
        y = same_group(self.edges, self.es.products)[mask]
        return float(average_precision_score(y, self.scores(boosters)[mask]))

    def tuned(self, boosters: list) -> float:
        """The ``pair`` threshold tuned on valid, as ``search eval`` tunes it."""
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


def build(cfg, path: Path, work: Path, k: int) -> tuple[EdgeSet, np.ndarray]:
    dataset = open_dataset(str(path))
    index = connect(cfg)
    if index.info("wdc") is None:
        index.close()
        index_dataset(cfg, str(path), collection="wdc")
        index = connect(cfg)
    try:
        products = list(dataset.products())
        names = [v.name for v in index.info("wdc").vectors]
        template = Matcher(ENCODERS, names, weights_for(names), [], "", k)
        es = self_edgeset(index, "wdc", dataset.name, products, template)
        es.search()
    finally:
        index.close()
    cache = work / f"features-k{k}.npy"
    if cache.is_file():
        x = np.load(cache, allow_pickle=False)
    else:
        x = es.features(NEIGHBOURS)
        np.save(cache, x, allow_pickle=False)
    assert len(x) == len(es.edges), "stale feature cache: delete it"
    return es, x


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(".review-bench"))
    ap.add_argument("--wdc", type=Path, default=WDC)
    ap.add_argument("--seeds", type=int, default=3, help="queue / random draws averaged")
    ap.add_argument("--warm-seeds", type=int, default=2, help="warm-start random draws")
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, store={"data_dir": args.work / "home"}, stage1={"encoders": ENCODERS})
    start = time.perf_counter()
    es, x = build(cfg, args.wdc, args.work, 20)
    bench = Bench(es, x, args.threads)
    full = cached(args.work / "full-train", lambda: bench.split_model(bench.rows["train"]))
    t_full = bench.tuned(full)
    res: dict = {"cores": os.cpu_count(), "load_avg_start": os.getloadavg()}
    res["itself_only"] = round(bench.f1([], 1.0), 4)
    res["full_train"] = {"threshold": t_full, "test_f1": round(bench.f1(full, t_full), 4)}
    res["full_train"]["test_ap"] = round(bench.ap(full), 4)
    marks = [100, 200, 300]
    res["cold"] = [cold(bench, marks, args.batch, s) for s in range(args.seeds)]
    base = cached(args.work / "quarter-train", lambda: bench.split_model(quarter_of(bench)))
    t0 = bench.tuned(base)
    res["warm"] = [warm(bench, base, t0, 200, args.batch, s) for s in range(args.warm_seeds)]
    res["seconds"] = round(time.perf_counter() - start, 1)
    res["load_avg_end"] = os.getloadavg()
    write_json(args.work / "review_bench.json", res)
    print(table(res), flush=True)


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
        f"\nfull-train matcher: test F1 {full['test_f1']:.4f}, AP {full['test_ap']:.4f}; "
        f"each offer itself only: F1 {base:.4f}"
    )
    b, q, r = (mean([s[k] for s in w]) for k in ("base", "queue", "random"))
    ba, qa, ra = (mean([s[k] for s in w]) for k in ("base_ap", "queue_ap", "random_ap"))
    lines.append(
        f"warm start: quarter-train matcher F1 {b:.4f} (AP {ba:.4f}); +200 queue labels "
        f"{q:.4f} (AP {qa:.4f}); +200 random {r:.4f} (AP {ra:.4f})"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
