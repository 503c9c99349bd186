"""CLIP / SigLIP fine-tuning through open_clip, on pairs of listings of one product group.

The model comes from the same specs the ``clip`` encoder accepts (``ARCH/TAG``,
``hf-hub:...``, ``ARCH,pretrained=PATH`` or ``pretrained=none``, a local folder); the
result is saved as a folder with ``open_clip_config.json`` and
``open_clip_model.safetensors`` (the final model in ``out``, and one in each
checkpoint), which ``search index --encoder clip:FOLDER`` loads as it is.

Negatives are the other rows of a batch (per process under several GPUs; they are not
gathered across processes) plus, optionally, one mined hard negative per row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.errors import SearchError
from retrieval.types import ComponentSpec, Product
from training.clip_data import PAIR_KINDS
from training.loop import LoopArgs, LoopResult
from training.seeding import seed_everything

log = logging.getLogger(__name__)


@dataclass
class BiencoderArgs(LoopArgs):
    """Loop arguments plus the model spec, loss, pair kinds and evaluation depth."""

    model: str = "ViT-B-32/laion2b_s34b_b79k"
    loss: str = "infonce"
    pairs: tuple[str, ...] = PAIR_KINDS
    negatives: Path | None = None
    eval_k: int = 10


@dataclass
class ClipParts:
    """An open_clip model with its transforms, tokenizer and model config."""

    model: Any
    train_transform: Any
    eval_transform: Any
    tokenizer: Any
    config: dict[str, Any]


def load_clip(spec: str) -> ClipParts:
    """Build an open_clip model for training from a ``clip`` encoder model spec
    (``MODEL[,pretrained=PATH|none]``, a leading ``clip:`` allowed)."""
    import open_clip

    from retrieval.encoders.clip import load_open_clip, resolve_model

    parsed = ComponentSpec.parse(spec if spec.startswith("clip:") else f"clip:{spec}")
    name, weights = resolve_model(parsed.model, parsed.options.get("pretrained"))
    model, train_tf, eval_tf, tokenizer = load_open_clip(name, weights, spec)
    config = open_clip.get_model_config(name)
    if config is None:
        raise SearchError(f"clip model {spec!r}: no open_clip config to save with the weights")
    return ClipParts(model, train_tf, eval_tf, tokenizer, config)


def save_clip(model: Any, config: dict[str, Any], folder: str | Path) -> Path:
    """Write ``open_clip_config.json`` and ``open_clip_model.safetensors`` to ``folder``."""
    import safetensors.torch
    from open_clip.push_to_hf_hub import save_config_for_hf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(tensors, folder / "open_clip_model.safetensors")
    save_config_for_hf(model, folder / "open_clip_config.json", model_config=config)
    return folder


def _pair_model(clip: Any, loss_name: str) -> Any:
    """A module whose forward(batch) is the contrastive loss of a pair batch."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from training.losses import build_loss

    class ClipPairModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip, self.loss = clip, build_loss(loss_name)
            # fine-tuning a pretrained model of the same loss family: start from its values
            siglip = getattr(clip, "logit_bias", None) is not None
            if siglip == (loss_name == "siglip") and hasattr(clip, "logit_scale"):
                with torch.no_grad():
                    self.loss.logit_scale.copy_(clip.logit_scale.detach().reshape(()))
                    if siglip:
                        self.loss.logit_bias.copy_(clip.logit_bias.detach().reshape(()))

        def embed(self, x: Any, modality: str) -> Any:
            fn = self.clip.encode_image if modality == "image" else self.clip.encode_text
            return F.normalize(fn(x).float(), dim=-1)

        def forward(self, batch: dict[str, Any]) -> Any:
            a_mod, b_mod = batch["kind"].split("-")
            a, b = self.embed(batch["a"], a_mod), self.embed(batch["b"], b_mod)
            extra = self.embed(batch["extra"], b_mod) if "extra" in batch else None
            return self.loss(a, b, batch["groups"], extra, batch.get("extra_groups"))

        def sync_temperature(self) -> None:
            """Copy the learned temperature (and bias) into the open_clip model."""
            with torch.no_grad():
                if hasattr(self.clip, "logit_scale"):
                    self.clip.logit_scale.copy_(
                        self.loss.logit_scale.reshape_as(self.clip.logit_scale)
                    )
                bias = getattr(self.clip, "logit_bias", None)
                if bias is not None and hasattr(self.loss, "logit_bias"):
                    bias.copy_(self.loss.logit_bias.reshape_as(bias))

    return ClipPairModel()


