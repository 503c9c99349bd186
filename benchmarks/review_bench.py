"""The review queue, measured on wdc-products with a simulated reviewer (the true groups
answer each pair it is asked about), every F1 the test split's, its grouped offers
matched within the test split as ``search eval`` scores a catalogue (``review_split``).

(a) Cold start. The simulated user's catalogue is the test split's listings, their
groups hidden: ``ColdStart`` (``search review CATALOGUE``) over that catalogue's candidate
pairs (the edges the F1 is read on) asks 300 pairs in batches of 20, refitting its pair
model and threshold from the labels alone after each; then the catalogue is matched with
that matcher (``search match CATALOGUE --matcher``), alone and with the labels kept as
verdicts (``--labels``). Beside it, the same ``ColdStart`` given as many uniformly random
candidate pairs, the full-train matcher (``search eval --match-pair``) and each offer
matched to itself only. (b) Warm start: a pair model trained as ``search eval`` trains
it, on one of its train folds only (the train split cut into group-disjoint folds of
valid's size, each matched within itself: on wdc-products four, so a quarter of the train
groups), its threshold tuned on valid, matches the test split (a run); 200 labels from
that run's ``RunQueue`` versus 200 random candidate pairs of the run, used three ways:
kept as verdicts in the re-match, added to the pair model's training rows (refitted, the
threshold tuned on valid again), and both.

The index (MiniLM + sparse, offline), the full-train figures and the train-fold model
are built once in ``--work`` and reused. Measured, not asserted; run it niced on a shared machine:

    nice -n 5 python benchmarks/review_bench.py --work runs/review-bench --seeds 5
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import shared_data  # noqa: E402
from benchmarks.review_split import SplitScorer, build, cached, full_boosters, table  # noqa: E402
from retrieval.atomic import write_json  # noqa: E402
from search.config import load_config  # noqa: E402
from search.match.artifacts import undirected  # noqa: E402
from search.match.cold_start import ColdStart  # noqa: E402
from search.match.edges import Edges  # noqa: E402
from search.match.edgeset import EdgeSet  # noqa: E402
from search.match.labels import Label  # noqa: E402
from search.match.pair_model import NEIGHBOURS, PAIR, columns, same_group  # noqa: E402
from search.match.review import RunQueue  # noqa: E402
from search.match.review_folder import Candidates  # noqa: E402
from search.match.tuning.folds import fold_of  # noqa: E402
from training.match_pair import train_pair_models  # noqa: E402

WDC = shared_data("wdc-products") / "catalog.jsonl"
ENCODERS = ["text", "sparse"]
PARTS = 5  # group-disjoint parts of the train fold's edges; the last stops the boosting
log = logging.getLogger("review_bench")
Labels = Mapping[tuple[str, str], Label]


class Bench:
    """The test split matched within itself (``scorer``), the oracle, and the warm
    start's train fold: one (``fold``) of the group-disjoint folds of valid's size
    ``search eval`` cuts the train split into (on wdc-products 4: a quarter of its groups)."""

    def __init__(self, scorer: SplitScorer, threads: int, fold: int = 0) -> None:
        self.scorer, self.threads = scorer, threads
        self.test: EdgeSet = scorer.sets["test"]
        self.group = {p.id: p.group for p in self.test.products}
        self.fold: EdgeSet = scorer.train_folds[fold % len(scorer.train_folds)]
        self.cols = columns(list(self.test.weights))
        self._fold_rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def verdict(self, a: str, b: str) -> str:
        ga, gb = self.group[a], self.group[b]
        return "match" if ga is not None and ga == gb else "no_match"

    def label(self, a: str, b: str) -> Label:
        return Label.now(a, b, self.verdict(a, b), "bench")

    def candidates(self) -> Candidates:
        """The test split's candidate pairs as ``search review`` holds a catalogue's: its
        listings with their groups hidden, the edges and features the F1 is read on."""
        ts = self.test
        assert ts.edges is not None
        return Candidates(
            [replace(p, group=None) for p in ts.products],
            Edges(ts.edges.src, ts.edges.dst, dict(ts.edges.sims)),
            self.scorer.x["test"], ENCODERS, dict(ts.weights), ts.collection, ts.k,
        )  # fmt: skip

    def fold_model(self, extra: tuple[np.ndarray, np.ndarray] | None = None) -> list:
        """The pair model (``training.match_pair``, its seeds) on the train fold's edges,
        features within the fold, cut into group-disjoint parts (the last stopping the
        boosting); ``extra`` (x, y) rows in the first part."""
        if self._fold_rows is None:
            fold = self.fold
            assert fold.edges is not None
            part = np.array([fold_of(p.group, p.id, PARTS) for p in fold.products])
            self._fold_rows = (fold.features(NEIGHBOURS), same_group(fold.edges, fold.products),
                               part[fold.edges.src])  # fmt: skip
        x, y, part = self._fold_rows
        parts = [(x[part == f], y[part == f]) for f in range(PARTS)]
        if extra is not None:
            parts[0] = (np.vstack([parts[0][0], extra[0]]), np.r_[parts[0][1], extra[1]])
        return train_pair_models(parts, self.cols, num_threads=self.threads)

    def label_rows(self, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
        """The test split's directed candidate edges of labelled pairs: features, verdicts."""
        ts = self.test
        assert ts.edges is not None
        ids = [p.id for p in ts.products]
        y = {k: lab.verdict == "match" for k, lab in labels.items() if lab.verdict != "skip"}
        keys = [tuple(sorted((ids[i], ids[j]))) for i, j in zip(ts.edges.src, ts.edges.dst)]
        rows = [e for e, k in enumerate(keys) if k in y]
        return self.scorer.x["test"][rows], np.array([y[keys[e]] for e in rows], np.float64)


