"""``cross-encoder``: a cross-encoder reranker trained on mined negatives.

Rows come from a ``search mine`` file of the train split, or, without one, are mined
here from the train split's stage-1 candidates with ``training.mining.MineConfig``'s
defaults (the ones ``search mine`` uses). Each epoch is checked on the valid split's
stage-1 candidates (the dataset's collection, indexed first if missing); OUT keeps the
best epoch by hit@1, ``OUT/valid_epochs.md`` holds the per-epoch table, and the report
compares stage 1 with the trained reranker on the valid lists the epochs were ranked on
(``valid_queries``, ``valid_k``; scoring every valid candidate again was 10,250 pairs
on Abt-Buy, 136 s on one thread under a load of 5). Load it with
``--reranker cross-encoder:OUT``. Every training default lives in
``training.cross_encoder.CrossEncoderConfig`` (by starting point, ``RECIPES``): the
options class inherits it, so the CLI and ``[train.cross-encoder]`` only override.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path

from retrieval.errors import UsageError
from search.config import AppConfig
from search.train.candidates import (
    CandidateOptions,
    compare_stages,
    open_for_training,
)
from search.train.mine import mined_rows
from search.train.registry import TrainJob, TrainReport, register_trainer
from training.reranker_config import CrossEncoderConfig

log = logging.getLogger(__name__)


@dataclass
class CrossEncoderOptions(CandidateOptions, CrossEncoderConfig):
    """``[train.cross-encoder]``: the start model, the mined negatives (optional) and the
    fine-tuning settings of ``CrossEncoderConfig`` (its defaults; None: by recipe)."""

    model: str | None = None  # hub name or local checkpoint
    negatives: str | None = None  # mined JSONL of the train split; None: mined here
    resume: bool = False


@register_trainer("cross-encoder", "reranker", CrossEncoderOptions)
def train_cross_encoder_reranker(
    cfg: AppConfig, job: TrainJob, opts: CrossEncoderOptions
) -> TrainReport:
    """Train a cross-encoder from ``opts.model`` on mined negatives and save it to
    ``job.out``; OUT keeps the best epoch by valid hit@1."""
    from rerank.cross_encoder import CrossEncoderReranker
    from retrieval.encoders.text import resolve_model  # all-MiniLM-L6-v2 -> packaged copy
    from training.cross_encoder import train_cross_encoder
    from training.ranking import sample_indices, valid_lists

    start = time.perf_counter()
    if not opts.model:
        raise UsageError("--kind cross-encoder needs --model (a hub name or a local checkpoint)")
    config = CrossEncoderConfig(
        **{f.name: getattr(opts, f.name) for f in fields(CrossEncoderConfig)}
    )
    dataset, name = open_for_training(cfg, job.dataset, job.collection, job.fmt, job.progress)
    rows, mined, vector, (valid_q, valid_rows) = mined_rows(cfg, job, opts, dataset, name)
    summary = train_cross_encoder(
        rows,
        resolve_model(opts.model),
        job.out,
        config,
        valid=valid_lists(valid_q, valid_rows),
        resume=opts.resume,
    )
    metrics: dict[str, float] = {}
    if valid_q:  # the queries and candidates each epoch ranked, not every valid pair again
        cfg = summary["config"]
        keep = sample_indices(len(valid_q), cfg["valid_queries"], cfg["seed"])
        k = cfg["valid_k"] or None
        reranker = CrossEncoderReranker(str(job.out), max_length=config.max_length)
        metrics = compare_stages(
            reranker, [valid_q[i] for i in keep], [valid_rows[i][:k] for i in keep]
        )
    if summary["valid_table"]:
        log.info("valid per epoch (%s):\n%s", job.out, summary["valid_table"])
    info = {
        "steps": summary["global_step"],
        "train_loss": summary["train_loss"],
        "recipe": summary["recipe"],
        "config": summary["config"],
        "best": summary["best"],
        "valid_per_epoch": summary["valid"],
        "negatives": str(opts.negatives) if opts.negatives else "mined from stage 1",
        "mining": mined,
        "model": opts.model,
    }
    return TrainReport(
        "cross-encoder",
        Path(job.out),
        len(rows),
        len(valid_q),
        f"{info['steps']} steps ({summary['recipe']} recipe), loss {info['train_loss']:.4f}",
        collection=name,
        vector=vector,
        k=opts.k,
        metrics=metrics,
        losses=summary["losses"],
        evals=summary["valid"],
        info=info,
        seconds=time.perf_counter() - start,
    )
