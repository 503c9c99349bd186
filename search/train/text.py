"""``text``: a sentence-transformers bi-encoder fine-tuned on a dataset's
match pairs (same-group items, or query -> gallery match), optionally with mined hard
negatives; recall@k on the valid split each epoch. Load it with ``--encoder text:OUT``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from search.config import AppConfig
from search.train.arcface import ArcFaceOptions
from search.train.registry import SplitOptions, TrainJob, TrainReport, register_trainer

log = logging.getLogger(__name__)


LOSSES = ("mnrl", "arcface")


@dataclass
class TextOptions(ArcFaceOptions, SplitOptions):
    """``[train.text]``: the start model and ``training.text.TextBiencoderConfig``;
    with ``loss = "arcface"``, ``training.arcface_text.TextArcFaceArgs`` (margin head)."""

    model: str | None = None  # hub name or local path (all-MiniLM-L6-v2: the packaged copy)
    loss: str = "mnrl"  # in-batch negatives (cached with mini_batch > 0), or arcface
    negatives: str | None = None  # mined JSONL (search mine): hard negatives as columns
    epochs: float = 1
    batch_size: int = 32
    lr: float = 1e-5
    warmup_steps: float = 0  # fraction (<1) or steps
    accumulate: int = 1
    save_steps: int = 0  # 0: every 500 steps
    keep: int | None = 2
    resume: bool = False
    precision: str = "auto"
    mini_batch: int = 0  # > 0: cached MNRL with that many rows per forward pass
    hard_negatives: int = 1
    max_length: int | None = None
    seed: int = 0
    max_steps: int = -1


@register_trainer("text", "biencoder", TextOptions)
def train_text(cfg: AppConfig, job: TrainJob, opts: TextOptions) -> TrainReport:
    """Fine-tune a text bi-encoder on ``opts.split`` with
    ``training.text.train_text_biencoder`` and save it to ``job.out``."""
    from retrieval.data import open_dataset
    from retrieval.encoders.text import resolve_model
    from training.mining import read_mined
    from training.text import TextBiencoderConfig, build_rows, train_text_biencoder

    start = time.perf_counter()
    if opts.loss not in LOSSES:
        raise UsageError(f"unknown --loss {opts.loss!r} for text; known: {', '.join(LOSSES)}")
    if opts.loss == "arcface":
        from search.train.arcface import train_text_arcface

        return train_text_arcface(job, opts)
    if not opts.model:
        raise UsageError("--kind text needs --model (a hub name or a local path)")
    dataset = open_dataset(job.dataset, format=job.fmt)
    products = {p.id: p for p in dataset.products()}
    queries = [q for q in dataset.queries(opts.split) if q.matches]
    if not queries:
        raise UsageError(f"{job.dataset}: no labelled queries in split {opts.split!r}")
    mined = read_mined(opts.negatives) if opts.negatives else []
    rows = build_rows(queries, products, mined, opts.hard_negatives)
    evaluator, valid_size = _evaluator(dataset, products, opts.valid_split)
    config = TextBiencoderConfig(
        epochs=opts.epochs,
        batch_size=opts.batch_size,
        lr=opts.lr,
        warmup=opts.warmup_steps,
        save_steps=opts.save_steps or 500,
        grad_accum=opts.accumulate,
        loss="cached-mnrl" if opts.mini_batch else "mnrl",
        mini_batch_size=opts.mini_batch or 32,
        hard_negatives=opts.hard_negatives,
        max_length=opts.max_length,
        precision=opts.precision,
        keep=opts.keep,
        seed=opts.seed,
        max_steps=opts.max_steps,
    )
    log.info("%d training pairs from %d queries", len(rows), len(queries))
    summary = train_text_biencoder(
        rows, resolve_model(opts.model), job.out, config, evaluator=evaluator, resume=opts.resume
    )
    return TrainReport(
        "text",
        Path(job.out),
        len(queries),
        valid_size,
        f"{summary['global_step']} steps",
        losses=summary["losses"],
        evals=summary["valid"],
        seconds=time.perf_counter() - start,
    )


def _evaluator(dataset: Dataset, products: dict[str, Any], split: str) -> tuple[Any, int]:
    """Recall@k on the valid split's labelled queries each epoch (None without them)."""
    from training.text_eval import RecallEvaluator

    valid = [q for q in dataset.queries(split) if q.matches] if split else []
    if not valid:
        return None, 0
    corpus = [
        (p.id, p.title)
        for p in products.values()
        if p.title and (not dataset.self_match or p.fields.get("split") == split)
    ]
    queries = [(q.id, q.product.title) for q in valid]
    return RecallEvaluator(queries, corpus, {q.id: set(q.matches) for q in valid}), len(valid)
