"""pair-gbdt on Abt-Buy: stage 1 (MiniLM + char n-gram sparse, hybrid RRF) against
stage 2 (LightGBM on pair features), end to end.

Indexes the gallery with the ``text`` (packaged all-MiniLM-L6-v2) and ``sparse``
encoders into a fresh embedded collection, trains ``pair-gbdt`` on the train split's
top-K candidates with early stopping on the valid split, reloads the saved model and
scores the test split: recall@1, recall@10 and MRR@10 of both stages on the same
candidates. Nothing is tuned on test. Measured, not asserted.

    python benchmarks/pair_gbdt_abt_buy.py                  # 3 runs, 1-2 minutes each on 2 cores
    python benchmarks/pair_gbdt_abt_buy.py --objective binary --k 100 --repeat 1

Stage 1 moves a little between runs (a fresh index gives slightly different sparse
scores, and Qdrant orders RRF ties arbitrarily), so the script repeats the whole run
and reports the mean and the range.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import load_average, machine_info, shared_data  # noqa: E402
from rerank.pair_gbdt import PairGbdtModel, PairGbdtReranker  # noqa: E402
from retrieval.data import open_dataset  # noqa: E402
from retrieval.retriever import Retriever  # noqa: E402
from search.config import Stage1Config, load_config  # noqa: E402
from search.indexing import connect  # noqa: E402
from search.pipeline import Pipeline  # noqa: E402
from search.train.candidates import compare_stages, stage1_candidates  # noqa: E402
from search.train.pair_gbdt import PairGbdtOptions, train_pair_gbdt  # noqa: E402
from search.train.registry import TrainJob  # noqa: E402
from training.pair_gbdt import DEFAULT_OBJECTIVE, OBJECTIVES  # noqa: E402

ROOT = Path(__file__).resolve().parent
DATA = shared_data("abt-buy")
METRICS = ("recall@1", "recall@10", "mrr@10")


def cell(values: list[float]) -> str:
    """Mean, and the range when there are several runs."""
    mean = sum(values) / len(values)
    return (
        f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"
    )


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table, one row per split and stage (mean over runs)."""
    p, runs = report["params"], report["runs"]
    trees = ", ".join(str(r["train"]["best_iteration"]) for r in runs)
    lines = [
        f"pair-gbdt on Abt-Buy: stage 1 = `text` (all-MiniLM-L6-v2) + `sparse` (char 2-4-grams), "
        f"hybrid RRF, K={p['k']}; stage 2 = LightGBM `{p['objective']}` trained on "
        f"{runs[0]['train']['queries']} train queries, early-stopped on "
        f"{runs[0]['valid']['queries']} valid queries ({trees} trees). "
        f"{len(runs)} run(s), each on a fresh index: mean (min-max).",
        "",
        "| split | stage | R@1 | R@10 | MRR@10 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for split in ("valid", "test"):
        for stage, label in (
            ("stage1", "stage 1 (MiniLM hybrid)"),
            ("stage2", "stage 2 (pair-gbdt)"),
        ):
            cells = " | ".join(
                cell([r[split]["metrics"][f"{stage}/{name}"] for r in runs]) for name in METRICS
            )
            lines.append(f"| {split} ({runs[0][split]['queries']} q) | {label} | {cells} |")
    return "\n".join(lines)


def run_once(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """Index, train on train (early stopping on valid), reload, score test."""
    cfg = load_config(
        None,
        store={"data_dir": home},
        stage1={"encoders": ["text", "sparse"], "vector": "hybrid"},
    )
    start = time.perf_counter()
    trained = train_pair_gbdt(
        cfg,
        TrainJob(str(args.data), home / "pair-gbdt.txt"),
        PairGbdtOptions(k=args.k, objective=args.objective),
    )
    train_s = time.perf_counter() - start
    model = PairGbdtModel.load(trained.out)  # what a user's `--reranker pair-gbdt:` loads
    index = connect(cfg)
    try:
        retriever = Retriever.for_collection(index, trained.collection)
        pipe = Pipeline(retriever, None, Stage1Config(k=args.k, vector="hybrid"))
        queries, rows = stage1_candidates(pipe, open_dataset(str(args.data)), "test")
    finally:
        index.close()
    gains = model.booster.feature_importance("gain")
    return {
        "train": {
            "queries": trained.train_size,
            "best_iteration": trained.info.get("best_iteration"),
            "pairs": trained.info.get("train_pairs"),
            "seconds_incl_indexing": round(train_s, 1),
            "valid_scores": trained.info.get("valid_scores"),
        },
        "valid": {"queries": trained.valid_size, "metrics": trained.metrics},
        "test": {
            "queries": len(queries),
            "metrics": compare_stages(PairGbdtReranker(model), queries, rows),
        },
        "importance_gain": {f: round(float(g), 1) for f, g in zip(model.features, gains)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--k", type=int, default=50, help="stage-1 candidates per query")
    parser.add_argument("--objective", default=DEFAULT_OBJECTIVE, choices=OBJECTIVES)
    parser.add_argument("--repeat", type=int, default=3, help="runs, each on a fresh index")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "pair_gbdt_abt_buy")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.data.exists():
        sys.exit(f"no Abt-Buy set at {args.data}")
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(run_once(args, Path(tmp)))
    report = {
        "params": {"k": args.k, "objective": args.objective, "data": str(args.data)},
        "machine": {**machine_info(), "loadavg_end": load_average()},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    args.out.with_suffix(".md").write_text("# pair-gbdt on Abt-Buy\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
