"""Stage-2 experiments on one stage-1 run: which mining and training choices pay off.

Indexes a dataset once (``text`` = packaged all-MiniLM-L6-v2, and ``sparse``) into
``--home`` (kept between runs), takes the train / valid / test splits' stage-1
candidates, mines negatives from the train candidates, trains a cross-encoder from
the packaged MiniLM (the trainer's defaults unless ``--ce key=value`` overrides
them), and reports test recall@1 / MRR@10 of stage 1 and of the reranker. Used to
find why the old CLI defaults gave almost nothing (docs/training.md, mining negatives).
Measured, not asserted; nothing is tuned on test.

    python benchmarks/stage2_lab.py --home runs/abt-lab --mine old --ce epochs=1 lr=2e-5 batch_size=4
    python benchmarks/stage2_lab.py --home runs/abt-lab      # the defaults
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import machine_info, shared_data  # noqa: E402
from retrieval.atomic import write_json  # noqa: E402
from retrieval.encoders.text import packaged_minilm  # noqa: E402
from retrieval.types import Hit, Query  # noqa: E402
from search.config import load_config  # noqa: E402
from search.train.candidates import compare_stages, open_for_training, stage1_splits  # noqa: E402

ROOT = Path(__file__).resolve().parent
DATA = shared_data("abt-buy")


def old_mining(queries: list[Query], hits: list[list[Hit]], products: dict, n: int = 15) -> list:
    """What ``search mine`` did before: ``n`` negatives sampled from ranks 2-200."""
    out = []
    for q, row in zip(queries, hits):
        pool = [
            h
            for r, h in enumerate(row, 1)
            if 2 <= r <= 200
            and h.id not in q.matches
            and h.id != q.id
            and (q.product.group is None or h.payload.get("group") != q.product.group)
        ]
        rng = random.Random(f"0:{q.id}")
        negs = (
            pool if len(pool) <= n else [pool[i] for i in sorted(rng.sample(range(len(pool)), n))]
        )
        pos = [m for m in q.matches if m in products]
        if pos:
            out.append(
                {
                    "query": q.product.title,
                    "pos": [products[m].title for m in pos],
                    "neg": [h.title for h in negs],
                }
            )
    return out


def hardness(queries: list[Query], hits: list[list[Hit]], rows: list[dict]) -> dict[str, float]:
    """How hard mined negatives are: the share of them from stage-1 ranks 1-10, and for
    the train queries stage 1 gets wrong, how often the wrong top-1 is a negative."""
    rank_of = [{h.title: r for r, h in enumerate(row, 1)} for row in hits]
    by_query = {r["query"]: r for r in rows}
    negs = top10 = wrong = covered = 0
    for q, row, ranks in zip(queries, hits, rank_of):
        mined = by_query.get(q.product.title)
        if mined is None:
            continue
        negs += len(mined["neg"])
        top10 += sum(ranks.get(t, 999) <= 10 for t in mined["neg"])
        if row and row[0].id not in q.matches:
            wrong += 1
            covered += row[0].title in mined["neg"]
    return {
        "negatives": negs,
        "share_rank_1_10": round(top10 / max(1, negs), 3),
        "queries_top1_wrong": wrong,
        "wrong_top1_mined": round(covered / max(1, wrong), 3),
    }


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings as a dict of JSON-ish values."""
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--home", type=Path, required=True, help="index folder, kept")
    parser.add_argument("--vector", default="text")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--mine", default="new", choices=("new", "old"))
    parser.add_argument("--mine-set", nargs="*", default=[], help="MineConfig key=value")
    parser.add_argument("--ce", nargs="*", default=[], help="CrossEncoderConfig key=value")
    parser.add_argument("--name", default="run")
    parser.add_argument("--stats-only", action="store_true", help="mining statistics only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "transformers", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from rerank.cross_encoder import CrossEncoderReranker
    from training.cross_encoder import train_cross_encoder
    from training.mining import MineConfig, MineCounts, candidate_hits, mine_negatives
    from training.ranking import valid_lists
    from training.reranker_config import CrossEncoderConfig

    cfg = load_config(
        None,
        store={"data_dir": args.home},
        stage1={"encoders": ["text", "sparse"], "vector": args.vector},
    )
    dataset, name = open_for_training(cfg, args.data, None, None)
    products = {p.id: p for p in dataset.products()}
    gallery = list(products.values())
    if not dataset.self_match:
        products.update({q.id: q.product for q in dataset.queries(None)})
    train_k = 200 if args.mine == "old" or args.stats_only else 50
    _, ((train_q, train_rows),) = stage1_splits(cfg, dataset, name, train_k, ["train"])
    _, ((valid_q, valid_rows), (test_q, test_rows)) = stage1_splits(
        cfg, dataset, name, args.k, ["valid", "test"]
    )
    hits = candidate_hits(train_rows)
    counts = MineCounts()
    if args.mine == "old":
        rows = old_mining(train_q, hits, products)
    else:
        mcfg = MineConfig(**parse_sets(args.mine_set))
        rows = mine_negatives(train_q, hits, products, mcfg, gallery=gallery, counts=counts)
    if args.stats_only:
        new = mine_negatives(train_q, hits, products, MineConfig(), gallery=gallery)
        stats = {
            "old (ranks 2-200, 15 sampled)": hardness(
                train_q, hits, old_mining(train_q, hits, products)
            ),
            "new (MineConfig defaults)": hardness(train_q, hits, new),
        }
        write_json(args.home / "mining-stats.json", stats)
        print(json.dumps(stats, indent=1))
        return
    ce_cfg = CrossEncoderConfig(**parse_sets(args.ce))
    out = args.home / f"ce-{args.name}"
    start = time.perf_counter()
    summary = train_cross_encoder(
        rows, packaged_minilm(), out, ce_cfg, valid=valid_lists(valid_q, valid_rows)
    )
    seconds = time.perf_counter() - start
    reranker = CrossEncoderReranker(str(out), device="cpu", max_length=ce_cfg.max_length)
    test = compare_stages(reranker, test_q, test_rows)
    report = {
        "name": args.name,
        "mine": args.mine,
        "mine_counts": counts.as_dict(),
        "ce": vars(ce_cfg) if not hasattr(ce_cfg, "as_dict") else ce_cfg.as_dict(),
        "train_seconds": round(seconds, 1),
        "summary": {k: v for k, v in summary.items() if k != "losses"},
        "test": test,
        "machine": machine_info(),
    }
    write_json(args.home / f"lab-{args.name}.json", report)
    print(
        f"{args.name}: test R@1 {test['stage1/recall@1']:.3f} -> {test['stage2/recall@1']:.3f}, "
        f"MRR@10 {test['stage1/mrr@10']:.3f} -> {test['stage2/mrr@10']:.3f}; "
        f"train {seconds / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
