"""``search train reranker --kind qwen-vl``: LoRA fine-tuning of a Qwen-VL yes/no reranker.

Positives are each train query's matches; negatives come from a mined JSONL file
(``search mine``, FlagEmbedding layout plus ``query_id`` / ``pos_ids`` / ``neg_ids``) or,
without one, from the collection's stage-1 candidates ranked 2..k that are neither a
match nor of the query's group. The merged model goes to OUT (load it with
``--reranker qwen-vl:OUT``), the adapters to OUT/adapter, checkpoints to OUT/checkpoints.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.types import Candidate, Product, Query
from search.config import AppConfig
from search.train.candidates import (
    ProgressFactory,
    TrainReport,
    compare_stages,
    open_for_training,
    stage1_splits,
)

log = logging.getLogger(__name__)

DEFAULT_MIN_PIXELS = 64 * 28 * 28


def stage1_negatives(queries: list[Query], rows: list[list[Candidate]]) -> dict[str, list[str]]:
    """Per query, its stage-1 candidates ranked 2 and below that are neither a match,
    the query itself, nor of the query's group."""
    out = {}
    for query, row in zip(queries, rows):
        skip = {query.id, *query.matches}
        group = query.product.group
        out[query.id] = [
            c.id
            for c in row
            if c.stage1_rank >= 2
            and c.id not in skip
            and (group is None or c.product.group != group)
        ]
    return out


def file_negatives(
    path: str | Path, products: dict[str, Product]
) -> tuple[list[Query], dict[str, list[str]]]:
    """Queries and negatives of a mined JSONL file. Rows with ids use the dataset's
    products (images included); rows without them become title-only products."""
    from training.mining import read_mined

    queries, negatives = [], {}
    for n, row in enumerate(read_mined(path)):
        qid = row.get("query_id")
        if qid is not None and str(qid) in products:
            query = products[str(qid)]
        else:
            query = Product(f"mined-q{n}", str(row["query"]))
        pos_ids = [str(i) for i in row.get("pos_ids") or []]
        neg_ids = [str(i) for i in row.get("neg_ids") or []]
        if not pos_ids:
            pos_ids = [f"mined-p{n}-{i}" for i in range(len(row["pos"]))]
            products.update({i: Product(i, str(t)) for i, t in zip(pos_ids, row["pos"])})
        if not neg_ids:
            neg_ids = [f"mined-n{n}-{i}" for i in range(len(row["neg"]))]
            products.update({i: Product(i, str(t)) for i, t in zip(neg_ids, row["neg"])})
        queries.append(Query(query, tuple(pos_ids)))
        negatives[query.id] = neg_ids
    return queries, negatives


def train_qwen_vl_reranker(
    cfg: AppConfig,
    dataset_path: str,
    out: str | Path,
    *,
    model: str | None = None,
    negatives: str | Path | None = None,
    collection: str | None = None,
    fmt: str | None = None,
    k: int = 50,
    split: str = "train",
    valid_split: str = "valid",
    neg_ratio: int = 3,
    lora_r: int = 16,
    epochs: float = 1.0,
    max_steps: int = -1,
    batch_size: int = 4,
    grad_accum: int = 1,
    lr: float = 1e-4,
    max_pixels: int = 512 * 28 * 28,
    save_steps: int = 500,
    resume: bool = False,
    device: str = "auto",
    seed: int = 0,
    progress: ProgressFactory | None = None,
    **training: Any,
) -> TrainReport:
    """Fine-tune a Qwen-VL reranker with LoRA on a split; report stage 1 vs stage 2 on
    the valid split when stage 1 was run (no ``negatives`` file)."""
    from rerank.qwen_vl import DEFAULT_MODEL, QwenVLReranker
    from retrieval.data import open_dataset
    from training.qwen_vl import QwenVLTrainingArguments, pair_examples, train_qwen_vl

    start = time.perf_counter()
    out = Path(out)
    base = model or DEFAULT_MODEL
    if negatives is not None:
        dataset, name, vector = open_dataset(dataset_path, format=fmt), "", ""
        products = {p.id: p for p in dataset.products()}
        train_q, negs = file_negatives(negatives, products)
        valid_q, valid_rows = [], []
    else:
        dataset, name = open_for_training(cfg, dataset_path, collection, fmt, progress)
        products = {p.id: p for p in dataset.products()}
        vector, runs = stage1_splits(cfg, dataset, name, k, [split, valid_split], progress)
        (train_q, train_rows), (valid_q, valid_rows) = runs
        negs = stage1_negatives(train_q, train_rows)
    examples = pair_examples(train_q, products, negs, neg_ratio, seed)
    if not examples:
        raise UsageError(f"{dataset_path}: no training pairs in split {split!r}")
    log.info("%d pairs from %d queries", len(examples), len(train_q))

    reranker = QwenVLReranker(
        base,
        device=device,
        min_pixels=min(DEFAULT_MIN_PIXELS, max_pixels),
        max_pixels=max_pixels,
    )
    import torch

    args = QwenVLTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=lr,
        save_steps=save_steps,
        lora_r=lora_r,
        lora_alpha=2 * lora_r,
        seed=seed,
        use_cpu=reranker.device == "cpu",
        bf16=reranker.dtype == torch.bfloat16,
        fp16=reranker.dtype == torch.float16,
        disable_tqdm=progress is None,
        **training,
    )
    info = train_qwen_vl(reranker, examples, args, out, resume=resume)
    info.update({"model": base, "dataset": dataset.name, "split": split, "max_pixels": max_pixels})
    info["spec"] = (
        f"qwen-vl:{out},max_pixels={max_pixels},min_pixels={reranker.pixels['min_pixels']}"
    )
    (out / "train_info.json").write_text(json.dumps(info, indent=1))
    metrics = compare_stages(reranker, valid_q, valid_rows) if valid_q else {}
    return TrainReport(
        out,
        name,
        vector,
        k,
        len(train_q),
        len(valid_q),
        info,
        metrics,
        time.perf_counter() - start,
    )
