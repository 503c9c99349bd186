"""``search train reranker --kind cross-encoder``: a cross-encoder on mined negatives.

Rows come from a ``search mine`` file of the train split; each epoch is checked on the
valid split's stage-1 candidates (the dataset's collection, indexed first if missing),
OUT keeps the best epoch by hit@1, and the report compares stage 1 with the trained
reranker on those same valid candidates. Load it with ``--reranker cross-encoder:OUT``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from search.config import AppConfig
from search.train.candidates import (
    ProgressFactory,
    TrainReport,
    compare_stages,
    open_for_training,
    stage1_splits,
)

log = logging.getLogger(__name__)


def train_cross_encoder_reranker(
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
    progress: ProgressFactory | None = None,
    resume: bool = False,
    **options: Any,
) -> TrainReport:
    """Train a cross-encoder from ``model`` on the mined ``negatives`` file and save it
    to ``out``. ``options`` are CrossEncoderConfig fields (epochs, batch_size, lr,
    warmup, save_steps, group_size, loss, max_length, patience, ...)."""
    from rerank.cross_encoder import CrossEncoderReranker
    from training.cross_encoder import CrossEncoderConfig, train_cross_encoder
    from training.mining import read_mined
    from training.ranking import ValidList

    start = time.perf_counter()
    if not model:
        raise UsageError("--kind cross-encoder needs --model (a hub name or a local checkpoint)")
    if negatives is None:
        raise UsageError("--kind cross-encoder needs --negatives FILE; make one with `search mine`")
    known = CrossEncoderConfig.__dataclass_fields__
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UsageError(f"unknown cross-encoder option(s): {', '.join(unknown)}")
    config = CrossEncoderConfig(**{k_: v for k_, v in options.items() if v is not None})
    rows = read_mined(negatives)
    if not rows:
        raise UsageError(f"{negatives}: no rows")
    dataset, name = open_for_training(cfg, dataset_path, collection, fmt, progress)
    vector, ((valid_q, valid_rows),) = stage1_splits(cfg, dataset, name, k, [valid_split], progress)
    valid = [
        ValidList(
            q.product.title,
            tuple(c.product.title for c in row),
            tuple(int(c.id in q.matches) for c in row),
        )
        for q, row in zip(valid_q, valid_rows)
    ]
    from retrieval.encoders.text import resolve_model  # all-MiniLM-L6-v2 -> packaged copy

    summary = train_cross_encoder(
        rows, resolve_model(model), out, config, valid=valid, resume=resume
    )
    metrics: dict[str, float] = {}
    if valid_q:
        reranker = CrossEncoderReranker(str(out), max_length=config.max_length)
        metrics = compare_stages(reranker, valid_q, valid_rows)
    info = {
        "steps": summary["global_step"],
        "train_loss": summary["train_loss"],
        "best": summary["best"],
        "valid_per_epoch": summary["valid"],
        "negatives": str(negatives),
        "model": model,
    }
    return TrainReport(
        Path(out),
        name,
        vector,
        k,
        len(rows),
        len(valid_q),
        info,
        metrics,
        time.perf_counter() - start,
    )