def matches(labels: Labels) -> int:
    return sum(lab.verdict == "match" for lab in labels.values())


def cold_figures(bench: Bench, cs: ColdStart) -> dict:
    """The catalogue matched with the cold start's matcher, alone and with its labels."""
    s = bench.scorer
    return {
        "f1": round(s.f1(cs.boosters, cs.threshold), 4),
        "verdicts": round(s.f1(cs.boosters, cs.threshold, labels=cs.labels), 4),
        "ap": round(s.ap(cs.boosters), 4),
        "threshold": cs.threshold,
        "expected_f1": None if cs.f1 is None else round(cs.f1, 4),
        "matches": matches(cs.labels),
    }


def cold(bench: Bench, marks: list[int], batch: int, seed: int) -> dict:
    """One draw: ``ColdStart`` labelling its own queue, and one given random candidate
    pairs (the same refits, every ``batch`` labels), read at each mark."""
    out: dict = {"queue": {}, "random": {}}
    queue = ColdStart(bench.candidates(), None, batch=batch, seed=seed)
    while len(queue.labels) < max(marks):
        before = len(queue.labels)
        for item in queue.next(min(batch, max(marks) - before)):
            queue.record(bench.label(item.a, item.b))
        if len(queue.labels) == before:
            break  # every candidate pair labelled
        if any(before < m <= len(queue.labels) for m in marks):
            out["queue"][len(queue.labels)] = cold_figures(bench, queue)
    rand = ColdStart(bench.candidates(), None, batch=batch, seed=seed)
    order = np.random.default_rng(seed).permutation(len(rand.a))
    for k in order[: max(marks)].tolist():
        rand.record(bench.label(rand.a[k], rand.b[k]))
        if len(rand.labels) in marks:
            out["random"][len(rand.labels)] = cold_figures(bench, rand)
    log.info("cold draw %d: queue %s, random %s", seed,
             {n: f["f1"] for n, f in out["queue"].items()},
             {n: f["f1"] for n, f in out["random"].items()})  # fmt: skip
    return out