def recall_eval(parts: ClipParts, products: Sequence[Product], k: int) -> dict[str, float]:
    """Stage-1 recall@k on a split by exact cosine among its listings: image -> image
    and text -> image (the query's own listing excluded)."""
    from retrieval.encoders.clip import ClipEncoder
    from retrieval.metrics import recall_at_k

    device = str(next(parts.model.parameters()).device)
    enc = ClipEncoder(
        parts.model,
        parts.eval_transform,
        parts.tokenizer,
        device=device,
        batch_size=64,
        num_workers=0,
    ).encode(products)
    images, texts = enc.vectors["image"], enc.vectors["clip_text"]
    gallery = [i for i, v in enumerate(images) if v is not None]
    if not gallery:
        return {}
    matrix = np.stack([images[i] for i in gallery])
    ids = [products[i].id for i in gallery]
    out: dict[str, float] = {}
    for name, side in (("image-image", images), ("text-image", texts)):
        qrels, run = {}, {}
        for i, vec in enumerate(side):
            p = products[i]
            matches = {
                ids[j]: 1 for j, g in enumerate(gallery) if products[g].group == p.group and g != i
            }
            if vec is None or not matches:
                continue
            sims = matrix @ vec
            order = [j for j in np.argsort(-sims) if ids[j] != p.id][:k]
            qrels[p.id], run[p.id] = matches, {ids[j]: float(sims[j]) for j in order}
        if qrels:
            out[f"stage1/{name}/recall@{k}"] = recall_at_k(run, qrels, k)
    return out


def fit_clip_biencoder(
    train: Sequence[Product], valid: Sequence[Product], args: BiencoderArgs
) -> tuple[LoopResult, Path]:
    """Fine-tune a CLIP / SigLIP model on the train listings' pairs; evaluate on valid
    each epoch; save the final model to ``args.out``. Returns the loop result and it."""
    from retrieval.device import require_extra

    require_extra("clip", {"torch": "torch", "open_clip": "open_clip_torch"})
    require_extra("train", {"accelerate": "accelerate"})
    import torch

    from training.clip_data import PairDataset, build_pairs, make_collate, read_negatives
    from training.loop import train_loop
    from training.sampler import GroupBatchSampler

    seed_everything(args.seed)  # before the model is built
    parts = load_clip(args.model)
    pairs = build_pairs(train, args.pairs)
    if not pairs:
        raise SearchError(f"no {', '.join(args.pairs)} pairs among {len(train)} listings")
    sampler = GroupBatchSampler(
        [p.group for p in pairs], args.batch_size, seed=args.seed, buckets=[p.kind for p in pairs]
    )
    negatives = read_negatives(args.negatives, train) if args.negatives else None
    group_ids = {g: i for i, g in enumerate(sorted({p.group for p in train if p.group}))}
    collate = make_collate(parts.tokenizer, lambda pos: group_ids.get(train[pos].group, -1 - pos))
    dataset = PairDataset(train, pairs, parts.train_transform, negatives, args.seed)
    model = _pair_model(parts.model, args.loss)
    log.info(
        "%d pairs (%s), %d batches an epoch",
        len(pairs),
        ", ".join(args.pairs),
        sampler.epoch_length(0),
    )

    def export(unwrapped: Any, folder: Path) -> None:
        unwrapped.sync_temperature()
        save_clip(unwrapped.clip, parts.config, folder)

    def evaluate(unwrapped: Any) -> dict[str, float]:
        return recall_eval(parts, valid, args.eval_k) if valid else {}

    result = train_loop(model, dataset, sampler, collate, args, evaluate=evaluate, export=export)
    model.sync_temperature()
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed or torch.distributed.get_rank() == 0:
        save_clip(parts.model, parts.config, args.out)
    return result, Path(args.out)
