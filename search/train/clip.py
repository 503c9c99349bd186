"""``clip``: fine-tune an open_clip model contrastively on a dataset's product groups.

Reads the dataset's train and valid splits, hands them to
``training.clip.fit_clip_biencoder`` and reports the loss curve, the valid
recall@k of each epoch and where the model went (a folder that
``search index --encoder clip:FOLDER`` loads).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from search.config import AppConfig
from search.train.registry import SplitOptions, TrainJob, TrainReport, register_trainer
from training.loop_state import LoopOptions

log = logging.getLogger(__name__)


@dataclass
class ClipOptions(SplitOptions, LoopOptions):
    """``[train.clip]``: the start model and ``training.clip.BiencoderArgs`` (the loop's
    settings at ``training.loop_state.LoopOptions``' defaults)."""

    model: str | None = None  # ARCH/TAG, hf-hub:..., ARCH,pretrained=PATH|none, a folder
    loss: str = "infonce"  # or siglip
    pairs: str = "image-text,image-image,text-text"
    negatives: str | None = None  # mined JSONL (search mine): extra columns
    eval_k: int = 10


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


@register_trainer("clip", "biencoder", ClipOptions)
def train_clip_biencoder(cfg: AppConfig, job: TrainJob, opts: ClipOptions) -> TrainReport:
    """Fine-tune a CLIP / SigLIP model contrastively on a dataset's groups; the folder
    it writes is an encoder spec (``--encoder clip:OUT``). Needs no collection."""
    from training.clip import BiencoderArgs, fit_clip_biencoder
    from training.clip_data import parse_pair_kinds

    start = time.perf_counter()
    if not opts.model:
        raise UsageError("--kind clip needs --model (an open_clip spec or a folder)")
    known = {f.name for f in fields(BiencoderArgs)}
    values = {k: v for k, v in asdict(opts).items() if k in known}
    values["pairs"] = parse_pair_kinds(opts.pairs)
    values["negatives"] = Path(opts.negatives) if opts.negatives else None
    args = BiencoderArgs(out=Path(job.out), **values)
    train = split_products(job.dataset, opts.split, job.fmt)
    valid = (
        split_products(job.dataset, opts.valid_split, job.fmt, False) if opts.valid_split else []
    )
    result, folder = fit_clip_biencoder(train, valid, args)
    return TrainReport(
        "clip",
        folder,
        len(train),
        len(valid),
        f"{result.state.step} steps",
        losses=result.losses,
        evals=result.evals,
        info={"checkpoint": str(result.checkpoint) if result.checkpoint else None},
        seconds=time.perf_counter() - start,
    )
