"""ArcFace (additive angular margin) training over the label groups of a split.

The recipe of the Shopee winners: an embedding model (a timm backbone with a neck, or a
text encoder) followed by a margin head holding one learnable centre per train group
(``subcenters`` > 1: sub-center ArcFace, a listing joins the nearest of its group's
centres, which tolerates noisy labels); logits are ``scale * cos(theta + margin)`` for
the true group and ``scale * cos(theta)`` for the others, then cross-entropy. The margin
grows linearly from 0 over ``margin_warmup`` optimiser steps (a cold head with the
full margin stalls). Batches are group-balanced (``BalancedGroupSampler``); mixed
precision, checkpoints and resume come from ``training.loop``. After each epoch the
valid split is scored (``training.embed_eval``) and the best epoch by recall@k
(then precision@1, then MRR@10) is exported to ``out``; the head is dropped there. With
``eval_steps`` the scoring runs every that many steps instead, ``select`` names the metric
to maximise, and ``patience`` evaluations without a gain stop the run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from retrieval.errors import SearchError, UsageError
from retrieval.types import Product
from training.loop import LoopArgs, LoopResult
from training.seeding import seed_everything

log = logging.getLogger(__name__)
BEST_FILE = "best_epoch.json"


@dataclass
class ArcFaceArgs(LoopArgs):
    """Loop arguments plus the margin head's and the sampler's."""

    margin: float = 0.5
    scale: float = 30.0
    subcenters: int = 1
    margin_warmup: int = 0  # optimiser steps over which the margin grows from 0
    per_group: int = 4  # listings of one group per batch
    head_lr_scale: float = 10.0  # the centres learn this many times faster than the model
    eval_k: int = 10
    select: str = ""  # the metric the best evaluation maximises ("": recall@k, p@1, mrr)
    patience: int = 0  # > 0: stop after this many evaluations without a gain

    def check(self) -> None:
        """Reject values the head cannot train with."""
        if not 0 <= self.margin < math.pi / 2:
            raise UsageError(f"--margin must be in [0, pi/2), got {self.margin}")
        if self.scale <= 0 or self.subcenters < 1 or self.margin_warmup < 0:
            raise UsageError("--scale must be > 0, --subcenters >= 1, --margin-warmup >= 0")


class ArcMarginHead(nn.Module):
    """Sub-center ArcFace logits for ``classes`` groups over ``dim``-dim embeddings."""

    def __init__(
        self, dim: int, classes: int, *, margin: float = 0.5, scale: float = 30.0, subcenters=1
    ) -> None:
        super().__init__()
        self.classes, self.subcenters = classes, subcenters
        self.scale, self.margin = scale, margin
        self.weight = nn.Parameter(torch.empty(classes * subcenters, dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """(batch, classes) cosine to each group's nearest centre."""
        cos = F.linear(F.normalize(emb.float()), F.normalize(self.weight.float()))
        if self.subcenters > 1:
            cos = cos.view(-1, self.classes, self.subcenters).amax(dim=-1)
        return cos.clamp(-1 + 1e-7, 1 - 1e-7)

    def logits(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits with the angular margin added to each row's true group."""
        cos = self.cosine(emb)
        m = self.margin
        sin = torch.sqrt(1.0 - cos * cos)
        with_margin = cos * math.cos(m) - sin * math.sin(m)
        # past theta = pi - m, cos(theta + m) is no longer decreasing: use a linear penalty
        with_margin = torch.where(cos > math.cos(math.pi - m), with_margin, cos - math.sin(m) * m)
        onehot = F.one_hot(labels, self.classes).bool()
        return self.scale * torch.where(onehot, with_margin, cos)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(emb, labels), labels)


class ArcFaceModel(nn.Module):
    """``embed(batch)`` -> embeddings, then the margin head's loss against batch labels."""

    def __init__(self, embedder: nn.Module, embed: Callable[[Any, Any], Any], head: ArcMarginHead):
        super().__init__()
        self.embedder, self.head, self._embed = embedder, head, embed
        self.head_lr_scale = 1.0

    def lr_scales(self) -> dict[str, float]:
        """The fresh head learns faster than the pretrained embedder (``training.loop``)."""
        return {"head.": self.head_lr_scale}

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.head(self._embed(self.embedder, batch), batch["labels"])


def label_ids(groups: Sequence[str | None]) -> tuple[list[int], list[str]]:
    """Each listing's class index among the sorted distinct groups (ungrouped: error)."""
    names = sorted({g for g in groups if g is not None})
    if len(names) < 2:
        raise UsageError(f"ArcFace needs at least two groups in the train split, got {len(names)}")
    where = {g: i for i, g in enumerate(names)}
    return [where[g] if g is not None else -1 for g in groups], names