def warm_figures(bench: Bench, base: list, t0: float, labels: Labels) -> dict:
    """Labels used three ways: verdicts in the re-match, rows of the refitted pair model
    (threshold tuned on valid again), both."""
    s = bench.scorer
    model = bench.fold_model(bench.label_rows(labels))
    t = s.tuned(model)
    return {
        "verdicts": round(s.f1(base, t0, labels=labels), 4),
        "rows": round(s.f1(model, t), 4),
        "rows_verdicts": round(s.f1(model, t, labels=labels), 4),
        "rows_threshold": t,
        "matches": matches(labels),
    }


def warm(bench: Bench, base: list, t0: float, count: int, batch: int, draws: int) -> dict:
    """The train-fold matcher's run over the test split; its ``RunQueue``'s first
    ``count`` labels (one order) against ``draws`` samples of random candidate pairs."""
    ts = bench.test
    assert ts.edges is not None
    ids = [p.id for p in ts.products]
    p = bench.scorer.pair_edges(base, "test").sims[PAIR]
    e, lo, hi = undirected(ids, ts.edges.src, ts.edges.dst, p)
    a, b = [ids[i] for i in lo], [ids[i] for i in hi]
    q = RunQueue(a, b, p[e].astype(float), p[e] >= t0, t0)
    while len(q.labels) < count:
        for item in q.next(min(batch, count - len(q.labels))):
            q.record(bench.label(item.a, item.b))
    out = {"base": round(bench.scorer.f1(base, t0), 4), "threshold": t0}
    out["base_ap"] = round(bench.scorer.ap(base), 4)
    out["queue"] = warm_figures(bench, base, t0, q.labels)
    log.info("warm: queue %s", out["queue"])
    out["random"] = []
    for seed in range(draws):
        take = np.random.default_rng(seed).permutation(len(a))[:count]
        labels = {lab.pair: lab for lab in (bench.label(a[k], b[k]) for k in take.tolist())}
        out["random"].append(warm_figures(bench, base, t0, labels))
        log.info("warm: random draw %d %s", seed, out["random"][-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("runs/review-bench"))
    ap.add_argument("--wdc", type=Path, default=WDC)
    ap.add_argument("--seeds", type=int, default=5, help="cold-start queue / random draws")
    ap.add_argument("--warm-seeds", type=int, default=3, help="warm-start random draws")
    ap.add_argument("--warm-fold", type=int, default=0, help="the warm start's train fold")
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, store={"data_dir": args.work / "home"}, stage1={"encoders": ENCODERS})
    start = time.perf_counter()
    scorer, evaluated = build(cfg, args.wdc, args.work, 20)
    bench = Bench(scorer, args.threads, args.warm_fold)
    res: dict = {"cores": os.cpu_count(), "load_avg_start": os.getloadavg()}
    full = full_boosters(args.work)  # search eval --match-pair's own matcher and figures
    t_full = evaluated["pair_rule"]["threshold"]
    res["full_train"] = {**evaluated, "pair_rule_rescored": round(scorer.f1(full, t_full), 4)}
    res["full_train"]["test_ap"] = round(scorer.ap(full), 4)
    res["itself_only"] = round(scorer.f1([], 1.0), 4)
    marks = [100, 200, 300]
    res["cold"] = [cold(bench, marks, args.batch, s) for s in range(args.seeds)]
    fold = args.warm_fold % len(scorer.train_folds)
    base = cached(args.work / f"train-fold{fold or ''}", bench.fold_model)
    res["warm_fold"] = {"fold": fold, "listings": bench.fold.n, "folds": len(scorer.train_folds)}
    res["warm"] = warm(bench, base, scorer.tuned(base), 200, args.batch, args.warm_seeds)
    res["seconds"] = round(time.perf_counter() - start, 1)
    res["load_avg_end"] = os.getloadavg()
    write_json(args.work / f"review_bench{f'-fold{fold}' if fold else ''}.json", res)
    print(table(res), flush=True)


if __name__ == "__main__":
    main()
