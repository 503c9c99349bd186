"""``--kind timm --loss arcface``: fine-tune a timm image backbone with ArcFace.

The start model is any ``timm`` encoder spec (``efficientnet_lite0,pretrained=PATH,
key_map=order``, ``eca_nfnet_l1``, a trained folder ...); a BN-dropout-FC neck of
``neck`` dims goes on top unless the start folder has one. Images are decoded and
augmented (random resized crop, flip, colour jitter from timm's training transform,
drawn from (seed, epoch, item) so a resumed run sees the same ones) in DataLoader
workers. ``freeze`` keeps the first fraction of the backbone's tensors (stem and early
blocks) fixed, their BatchNorm statistics included: cheaper steps, and fewer weights
for a small train split to pull away from ImageNet. The best epoch on valid recall
is saved to ``out``, which loads as ``--encoder timm:OUT``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from retrieval.errors import UsageError
from retrieval.registry import int_option
from retrieval.types import ComponentSpec, Product
from training.arcface import ArcFaceArgs, fit_arcface, grouped_splits
from training.loop import LoopResult

log = logging.getLogger(__name__)


@dataclass
class TimmArcFaceArgs(ArcFaceArgs):
    """ArcFace arguments plus the start model and the image pipeline."""

    model: str = "efficientnet_lite0"
    neck: int | None = 512
    dropout: float = 0.1
    image_size: int | None = None
    freeze: float = 0.0  # fraction of the backbone's tensors kept fixed


class ImageLabels:
    """(listing position) -> (augmented image tensor, class index)."""

    def __init__(self, products: Sequence[Product], labels: Sequence[int], transform: Any, seed=0):
        self.products, self.labels, self.transform = list(products), list(labels), transform
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.products)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from retrieval.data.images import load_image

        product = self.products[i]
        try:
            image = load_image(str(product.image_path))
        except OSError as exc:
            raise UsageError(
                f"listing {product.id}: {exc}; training reads every train photo: replace the "
                "file or drop the listing's image"
            ) from exc
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, self.epoch, i)) & 0x7FFFFFFF)
            return self.transform(image), self.labels[i]


def collate(items: list[tuple[Any, int]]) -> dict[str, Any]:
    """Stack the pixels, keep the labels."""
    return {
        "pixels": torch.stack([x for x, _ in items]),
        "labels": torch.tensor([y for _, y in items], dtype=torch.long),
    }


def _embed(embedder: nn.Module, batch: dict[str, Any]) -> Any:
    return embedder(batch["pixels"])


def start_embedder(args: TimmArcFaceArgs) -> Any:
    """The model to fine-tune from the ``--model`` spec (``timm:`` prefix allowed)."""
    from retrieval.encoders.timm_model import (
        TimmConfig,
        build_embedder,
        data_config,
        is_folder,
        load_embedder,
    )

    parsed = ComponentSpec.parse(
        args.model if args.model.startswith("timm:") else f"timm:{args.model}"
    )
    if not parsed.model:
        raise UsageError("--model needs a timm name or folder, e.g. efficientnet_lite0")
    opts = dict(parsed.options)
    size = args.image_size or opts.pop("image_size", None)  # the spec's own, as the encoder's
    overrides = {"image_size": int_option("image_size", str(size), minimum=16)} if size else {}
    if is_folder(parsed.model):
        embedder = load_embedder(parsed.model)
        if overrides:
            embedder.config.data = data_config(embedder.backbone, overrides)
        return embedder
    config = TimmConfig(
        model=parsed.model,
        pool=opts.pop("pool", "avg"),
        neck=args.neck,
        dropout=args.dropout,
        data=overrides,
    )
    embedder = build_embedder(config, opts.pop("pretrained", None), opts.pop("key_map", "name"))
    if opts:
        raise UsageError(f"unknown timm model options: {', '.join(sorted(opts))}")
    return embedder


def freeze_backbone(embedder: Any, fraction: float) -> list[nn.Module]:
    """Freeze the first ``fraction`` of the backbone's parameter tensors; return the
    modules whose BatchNorm layers must stay in eval mode."""
    if not 0 <= fraction < 1:
        raise UsageError(f"--freeze must be in [0, 1), got {fraction}")
    params = list(embedder.backbone.named_parameters())
    cut = int(len(params) * fraction)
    frozen = {name for name, _ in params[:cut]}
    for _, p in params[:cut]:
        p.requires_grad_(False)
    return [
        m
        for name, m in embedder.backbone.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and any(f"{name}.{leaf}" in frozen for leaf in ("weight", "bias"))
    ]


def embed_listings(
    model: nn.Module, products: Sequence[Product], transform: Any
) -> tuple[list[Product], np.ndarray]:
    """The listings whose image reads and their L2-normalised vectors under ``model``."""
    from retrieval.encoders.timm_encoder import TimmEncoder

    device = str(next(model.parameters()).device)
    enc = TimmEncoder(model, transform, dim=model.dim, device=device, num_workers=0, jit=False)
    rows = enc.encode(products).vectors[enc.name]
    keep = [i for i, v in enumerate(rows) if v is not None]
    vecs = np.stack([rows[i] for i in keep]) if keep else np.zeros((0, model.dim), np.float32)
    return [products[i] for i in keep], vecs


def fit_timm_arcface(
    train: Sequence[Product],
    valid: Sequence[Product],
    args: TimmArcFaceArgs,
    score: Callable[[Sequence[Product], np.ndarray], dict[str, float]] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[LoopResult, dict[str, Any], Path]:
    """Fine-tune on the train listings' groups; the best epoch goes to ``args.out``.
    ``score`` (the valid listings and their vectors -> metrics) replaces the valid recall
    scoring; ``on_step`` is told each optimiser step."""
    from retrieval.device import require_extra

    require_extra("timm", {"torch": "torch", "timm": "timm"})
    require_extra("train", {"accelerate": "accelerate"})
    from retrieval.encoders.timm_model import save_embedder, transforms
    from training.embed_eval import group_metrics

    splits = grouped_splits(train, valid, lambda p: bool(p.image_path), "images", args.seed)
    imaged, labels, scored = splits.train, splits.labels, splits.valid
    embedder = start_embedder(args)
    frozen_bn = freeze_backbone(embedder, args.freeze) if args.freeze else []
    if frozen_bn:
        _keep_eval(embedder, frozen_bn)
    train_tf = transforms(embedder.config.data, train=True)
    dataset = ImageLabels(imaged, labels, train_tf, args.seed)
    eval_tf = transforms(embedder.config.data)

    def score_valid(model: nn.Module) -> dict[str, float]:
        read, vecs = embed_listings(model, scored, eval_tf)
        if score is not None:
            metrics = score(read, vecs)
        else:
            metrics = group_metrics(
                [p.id for p in read], [p.group for p in read], vecs, args.eval_k
            )
        model.train()
        return metrics

    log.info("%d train images in %d groups; %d valid", len(imaged), len(splits.names), len(scored))
    try:
        result, best = fit_arcface(
            embedder,
            _embed,
            embedder.dim,
            dataset,
            labels,
            collate,
            args,
            score_valid=score_valid if len(scored) > 1 else None,
            export=save_embedder,
            on_step=on_step,
        )
    except UsageError as exc:  # a photo that does not read, met in a DataLoader worker
        raise worker_error(exc) from None
    return result, best, Path(args.out)


def worker_error(exc: UsageError) -> UsageError:
    """The error a DataLoader worker raised, as its one line: torch raises it again in the
    main process with the worker's traceback in its message."""
    lines = str(exc).strip().splitlines()
    name = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    if len(lines) > 1 and lines[-1].startswith(name):
        return type(exc)(lines[-1].removeprefix(name))
    return exc


def _keep_eval(embedder: nn.Module, modules: list[nn.Module]) -> None:
    """Frozen BatchNorm layers keep their running statistics: back to eval after every
    ``train()`` call."""
    original = embedder.train

    def train(mode: bool = True) -> nn.Module:
        original(mode)
        for m in modules:
            m.eval()
        return embedder

    embedder.train = train  # type: ignore[method-assign]
