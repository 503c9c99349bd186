"""A timm backbone with pooled features and an optional BN-dropout-FC neck, and its
folder format (what ArcFace training writes and ``timm:FOLDER`` loads).

Model spec forms (the ``MODEL`` of ``timm:MODEL``):

- an exact timm name, with or without a pretrained tag (``efficientnet_lite0``,
  ``eca_nfnet_l1``, ``tf_efficientnet_b3.ns_jft_in1k``): timm's pretrained weights from
  the hub cache (``HF_HUB_OFFLINE=1`` never downloads), ``pretrained=PATH`` for a local
  checkpoint (``key_map=order`` maps another code base's key layout by position, shape
  by shape) or ``pretrained=none`` for random weights;
- ``hf-hub:timm/...``: a timm model on the hub, loaded by timm;
- a folder holding ``timm_config.json`` and ``model.safetensors`` (a trained model).
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import SearchError, UsageError

log = logging.getLogger(__name__)

CONFIG_FILE = "timm_config.json"
WEIGHTS_FILE = "model.safetensors"
POOLS = ("avg", "max", "avgmax", "catavgmax")


@dataclass
class TimmConfig:
    """What rebuilds a TimmEmbedder: the timm name, pooling, neck and preprocessing."""

    model: str
    pool: str = "avg"
    neck: int | None = None  # output size of the BN-dropout-FC neck; None: pooled features
    dropout: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)  # timm data config overrides

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _torch_module() -> Any:
    from torch import nn

    class TimmEmbedder(nn.Module):
        """Backbone (headless, pooled) followed by an optional BN-dropout-FC neck."""

        def __init__(self, backbone: Any, config: TimmConfig) -> None:
            super().__init__()
            self.backbone, self.config = backbone, config
            width = int(backbone.num_features) * (2 if config.pool == "catavgmax" else 1)
            self.neck = None
            if config.neck:
                self.neck = nn.Sequential(
                    nn.BatchNorm1d(width), nn.Dropout(config.dropout), nn.Linear(width, config.neck)
                )
            self.dim = config.neck or width

        def forward(self, pixels: Any) -> Any:
            feats = self.backbone(pixels)
            return self.neck(feats) if self.neck is not None else feats

    return TimmEmbedder


def check_name(name: str) -> None:
    """An unknown timm architecture is a UsageError with close names."""
    import timm

    if name.startswith("hf-hub:"):
        return
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown timm model {arch!r}{hint}")


def create_backbone(
    name: str, pool: str, weights: str | None, key_map: str = "name", *, quiet: bool = False
) -> Any:
    """A headless timm model. ``weights``: None for timm's pretrained ones, ``none`` for
    random, else a checkpoint path loaded by ``key_map`` (its classifier may be absent)."""
    import timm

    from retrieval.encoders.weights import load_weights

    if pool not in POOLS:
        raise UsageError(f"unknown pool {pool!r}; known: {', '.join(POOLS)}")
    check_name(name)
    local = weights is not None and weights.lower() != "none"
    try:
        model = timm.create_model(name, pretrained=weights is None)
    except SearchError:
        raise
    except Exception as exc:  # hub misses offline, bad tags: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"cannot load timm model {name!r}: {first}") from exc
    if local:
        head = model.default_cfg.get("classifier") or ""
        optional = [k for k in model.state_dict() if head and k.startswith(f"{head}.")]
        load_weights(model, weights, key_map, optional)
    elif weights is not None and not quiet:
        log.warning("timm model %s runs with random weights (pretrained=none)", name)
    model.reset_classifier(0, global_pool=pool)
    return model


def data_config(backbone: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """timm's preprocessing config of ``backbone`` with ``overrides`` applied
    (``image_size`` sets a square input size)."""
    from timm.data import resolve_data_config

    args = dict(overrides)
    size = args.pop("image_size", None)
    if size:
        args["input_size"] = (3, int(size), int(size))
    cfg = resolve_data_config(args, model=backbone)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


def transforms(data: dict[str, Any], train: bool = False) -> Any:
    """timm's eval (or training) transform for a resolved data config."""
    from timm.data import create_transform

    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    if train:
        return create_transform(**cfg, is_training=True, hflip=0.5, auto_augment=None)
    return create_transform(**cfg, is_training=False)


def build_embedder(config: TimmConfig, weights: str | None, key_map: str = "name") -> Any:
    """A TimmEmbedder from a config and the backbone's weights (see ``create_backbone``);
    the resolved data config is stored back into ``config.data``."""
    backbone = create_backbone(config.model, config.pool, weights, key_map)
    config.data = data_config(backbone, config.data)
    return _torch_module()(backbone, config)


def is_folder(model: str | None) -> bool:
    """Whether a spec's model part names a saved TimmEmbedder folder."""
    return bool(model) and (Path(model) / CONFIG_FILE).is_file()


def save_embedder(embedder: Any, folder: str | Path) -> Path:
    """Write ``timm_config.json`` and ``model.safetensors`` (each whole or not at all)."""
    import safetensors.torch

    from retrieval.atomic import write_bytes, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in embedder.state_dict().items()}
    write_bytes(folder / WEIGHTS_FILE, safetensors.torch.save(tensors))
    write_json(folder / CONFIG_FILE, embedder.config.to_json())
    return folder


def load_embedder(folder: str | Path) -> Any:
    """The TimmEmbedder saved in ``folder`` (random backbone, then the saved tensors)."""
    from retrieval.encoders.weights import load_weights

    folder = Path(folder)
    try:
        raw = json.loads((folder / CONFIG_FILE).read_text())
        config = TimmConfig(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{folder / CONFIG_FILE}: not a timm encoder config ({exc})") from exc
    backbone = create_backbone(config.model, config.pool, "none", quiet=True)
    embedder = _torch_module()(backbone, config)
    load_weights(embedder, folder / WEIGHTS_FILE)
    return embedder
