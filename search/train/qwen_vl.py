"""``qwen-vl``: LoRA fine-tuning of a Qwen-VL yes/no reranker.

Positives are each train query's matches; negatives come from a mined JSONL file
(``search mine``, FlagEmbedding layout plus ``query_id`` / ``pos_ids`` / ``neg_ids``) or,
without one, are mined here from the train split's stage-1 candidates with the defaults
of ``search mine`` (``training.mining.MineConfig``: hard, a few random, the
false-negative guard). Each epoch is checked on the valid split's stage-1 candidates
(``training.selection``, the cross-encoder's rule): the best epoch's adapters are merged,
and ``OUT/valid_epochs.md`` holds the per-epoch table; then the weight of stage 1's rank
in the score is chosen on the same lists and recorded (``OUT/search_reranker.json``).
The merged model goes to OUT (load it with ``--reranker qwen-vl:OUT``), the adapters to
OUT/adapter, checkpoints to OUT/checkpoints.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.atomic import write_json
from retrieval.errors import UsageError
from retrieval.types import Candidate, Product, Query
from search.config import AppConfig
from search.train.candidates import (
    CandidateOptions,
    compare_stages,
    open_for_training,
)
from search.train.registry import TrainJob, TrainReport, register_trainer
from training.reranker_config import ValidChoice

log = logging.getLogger(__name__)

DEFAULT_MIN_PIXELS = 64 * 28 * 28


@dataclass
class QwenVLOptions(CandidateOptions, ValidChoice):
    """``[train.qwen-vl]``: base model, negatives and the LoRA fine-tuning settings."""

    model: str | None = None  # base checkpoint (default rerank.qwen_vl.DEFAULT_MODEL)
    negatives: str | None = None  # mined JSONL; default: mined here (MineConfig)
    neg_ratio: int = 3  # negatives per positive
    lora_r: int = 16
    epochs: float = 2.0  # a finished model adjusted with LoRA; the epoch is chosen on valid
    max_steps: int = -1
    batch_size: int = 4  # pairs per step
    grad_accum: int = 1
    lr: float = 1e-4
    max_pixels: int = 512 * 28 * 28  # pixel cap per image
    save_steps: int = 500
    resume: bool = False  # go on from OUT's last checkpoint
    device: str = "auto"
    seed: int = 0


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


@register_trainer("qwen-vl", "reranker", QwenVLOptions)
def train_qwen_vl_reranker(cfg: AppConfig, job: TrainJob, opts: QwenVLOptions) -> TrainReport:
    """Fine-tune a Qwen-VL reranker with LoRA on a split; report stage 1 vs stage 2 on
    the valid split when stage 1 was run (no ``negatives`` file)."""
    from rerank.qwen_vl import DEFAULT_MODEL, QwenVLReranker
    from training.qwen_vl import pair_examples, train_qwen_vl

    start = time.perf_counter()
    out, base = Path(job.out), opts.model or DEFAULT_MODEL
    ex = _examples(cfg, job, opts)
    examples = pair_examples(ex.train_q, ex.products, ex.negatives, opts.neg_ratio, opts.seed)
    if not examples:
        raise UsageError(f"{job.dataset}: no training pairs in split {opts.split!r}")
    log.info("%d pairs from %d queries", len(examples), len(ex.train_q))
    reranker = QwenVLReranker(
        base,
        device=opts.device,
        min_pixels=min(DEFAULT_MIN_PIXELS, opts.max_pixels),
        max_pixels=opts.max_pixels,
    )
    info = train_qwen_vl(
        reranker,
        examples,
        _arguments(opts, reranker, out, job),
        out,
        resume=opts.resume,
        valid=_valid_items(ex.valid_q, ex.valid_rows, opts),
        patience=opts.patience,
    )
    if info["valid_table"]:
        log.info("valid per epoch (%s):\n%s", out, info["valid_table"])
    if info["verdict"]:
        log.warning("%s: %s", out, info["verdict"])
    info.update({"model": base, "dataset": ex.dataset, "split": opts.split, "mining": ex.mining})
    info["max_pixels"] = opts.max_pixels
    info["spec"] = (
        f"qwen-vl:{out},max_pixels={opts.max_pixels},min_pixels={reranker.pixels['min_pixels']}"
    )
    write_json(out / "train_info.json", info, indent=1)
    metrics = compare_stages(reranker, ex.valid_q, ex.valid_rows) if ex.valid_q else {}
    return TrainReport(
        "qwen-vl",
        out,
        len(ex.train_q),
        len(ex.valid_q),
        f"{info['steps']} steps, loss {info['train_loss']:.4f}",
        collection=ex.collection,
        vector=ex.vector,
        k=opts.k,
        metrics=metrics,
        info=info,
        seconds=time.perf_counter() - start,
    )


@dataclass
class _Examples:
    """Train queries with their negatives, and the valid split's stage-1 candidates."""

    dataset: str
    products: dict[str, Product]
    train_q: list[Query]
    negatives: dict[str, list[str]]
    valid_q: list[Query]
    valid_rows: list[list[Candidate]]
    collection: str = ""
    vector: str = ""
    mining: dict[str, Any] | None = None


