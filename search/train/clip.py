"""``search train biencoder --kind clip``: fine-tune an open_clip model on a dataset.

Reads the dataset's train and valid splits, hands them to
``training.biencoder.fit_clip_biencoder`` and reports the loss curve, the valid
recall@k of each epoch and where the model went (a folder that
``search index --encoder clip:FOLDER`` loads).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from search.config import AppConfig

log = logging.getLogger(__name__)


@dataclass
class BiencoderReport:
    """What a bi-encoder training run did."""

    out: Path
    train_items: int
    valid_items: int
    steps: int
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    seconds: float = 0.0


def split_products(
    dataset_path: str, split: str, fmt: str | None = None, required: bool = True
) -> list[Any]:
    """The listings of one split of a dataset (all of them when ``split`` is empty); an
    empty split is an error when ``required``, else a warning."""
    from retrieval.data import open_dataset

    dataset = open_dataset(dataset_path, format=fmt)
    products = list(dataset.products())
    if not split:
        return products
    chosen = [p for p in products if p.fields.get("split") == split]
    if not chosen and not required:
        log.warning("%s: no listings in split %r; no evaluation", dataset_path, split)
    elif not chosen:
        raise UsageError(f"{dataset_path}: no listings in split {split!r}")
    return chosen


def train_clip_biencoder(
    cfg: AppConfig | None,
    dataset_path: str,
    out: str | Path,
    *,
    model: str = "ViT-B-32/laion2b_s34b_b79k",
    fmt: str | None = None,
    split: str = "train",
    valid_split: str = "valid",
    **options: Any,
) -> BiencoderReport:
    """Fine-tune a CLIP / SigLIP model contrastively on a dataset's groups.

    ``options`` are ``training.biencoder.BiencoderArgs`` fields (loss, pairs, epochs,
    batch_size, lr, warmup_steps, accumulate, save_steps, keep, resume, precision,
    negatives, ...). ``cfg`` is accepted for symmetry with the other trainers."""
    from training.biencoder import BiencoderArgs, fit_clip_biencoder
    from training.clip_data import parse_pair_kinds

    start = time.perf_counter()
    if "pairs" in options and options["pairs"] is not None:
        options["pairs"] = parse_pair_kinds(options["pairs"])
    options = {k: v for k, v in options.items() if v is not None}
    args = BiencoderArgs(out=Path(out), model=model, **options)
    train = split_products(dataset_path, split, fmt)
    valid = split_products(dataset_path, valid_split, fmt, False) if valid_split else []
    result, folder = fit_clip_biencoder(train, valid, args)
    return BiencoderReport(
        out=folder,
        train_items=len(train),
        valid_items=len(valid),
        steps=result.state.step,
        losses=result.losses,
        evals=result.evals,
        checkpoint=result.checkpoint,
        seconds=time.perf_counter() - start,
    )