@dataclass
class GroupedSplits:
    """The listings an ArcFace trainer uses: grouped train listings it can read, their
    class indices and group names, and the grouped valid listings it can score."""

    train: list[Product]
    labels: list[int]
    names: list[str]
    valid: list[Product]


def grouped_splits(
    train: Sequence[Product],
    valid: Sequence[Product],
    usable: Callable[[Product], bool],
    what: str,
    seed: int,
) -> GroupedSplits:
    """Seed every generator, keep the grouped listings ``usable`` accepts (none in train: SearchError
    naming ``what`` they need) and number the train groups."""
    seed_everything(seed)  # before the model and its head are built
    kept = [p for p in train if usable(p) and p.group is not None]
    if not kept:
        raise SearchError(f"no grouped listings with {what} among {len(train)} train listings")
    labels, names = label_ids([p.group for p in kept])
    scored = [p for p in valid if usable(p) and p.group is not None]
    return GroupedSplits(kept, labels, names, scored)


def fit_arcface(
    embedder: nn.Module,
    embed: Callable[[Any, Any], Any],
    dim: int,
    dataset: Any,
    labels: Sequence[int],
    collate: Callable[[list[Any]], Any],
    args: ArcFaceArgs,
    *,
    score_valid: Callable[[nn.Module], dict[str, float]] | None,
    export: Callable[[nn.Module, Path], None],
    on_step: Callable[[int], None] | None = None,
) -> tuple[LoopResult, dict[str, Any]]:
    """Train ``embedder`` with an ArcFace head; returns the loop result and the best epoch
    (its metrics, and ``step``), whose model ``export`` wrote to ``args.out``; ``on_step``
    is told each optimiser step."""
    from training.balanced_sampler import BalancedGroupSampler
    from training.loop import train_loop

    args.check()
    keep = [i for i, lab in enumerate(labels) if lab >= 0]
    classes = max(labels) + 1
    head = ArcMarginHead(
        dim, classes, margin=args.margin, scale=args.scale, subcenters=args.subcenters
    )
    model = ArcFaceModel(embedder, embed, head)
    model.head_lr_scale = args.head_lr_scale
    sampler = BalancedGroupSampler(
        [labels[i] for i in keep], args.batch_size, per_group=args.per_group, seed=args.seed
    )
    sampler_items = _Subset(dataset, keep)
    out = Path(args.out)
    best_path = out / BEST_FILE
    best: dict[str, Any] = {}
    if args.resume and best_path.is_file():
        best = json.loads(best_path.read_text())

    at = {"step": 0}

    def warm(step: int, _loss: float) -> None:
        at["step"] = step
        if on_step is not None and step:
            on_step(step)
        ramp = 1.0 if args.margin_warmup <= 0 else min(1.0, step / args.margin_warmup)
        head.margin = args.margin * ramp

    def evaluate(unwrapped: nn.Module) -> dict[str, float]:
        if score_valid is None:
            return {}
        unwrapped.eval()
        with torch.no_grad():
            metrics = score_valid(unwrapped.embedder)
        from retrieval.atomic import write_json

        key = (metrics.get(args.select, 0.0),) if args.select else _rank_key(metrics, args.eval_k)
        best["evaluated"] = best.get("evaluated", 0) + 1
        if "key" not in best or key > tuple(best["key"]):
            best.update(epoch=best["evaluated"], step=at["step"], key=list(key), metrics=metrics)
            export(unwrapped.embedder, out)
            log.info("best epoch so far: %d %s", best["epoch"], metrics)
        write_json(best_path, best)
        return metrics

    warm(0, 0.0)
    log.info("ArcFace: %d listings, %d groups, %d per batch", len(keep), classes, args.batch_size)
    result = train_loop(
        model,
        sampler_items,
        sampler,
        collate,
        args,
        evaluate=evaluate if score_valid is not None else None,
        # a subfolder: accelerate's own model.safetensors lives in the checkpoint folder
        export=lambda unwrapped, folder: export(unwrapped.embedder, folder / "model"),
        on_step=warm,
        stop=lambda: 0 < args.patience <= best.get("evaluated", 0) - best.get("epoch", 0),
    )
    if score_valid is None or "key" not in best:
        export(embedder, out)
    return result, best


def _rank_key(metrics: dict[str, float], k: int) -> tuple[float, float, float]:
    return (
        metrics.get(f"recall@{k}", 0.0),
        metrics.get("precision@1", 0.0),
        metrics.get("mrr@10", 0.0),
    )


class _Subset:
    """The listings with a group, re-indexed 0..n-1 for the sampler."""

    def __init__(self, dataset: Any, keep: Sequence[int]) -> None:
        self.dataset, self.keep = dataset, list(keep)

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.keep[i]]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