def _valid_items(queries: list[Query], rows: list[list[Candidate]], opts: ValidChoice) -> list:
    """The valid lists each epoch ranks: at most ``valid_queries`` (a seeded sample),
    each cut to its first ``valid_k`` candidates, as the cross-encoder's trainer does."""
    from training.ranking import ValidList, sample_lists

    lists = [
        ValidList(q.id, tuple(c.id for c in row), tuple(int(c.id in q.matches) for c in row))
        for q, row in zip(queries, rows)
    ]
    kept = sample_lists(lists, opts.valid_queries, opts.valid_k)
    by_id = {q.id: (q, row) for q, row in zip(queries, rows)}
    return [(by_id[v.query][0].product, by_id[v.query][1][: len(v.texts)], v.labels) for v in kept]


def _examples(cfg: AppConfig, job: TrainJob, opts: QwenVLOptions) -> _Examples:
    """From the mined file if given (no stage 1 then), else mined from stage 1 here."""
    from retrieval.data import open_dataset
    from search.train.mine import mined_rows

    if opts.negatives is not None:
        dataset = open_dataset(job.dataset, format=job.fmt)
        products = {p.id: p for p in dataset.products()}
        train_q, negs = file_negatives(opts.negatives, products)
        return _Examples(dataset.name, products, train_q, negs, [], [])
    dataset, name = open_for_training(cfg, job.dataset, job.collection, job.fmt, job.progress)
    products = {p.id: p for p in dataset.products()}
    rows, mining, vector, (valid_q, valid_rows) = mined_rows(cfg, job, opts, dataset, name)
    wanted = {r["query_id"] for r in rows}
    train_q = [q for q in dataset.queries(opts.split) if q.id in wanted]
    products.update({q.id: q.product for q in train_q if q.id not in products})
    negs = {r["query_id"]: r["neg_ids"] for r in rows}
    return _Examples(
        dataset.name, products, train_q, negs, valid_q, valid_rows, name, vector, mining
    )


def _arguments(opts: QwenVLOptions, reranker: Any, out: Path, job: TrainJob) -> Any:
    """The Trainer arguments of one run: precision follows the reranker's dtype."""
    import torch

    from training.qwen_vl import QwenVLTrainingArguments

    return QwenVLTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        learning_rate=opts.lr,
        save_steps=opts.save_steps,
        lora_r=opts.lora_r,
        lora_alpha=2 * opts.lora_r,
        seed=opts.seed,
        use_cpu=reranker.device == "cpu",
        bf16=reranker.dtype == torch.bfloat16,
        fp16=reranker.dtype == torch.float16,
        disable_tqdm=job.progress is None,
    )
