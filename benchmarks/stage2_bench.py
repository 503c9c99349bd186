"""Stage 2 with CLI defaults only: stage 1 vs a trained cross-encoder vs pair-gbdt vs the stack.

Indexes a dataset with the default encoders (``text`` = packaged all-MiniLM-L6-v2, and
``sparse``) into a fresh embedded collection, then trains through the trainer registry
exactly as ``search train reranker`` does with no flag but the ones named here:

* ``--kind cross-encoder --model all-MiniLM-L6-v2`` (negatives mined by the trainer with
  the defaults of ``search mine``; the epoch chosen on valid);
* ``--kind pair-gbdt``;
* ``--kind pair-gbdt --with cross-encoder:CE`` (the stack: the cross-encoder's scores of
  the train and valid candidates become a feature);

and scores the test split's stage-1 top K (``search eval``'s default K) with each, loaded
by spec as ``search eval --reranker`` loads them: recall@1 and MRR@10, and the training
time. ``--ce-model`` / ``--gbdt-model`` reuse models trained the same way (skip their
training); ``--ce-max-steps`` caps the cross-encoder's training (a cap, not a default).
Measured, not asserted; nothing is tuned on test.

    python benchmarks/stage2_bench.py --data ../shared/data/abt-buy --vector text
    python benchmarks/stage2_bench.py --data ../shared/data/wdc-products/catalog.jsonl
"""

from __future__ import annotations

import argparse
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
from rerank.base import (  # noqa: E402
    build_reranker,
    rerank_batch,
    trained_reading,
)
from retrieval.atomic import write_json, write_text  # noqa: E402
from retrieval.encoders.text import packaged_minilm  # noqa: E402
from retrieval.types import queries_to_qrels  # noqa: E402
from search.config import load_config  # noqa: E402
from search.train.candidates import (  # noqa: E402
    open_for_training,
    ranking_metrics,
    score_run,
    stage1_splits,
)
from search.train.registry import TrainJob, train  # noqa: E402

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("stage2_bench")


def timed_train(cfg: Any, kind: str, data: str, out: Path, flags: dict[str, Any]) -> tuple:
    """One `search train reranker --kind KIND` run through the registry; (report, minutes)."""
    start = time.perf_counter()
    report = train(cfg, kind, "reranker", TrainJob(data, out), flags)
    minutes = (time.perf_counter() - start) / 60
    log.warning("%s trained in %.1f min: %s", kind, minutes, report.summary)
    return report, minutes


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """Index, train the three rerankers with defaults, score test with each."""
    cfg = load_config(None, store={"data_dir": home}, stage1={"vector": args.vector})
    dataset, name = open_for_training(cfg, args.data, None, None)
    results: dict[str, Any] = {"minutes": {}, "info": {}}
    ce = args.ce_model
    if ce is None and not args.no_ce:
        ce = home / "cross-encoder"
        flags = {"model": packaged_minilm() or "all-MiniLM-L6-v2"}
        if args.ce_max_steps:
            flags["max_steps"] = args.ce_max_steps  # a cap, reported as such
        if args.ce_fields:
            flags["fields"] = args.ce_fields  # not a default: reported in the params
        if args.ce_seed:
            flags["seed"] = args.ce_seed  # another draw of the same defaults
        report, minutes = timed_train(cfg, "cross-encoder", args.data, ce, flags)
        results["minutes"]["cross-encoder"] = round(minutes, 1)
        results["info"]["cross-encoder"] = report.info
    gbdt, stack = args.gbdt_model or home / "pair-gbdt.txt", home / "stack.txt"
    if args.gbdt_model is None:
        report, minutes = timed_train(cfg, "pair-gbdt", args.data, gbdt, {})
        results["minutes"]["pair-gbdt"] = round(minutes, 1)
    specs = {"pair-gbdt": f"pair-gbdt:{gbdt}"}
    if ce is not None:
        with_ce = f"cross-encoder:{ce}"
        report, minutes = timed_train(cfg, "pair-gbdt", args.data, stack, {"stack": with_ce})
        results["minutes"]["stack"] = round(minutes, 1)
        specs.update({"cross-encoder": with_ce, "stack": f"pair-gbdt:{stack},with={with_ce}"})
        if trained_reading(ce).stage1_weight:  # what the model alone ranks, for the record
            specs["cross-encoder alone"] = f"{with_ce},stage1_weight=0"
    _, ((queries, rows),) = stage1_splits(cfg, dataset, name, args.k, ["test"])
    qrels = queries_to_qrels(queries)
    test = {"stage 1": ranking_metrics(score_run(queries, rows, 1), qrels, "stage1")}
    top1: dict[str, set[str]] = {}
    for label, spec in specs.items():
        reranked = rerank_batch(
            build_reranker(spec), [(q.product, r) for q, r in zip(queries, rows)]
        )
        test[label] = ranking_metrics(score_run(queries, reranked, 2), qrels, "stage2")
        top1[label] = {q.id for q, r in zip(queries, reranked) if r and r[0].id in q.matches}
        log.warning("%s: %s", label, test[label])
    results.update(test=test, test_queries=len(queries))
    if "cross-encoder" in top1:  # what any per-query choice of the two could reach
        gbdt_only = len(top1["pair-gbdt"] - top1["cross-encoder"])
        ce_only = len(top1["cross-encoder"] - top1["pair-gbdt"])
        results["top1_only"] = {"pair-gbdt": gbdt_only, "cross-encoder": ce_only}
    return results


