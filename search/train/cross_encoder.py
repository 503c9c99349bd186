"""``cross-encoder``: a cross-encoder reranker trained on mined negatives.

Rows come from a ``search mine`` file of the train split; each epoch is checked on the
valid split's stage-1 candidates (the dataset's collection, indexed first if missing),
OUT keeps the best epoch by hit@1, and the report compares stage 1 with the trained
reranker on those same valid candidates. Load it with ``--reranker cross-encoder:OUT``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.types import Candidate, Query
from search.config import AppConfig
from search.train.candidates import (
    CandidateOptions,
    compare_stages,
    open_for_training,
    stage1_splits,
)
from search.train.registry import TrainJob, TrainReport, register_trainer

log = logging.getLogger(__name__)


@dataclass
class CrossEncoderOptions(CandidateOptions):
    """``[train.cross-encoder]``: the start model, the mined negatives (``search mine``)
    and the fine-tuning settings (``training.cross_encoder.CrossEncoderConfig``)."""

    model: str | None = None  # hub name or local checkpoint
    negatives: str | None = None  # mined JSONL of the train split
    epochs: float = 1.0
    batch_size: int = 4  # groups per step
    lr: float = 2e-5
    warmup: float = 0.1  # fraction (<1) or steps
    save_steps: int = 500
    resume: bool = False
    group_size: int = 8  # 1 positive + N-1 negatives
    loss: str = "ce"  # ce (group softmax) or bce
    max_length: int = 128  # tokens per pair
    patience: int = 0  # stop after N epochs without gain (0: never)
    grad_accum: int = 1
    precision: str = "auto"
    max_steps: int = -1
    seed: int = 0


@register_trainer("cross-encoder", "reranker", CrossEncoderOptions)
def train_cross_encoder_reranker(
    cfg: AppConfig, job: TrainJob, opts: CrossEncoderOptions
) -> TrainReport:
    """Train a cross-encoder from ``opts.model`` on the mined ``opts.negatives`` and save
    it to ``job.out``; OUT keeps the best epoch by valid hit@1."""
    from rerank.cross_encoder import CrossEncoderReranker
    from retrieval.encoders.text import resolve_model  # all-MiniLM-L6-v2 -> packaged copy
    from training.cross_encoder import CrossEncoderConfig, train_cross_encoder
    from training.mining import read_mined

    start = time.perf_counter()
    if not opts.model:
        raise UsageError("--kind cross-encoder needs --model (a hub name or a local checkpoint)")
    if opts.negatives is None:
        raise UsageError("--kind cross-encoder needs --negatives FILE; make one with `search mine`")
    rows = read_mined(opts.negatives)
    if not rows:
        raise UsageError(f"{opts.negatives}: no rows")
    config = _training_config(opts, CrossEncoderConfig)
    dataset, name = open_for_training(cfg, job.dataset, job.collection, job.fmt, job.progress)
    vector, ((valid_q, valid_rows),) = stage1_splits(
        cfg, dataset, name, opts.k, [opts.valid_split], job.progress
    )
    summary = train_cross_encoder(
        rows,
        resolve_model(opts.model),
        job.out,
        config,
        valid=_valid_lists(valid_q, valid_rows),
        resume=opts.resume,
    )
    metrics: dict[str, float] = {}
    if valid_q:
        reranker = CrossEncoderReranker(str(job.out), max_length=config.max_length)
        metrics = compare_stages(reranker, valid_q, valid_rows)
    info = {
        "steps": summary["global_step"],
        "train_loss": summary["train_loss"],
        "best": summary["best"],
        "valid_per_epoch": summary["valid"],
        "negatives": str(opts.negatives),
        "model": opts.model,
    }
    return TrainReport(
        "cross-encoder",
        Path(job.out),
        len(rows),
        len(valid_q),
        f"{info['steps']} steps, loss {info['train_loss']:.4f}",
        collection=name,
        vector=vector,
        k=opts.k,
        metrics=metrics,
        info=info,
        seconds=time.perf_counter() - start,
    )


def _training_config(opts: CrossEncoderOptions, config_cls: type) -> Any:
    """The options that are fields of ``training``'s CrossEncoderConfig."""
    known = {f.name for f in fields(config_cls)}
    return config_cls(**{k: v for k, v in asdict(opts).items() if k in known})


def _valid_lists(queries: list[Query], rows: list[list[Candidate]]) -> list[Any]:
    """Each valid query's stage-1 titles with their 0/1 labels, for per-epoch checks."""
    from training.ranking import ValidList

    return [
        ValidList(
            q.product.title,
            tuple(c.product.title for c in row),
            tuple(int(c.id in q.matches) for c in row),
        )
        for q, row in zip(queries, rows)
    ]
