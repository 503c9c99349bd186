"""Labels end to end on a labelled catalogue, measured: a simulated reviewer (the true
groups answer) labels the review queue of a match run, then ``search match --labels``
keeps the verdicts and ``search eval --match-pair --labels`` learns from them.

Given a match run folder (``search match ... --out RUN`` with a pair-model matcher) and
the collection it ran on:

1. the first ``--n`` pairs of the run's queue (``search.match.review.RunQueue``) get the
   true groups' verdict, appended to ``OUT/labels.jsonl`` (``search.match.labels``);
2. ``search match --labels`` on the whole catalogue: the verdicts it changed and the
   Shopee F1 over every labelled listing, beside the run without labels;
3. ``search eval --match-pair --labels`` (against the catalogue) beside the same eval
   without labels: test F1 of the chosen stage-2 rule and the ``labels/*`` figures
   (labels touching test listings are held out of fitting and tuning, and scored).

    python benchmarks/labels_bench.py --home runs/wdc-home --collection wdc \\
        --run runs/wdc-match --matcher runs/wdc-eval/matcher.json --n 200 --out runs/labels-bench

The catalogue defaults to ``../shared/data/wdc-products/catalog.jsonl`` (or
``$SEARCH_SHARED_DATA``); the figures go to ``OUT/labels_bench.json`` with the machine
and its load average.

Measured, not asserted; the machine may be shared: say so with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import load_average, machine_info, shared_data  # noqa: E402
from retrieval.atomic import write_json  # noqa: E402
from search.config import load_config  # noqa: E402
from search.evaluation.evaluate import evaluate_dataset  # noqa: E402
from search.match.artifacts import LISTINGS, read_jsonl  # noqa: E402
from search.match.job import match_dataset  # noqa: E402
from search.match.labels import Label, append_label  # noqa: E402
from search.match.review import RunQueue  # noqa: E402


def simulate(run: Path, n: int, path: Path) -> dict[str, int]:
    """The true groups' verdict on the first ``n`` pairs of the run's queue."""
    group = {row["id"]: row.get("group") for row in read_jsonl(run / LISTINGS)}
    path.unlink(missing_ok=True)
    counts = {"match": 0, "no_match": 0}
    for item in RunQueue.open(run).next(n):
        ga, gb = group.get(item.a), group.get(item.b)
        verdict = "match" if ga is not None and ga == gb else "no_match"
        append_label(path, Label.now(item.a, item.b, verdict, "bench"))
        counts[verdict] += 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="data dir holding the collection")
    ap.add_argument("--collection", required=True)
    ap.add_argument("--catalogue", type=Path, default=shared_data("wdc-products/catalog.jsonl"))
    ap.add_argument("--run", type=Path, required=True, help="a match run folder (pair rule)")
    ap.add_argument("--matcher", type=Path, required=True, help="the run's matcher.json")
    ap.add_argument("--n", type=int, default=200, help="queue pairs labelled")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    cfg = load_config(None, store={"data_dir": args.home})
    args.out.mkdir(parents=True, exist_ok=True)
    labels = args.out / "labels.jsonl"
    report: dict = {"machine": machine_info(), "load_before": load_average(), "n": args.n}
    report["verdicts"] = simulate(args.run, args.n, labels)
    common = dict(matcher_path=args.matcher, collection=args.collection)
    for name, extra in (("match", {}), ("match_labels", {"labels": labels})):
        start = time.perf_counter()
        res = match_dataset(cfg, str(args.catalogue), out=args.out / name, **common, **extra)
        report[name] = {
            "f1": round(res.scores.f1, 4) if res.scores else None,
            "notes": [n for n in res.notes if n.startswith("labels:")],
            "seconds": round(time.perf_counter() - start, 1),
        }
    ev = {"match_pair": True, "match_against": "catalogue"}
    for name, extra in (("eval", {}), ("eval_labels", {"labels": labels})):
        cfg_ev = load_config(None, store={"data_dir": args.home}, eval={**ev, **extra})
        start = time.perf_counter()
        res = evaluate_dataset(
            cfg_ev, str(args.catalogue), collection=args.collection, out=args.out / name
        )
        m = res.metrics
        report[name] = {
            "stage2_test_f1": m.get("stage2/f1"),
            "stage2_valid_f1": m.get("stage2/tune_f1"),
            "labels": {k: v for k, v in m.items() if k.startswith("labels/")},
            "seconds": round(time.perf_counter() - start, 1),
        }
    report["load_after"] = load_average()
    write_json(args.out / "labels_bench.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