def markdown(report: dict[str, Any]) -> str:
    """The test figures as a Markdown table."""
    p, r = report["params"], report["results"]
    lines = [
        f"{Path(p['data']).name}: stage 1 `{p['vector']}` (default encoders text+sparse), "
        f"K={p['k']}, {r['test_queries']} test queries; rerankers trained with CLI defaults.",
        "",
        "| stage 2 | R@1 | hit@1 | MRR@10 | training (min) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, metrics in r["test"].items():
        stage = "stage1" if label == "stage 1" else "stage2"
        minutes = r["minutes"].get(label, "")
        lines.append(
            f"| {label} | {metrics[f'{stage}/recall@1']:.3f} | {metrics[f'{stage}/hit@1']:.3f} "
            f"| {metrics[f'{stage}/mrr@10']:.3f} "
            f"| {minutes} |"
        )
    if "top1_only" in r:
        only = r["top1_only"]
        lines.append(
            f"\nRight at rank 1 by one model only: pair-gbdt {only['pair-gbdt']}, "
            f"cross-encoder {only['cross-encoder']} of {r['test_queries']} queries."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(shared_data("abt-buy")))
    parser.add_argument("--vector", default=None, help="stage-1 vector (default: hybrid)")
    parser.add_argument("--k", type=int, default=100, help="test candidates (search eval's K)")
    parser.add_argument("--ce-model", type=Path, default=None, help="reuse this cross-encoder")
    parser.add_argument("--no-ce", action="store_true", help="pair-gbdt only (no CE, no stack)")
    parser.add_argument("--ce-max-steps", type=int, default=0, help="cap CE training (0: none)")
    parser.add_argument("--ce-fields", default="", help="CE reads these fields (--fields)")
    parser.add_argument("--ce-seed", type=int, default=0, help="CE training seed (0: default)")
    parser.add_argument("--gbdt-model", type=Path, default=None, help="reuse this pair-gbdt")
    parser.add_argument("--home", type=Path, default=None, help="keep the index and models here")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, args.home or Path(tmp))
    params = {k: str(v) for k, v in vars(args).items()}
    params["vector"] = args.vector or "hybrid"
    report = {
        "params": params,
        "machine": {**machine_info(), "loadavg_end": load_average()},
        "results": results,
    }
    stem = Path(args.data).parent.name if args.data.endswith(".jsonl") else Path(args.data).name
    out = args.out or ROOT / "results" / f"stage2_{stem}"
    write_json(out.with_suffix(".json"), report)
    table = markdown(report)
    write_text(out.with_suffix(".md"), f"# stage 2 on {stem}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
