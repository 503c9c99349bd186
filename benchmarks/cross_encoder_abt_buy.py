"""A cross-encoder trained on Abt-Buy with CLI defaults only, against MiniLM stage 1.

Indexes the gallery with the ``text`` encoder (packaged all-MiniLM-L6-v2) into a fresh
embedded collection and runs what ``search train reranker --kind cross-encoder --model
all-MiniLM-L6-v2`` runs with no other flag: negatives mined from the train split's
stage-1 candidates with ``search mine``'s defaults, the fresh-head recipe, the epoch
chosen on valid. Reloads it as ``cross-encoder:OUT`` and reranks the test split's
stage-1 top K for a few K: R@1, R@10 and MRR@10 of both stages on the same candidates.
Nothing is tuned on test. Measured, not asserted.

    OMP_NUM_THREADS=1 python benchmarks/cross_encoder_abt_buy.py   # CPU: tens of minutes
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
from rerank.base import rerank_batch  # noqa: E402
from rerank.cross_encoder import CrossEncoderReranker  # noqa: E402
from retrieval.data import open_dataset  # noqa: E402
from retrieval.encoders.text import packaged_minilm  # noqa: E402
from retrieval.retriever import Retriever  # noqa: E402
from retrieval.types import queries_to_qrels  # noqa: E402
from search.config import Stage1Config, load_config  # noqa: E402
from search.indexing import connect  # noqa: E402
from search.pipeline import Pipeline  # noqa: E402
from search.train.candidates import ranking_metrics, score_run, stage1_candidates  # noqa: E402
from search.train.cross_encoder import (  # noqa: E402
    CrossEncoderOptions,
    train_cross_encoder_reranker,
)
from search.train.registry import TrainJob  # noqa: E402

ROOT = Path(__file__).resolve().parent
DATA = shared_data("abt-buy")
METRICS = ("recall@1", "recall@10", "mrr@10")


def markdown(report: dict[str, Any]) -> str:
    """The test results as a Markdown table: stage 1 and stage 2 per K."""
    t = report["train"]
    best, c = t["best"], t["config"]
    lines = [
        f"cross-encoder on Abt-Buy: stage 1 = `text` (all-MiniLM-L6-v2, vector `text`); "
        f"stage 2 = a cross-encoder trained with CLI defaults from all-MiniLM-L6-v2 "
        f"({t['recipe']} recipe: {c['epochs']:g} epochs, lr {c['lr']:g}, head lr "
        f"{c['head_lr']:g}, groups of {c['group_size']}) on {t['rows']} train queries; "
        f"epoch {best.get('epoch')} kept on valid hit@1 {best.get('hit@1', 0):.3f}. "
        f"Training {t['seconds'] / 60:.1f} min on {report['machine']['usable_cores']} "
        "CPU cores (shared).",
        "",
        "| test (206 q) | stage | R@1 | R@10 | MRR@10 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for k, metrics in report["test"].items():
        for stage, label in (("stage1", "stage 1 (MiniLM)"), ("stage2", "stage 2 (cross-encoder)")):
            cells = " | ".join(f"{metrics[f'{stage}/{m}']:.3f}" for m in METRICS)
            lines.append(f"| K={k} | {label} | {cells} |")
    return "\n".join(lines)


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """Mine, train (model choice on valid), reload, score test for each K."""
    cfg = load_config(
        None, store={"data_dir": home}, stage1={"encoders": ["text"], "vector": "text"}
    )
    start = time.perf_counter()
    out = home / "cross-encoder"
    model = packaged_minilm() or "all-MiniLM-L6-v2"
    trained = train_cross_encoder_reranker(
        cfg, TrainJob(str(args.data), out), CrossEncoderOptions(model=model)
    )
    train_s = time.perf_counter() - start
    reranker = CrossEncoderReranker(str(out), device="cpu")
    dataset = open_dataset(str(args.data))
    index = connect(cfg)
    try:
        retriever = Retriever.for_collection(index, trained.collection)
        pipe = Pipeline(retriever, None, Stage1Config(k=max(args.k), vector="text"))
        queries, rows = stage1_candidates(pipe, dataset, "test")
    finally:
        index.close()
    # one reranking of the top max(K); each smaller K is the stage-1 prefix of it
    reranked = rerank_batch(reranker, [(q.product, row) for q, row in zip(queries, rows)])
    scores = {(q.id, c.id): c.score for q, row in zip(queries, reranked) for c in row}
    qrels = queries_to_qrels(queries)
    test: dict[str, dict[str, float]] = {}
    for k in sorted(args.k):
        top = [row[:k] for row in rows]
        stage2 = {
            q.id: {c.id: float(scores[q.id, c.id]) for c in row} for q, row in zip(queries, top)
        }
        test[str(k)] = {
            **ranking_metrics(score_run(queries, top, 1), qrels, "stage1"),
            **ranking_metrics(stage2, qrels, "stage2"),
        }
        logging.warning("K=%d: %s", k, test[str(k)])
    return {
        "train": {"rows": trained.train_size, "seconds": train_s, **trained.info},
        "valid": trained.metrics,
        "test": test,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--k", type=int, nargs="+", default=[20, 50], help="test stage-1 K")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "cross_encoder_abt_buy")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.data.exists():
        sys.exit(f"no Abt-Buy set at {args.data}")
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    params = {k: v for k, v in vars(args).items() if k not in ("data", "out")}
    report = {
        "params": {**params, "data": str(args.data)},
        "machine": {**machine_info(), "loadavg_end": load_average()},
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown(report)
    args.out.with_suffix(".md").write_text("# cross-encoder on Abt-Buy\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
