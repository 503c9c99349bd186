"""``timm`` (``--kind timm --loss arcface``): a timm image backbone fine-tuned with ArcFace
on the train split's product groups; and the ArcFace path of the ``text`` trainer
(``--kind text --loss arcface``). Both pick their best epoch on valid recall@k and save
it as an encoder: ``--encoder timm:OUT`` / ``--encoder text:OUT``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from search.config import AppConfig
from search.train.clip import split_products
from search.train.registry import SplitOptions, TrainJob, TrainReport, register_trainer
from training.loop_state import LoopOptions

LOSSES = ("arcface",)


@dataclass
class ArcFaceOptions:
    """The margin head and the sampler (``training.arcface.ArcFaceArgs``)."""

    margin: float = 0.5
    scale: float = 30.0
    subcenters: int = 1
    margin_warmup: int = 0  # optimiser steps
    per_group: int = 4
    head_lr_scale: float = 10.0
    eval_k: int = 10


@dataclass
class TimmOptions(ArcFaceOptions, SplitOptions, LoopOptions):
    """``[train.timm]``: the start model (a timm encoder spec), the neck and the loop."""

    model: str | None = None  # efficientnet_lite0,pretrained=PATH,key_map=order | a folder
    loss: str = "arcface"
    neck: int | None = 512  # 0: the pooled features themselves
    dropout: float = 0.1
    image_size: int | None = None
    freeze: float = 0.0
    epochs: int = 10  # the loop's other settings: training.loop_state.LoopOptions' defaults
    lr: float = 1e-4
    weight_decay: float = 1e-4
    num_workers: int = 2


def loop_values(opts: Any, args_class: type) -> dict[str, Any]:
    """The options that ``args_class`` (a ``training`` dataclass) takes."""
    known = {f.name for f in fields(args_class)}
    return {k: v for k, v in asdict(opts).items() if k in known}


def _splits(job: TrainJob, opts: Any) -> tuple[list[Any], list[Any]]:
    """The train listings and the valid ones (none when ``valid_split`` is empty)."""
    train = split_products(job.dataset, opts.split, job.fmt)
    if not opts.valid_split:
        return train, []
    return train, split_products(job.dataset, opts.valid_split, job.fmt, False)


def _report(
    kind: str, result: Any, best: dict, folder: Path, sizes: tuple[int, int], start: float
) -> TrainReport:
    return TrainReport(
        kind,
        folder,
        sizes[0],
        sizes[1],
        f"{result.state.step} steps, best epoch {best.get('epoch', '-')}",
        losses=result.losses,
        evals=result.evals,
        info={"best": best, "checkpoint": str(result.checkpoint) if result.checkpoint else None},
        seconds=time.perf_counter() - start,
    )


@register_trainer("timm", "biencoder", TimmOptions)
def train_timm(cfg: AppConfig, job: TrainJob, opts: TimmOptions) -> TrainReport:
    """ArcFace fine-tuning of a timm backbone; needs no collection."""
    from training.timm import TimmArcFaceArgs, fit_timm_arcface

    start = time.perf_counter()
    if opts.loss not in LOSSES:
        raise UsageError(f"--kind timm trains with --loss arcface, not {opts.loss!r}")
    if not opts.model:
        raise UsageError("--kind timm needs --model (a timm name and its weights, or a folder)")
    values = loop_values(opts, TimmArcFaceArgs)
    values["neck"] = opts.neck or None
    args = TimmArcFaceArgs(out=Path(job.out), **values)
    train, valid = _splits(job, opts)
    result, best, folder = fit_timm_arcface(train, valid, args)
    return _report("timm", result, best, folder, (len(train), len(valid)), start)


def train_text_arcface(job: TrainJob, opts: Any) -> TrainReport:
    """The ``text`` trainer's ``--loss arcface``: titles as samples, groups as classes."""
    from training.arcface_text import TextArcFaceArgs, fit_text_arcface

    start = time.perf_counter()
    if not opts.model:
        raise UsageError("--kind text needs --model (a hub name or a local path)")
    values = loop_values(opts, TextArcFaceArgs)
    values["epochs"] = max(1, int(round(opts.epochs)))
    values["warmup_steps"] = int(opts.warmup_steps) if opts.warmup_steps >= 1 else 0
    values["keep"] = opts.keep or 2
    values["max_steps"] = opts.max_steps if opts.max_steps and opts.max_steps > 0 else None
    args = TextArcFaceArgs(out=Path(job.out), **values)
    train, valid = _splits(job, opts)
    result, best, folder = fit_text_arcface(train, valid, args)
    return _report("text", result, best, folder, (len(train), len(valid)), start)
