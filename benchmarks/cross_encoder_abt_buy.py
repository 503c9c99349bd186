"""A cross-encoder trained on Abt-Buy's mined negatives against MiniLM stage 1.

Indexes the gallery with the ``text`` encoder (packaged all-MiniLM-L6-v2) into a fresh
embedded collection, mines hard negatives for the train split (`search mine`), trains a
cross-encoder from the same all-MiniLM-L6-v2 weights with a fresh one-logit head
(`search train reranker --kind cross-encoder`; the best epoch on the valid split's
top-K lists is kept), reloads it as ``cross-encoder:OUT`` and reranks the test split's
stage-1 top K for a few K: R@1, R@10 and MRR@10 of both stages on the same candidates.
Nothing is tuned on test. Measured, not asserted.

    python benchmarks/cross_encoder_abt_buy.py        # about 12 minutes on 2 CPU cores

Defaults (2 epochs, groups of 1 positive + 3 negatives, 8 groups a step) are sized for
a CPU; on a GPU, FlagEmbedding's group of 8 and more epochs are the obvious next step.
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

from benchmarks.bench_report import load_average, machine_info  # noqa: E402
from rerank.base import rerank_batch  # noqa: E402
from rerank.cross_encoder import CrossEncoderReranker  # noqa: E402
from retrieval.data import open_dataset  # noqa: E402
from retrieval.encoders.text import packaged_minilm  # noqa: E402
from retrieval.retriever import Retriever  # noqa: E402
from retrieval.types import queries_to_qrels  # noqa: E402
from search.config import load_config  # noqa: E402
from search.indexing import connect  # noqa: E402
from search.pipeline import Pipeline, PipelineConfig  # noqa: E402
from search.train.candidates import ranking_metrics, score_run, stage1_candidates  # noqa: E402
from search.train.cross_encoder import (  # noqa: E402
    CrossEncoderOptions,
    train_cross_encoder_reranker,
)
from search.train.mine import mine  # noqa: E402
from search.train.registry import TrainJob  # noqa: E402

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "abt-buy"
METRICS = ("recall@1", "recall@10", "mrr@10")


def markdown(report: dict[str, Any]) -> str:
    """The test results as a Markdown table: stage 1 and stage 2 per K."""
    p, t = report["params"], report["train"]
    best = t["best"]
    lines = [
        f"cross-encoder on Abt-Buy: stage 1 = `text` (all-MiniLM-L6-v2, vector `text`); "
        f"stage 2 = a cross-encoder trained from all-MiniLM-L6-v2 (fresh head) on "
        f"{t['rows']} train queries, negatives mined from stage-1 ranks {p['range']} "
        f"({p['negatives']} per query), group {p['group_size']} ({p['loss']}), "
        f"{p['epochs']} epochs, batch {p['batch_size']}, lr {p['lr']}, max_length "
        f"{p['max_length']}; epoch {best.get('epoch')} kept on valid hit@1 "
        f"{best.get('hit@1', 0):.3f} (top {p['valid_k']}). Training {t['seconds']:.0f}s "
        f"on {report['machine']['usable_cores']} CPU cores.",
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
    mined = mine(
        cfg,
        str(args.data),
        home / "negatives.jsonl",
        encoders=["text"],
        ranks=args.range,
        negatives=args.negatives,
        split="train",
        seed=0,
    )
    mine_s = time.perf_counter() - start
    start = time.perf_counter()
    out = home / "cross-encoder"
    trained = train_cross_encoder_reranker(
        cfg,
        TrainJob(str(args.data), out),
        CrossEncoderOptions(
            model=packaged_minilm() or "all-MiniLM-L6-v2",
            negatives=str(mined.out),
            k=args.valid_k,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup=0.1,
            save_steps=10_000,
            group_size=args.group_size,
            loss=args.loss,
            max_length=args.max_length,
        ),
    )
    train_s = time.perf_counter() - start
    reranker = CrossEncoderReranker(str(out), device="cpu", max_length=args.max_length)
    dataset = open_dataset(str(args.data))
    index = connect(cfg)
    try:
        retriever = Retriever.for_collection(index, trained.collection)
        pipe = Pipeline(retriever, None, PipelineConfig(k=max(args.k), using="text"))
        queries, rows = stage1_candidates(pipe, dataset, "test")
    finally:
        index.close()
    # one reranking of the top max(K); each smaller K is the stage-1 prefix of it
    reranked = rerank_batch(reranker, [(q.product, row) for q, row in zip(queries, rows)])
    scores = {id(c): c.score for row in reranked for c in row}
    qrels = queries_to_qrels(queries)
    test: dict[str, dict[str, float]] = {}
    for k in sorted(args.k):
        top = [row[:k] for row in rows]
        stage2 = {q.id: {c.id: float(scores[id(c)]) for c in row} for q, row in zip(queries, top)}
        test[str(k)] = {
            **ranking_metrics(score_run(queries, top, 1), qrels, "stage1"),
            **ranking_metrics(stage2, qrels, "stage2"),
        }
        logging.warning("K=%d: %s", k, test[str(k)])
    return {
        "mine": {"rows": mined.rows, "negatives": mined.negatives, "seconds": round(mine_s, 1)},
        "train": {"rows": trained.train_size, "seconds": train_s, **trained.info},
        "valid": trained.metrics,
        "test": test,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--k", type=int, nargs="+", default=[20, 50], help="test stage-1 K")
    parser.add_argument("--valid-k", type=int, default=20, help="valid list length (model choice)")
    parser.add_argument("--range", default="1-50", help="stage-1 ranks mined")
    parser.add_argument("--negatives", type=int, default=15)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="groups per step")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--loss", default="ce", choices=("ce", "bce"))
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
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
