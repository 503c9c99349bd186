"""The layer-wise MiniCPM reranker's network, written here (the checkpoint's own modeling
file is remote code, which this project never runs, and FlagEmbedding 1.4.2's copy of it
needs transformers 4).

``BAAI/bge-reranker-v2-minicpm-layerwise`` is a MiniCPM decoder (Llama's attention, MLP
and RMSNorm, plus three scalings: token embeddings times ``scale_emb``, every residual
branch times ``scale_depth / sqrt(num_hidden_layers)``) with one score head per layer
from ``start_layer`` to ``num_hidden_layers``: ``lm_head.{k - start_layer}.linear_head``,
a 1 x hidden linear map (FlagEmbedding initialised each from the LM head's "Yes" row, so
a head's output is the "Yes" logit read at that depth). The score at cutoff layer ``k``
is that head applied to the final RMSNorm of the hidden state after ``k`` layers, at the
last token. Only the first ``k`` layers and head ``k`` are built and read: a shallower
cutoff loads and runs less. Tensors are read by name from the checkpoint's safetensors
(or ``pytorch_model.bin`` with ``weights_only``); the config is read as JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import (
    LlamaAttention,
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)

from retrieval.errors import UsageError

HEAD = "lm_head.{}.linear_head.weight"
SINGLE_HEAD = "lm_head.linear_head.weight"


def read_config(folder: Path) -> dict[str, Any]:
    """The checkpoint's config.json, checked to describe a layer-wise (simple-head) model."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"flag-layerwise: cannot read {path}: {exc}") from exc
    if "start_layer" not in config:
        raise UsageError(
            f"flag-layerwise: {path} has no start_layer: not a layer-wise reranker "
            "checkpoint such as BAAI/bge-reranker-v2-minicpm-layerwise"
        )
    if config.get("head_type", "simple") != "simple":
        raise UsageError(
            f"flag-layerwise: head_type={config['head_type']!r} in {path}; only the released "
            "checkpoints' 'simple' one-logit heads are supported"
        )
    return config


def llama_config(config: dict[str, Any], layers: int) -> LlamaConfig:
    """A LlamaConfig carrying the MiniCPM checkpoint's shapes, ``layers`` deep."""
    scaling = config.get("rope_scaling") or {}
    rope = {"rope_type": scaling.get("rope_type") or scaling.get("type") or "default"}
    rope["rope_theta"] = float(config.get("rope_theta", 10000.0))
    if "factor" in scaling:
        rope["factor"] = float(scaling["factor"])
    return LlamaConfig(
        vocab_size=config["vocab_size"],
        hidden_size=config["hidden_size"],
        intermediate_size=config["intermediate_size"],
        num_hidden_layers=layers,
        num_attention_heads=config["num_attention_heads"],
        num_key_value_heads=config.get("num_key_value_heads") or config["num_attention_heads"],
        hidden_act=config.get("hidden_act", "silu"),
        max_position_embeddings=config.get("max_position_embeddings", 2048),
        rms_norm_eps=config.get("rms_norm_eps", 1e-6),
        attention_bias=config.get("attention_bias", False),
        rope_parameters=rope,
        attn_implementation="sdpa",
    )


class DecoderLayer(nn.Module):
    """Llama's pre-norm block with MiniCPM's scaled residual branches."""

    def __init__(self, config: LlamaConfig, index: int, residual_scale: float) -> None:
        super().__init__()
        self.self_attn = LlamaAttention(config, index)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.residual_scale = residual_scale

    def forward(self, hidden: torch.Tensor, rope: Any, mask: torch.Tensor) -> torch.Tensor:
        attn, _ = self.self_attn(self.input_layernorm(hidden), rope, mask)
        hidden = hidden + attn * self.residual_scale
        return hidden + self.mlp(self.post_attention_layernorm(hidden)) * self.residual_scale


class Body(nn.Module):
    """Embeddings, the first ``cutoff`` decoder layers and the final norm (names as in
    the checkpoint: ``model.embed_tokens``, ``model.layers.N``, ``model.norm``)."""

    def __init__(self, config: dict[str, Any], cutoff: int) -> None:
        super().__init__()
        cfg = llama_config(config, cutoff)
        scale = config.get("scale_depth", 1.0) / math.sqrt(config["num_hidden_layers"])
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i, scale) for i in range(cutoff))
        self.norm = LlamaRMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
        self.scale_emb = float(config.get("scale_emb", 1.0))
        self.llama = cfg


class Head(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear_head = nn.Linear(hidden, 1, bias=False)


class LayerwiseMiniCPM(nn.Module):
    """Scores token sequences at one cutoff layer: one logit per sequence, read at its
    last non-padding token."""

    def __init__(self, config: dict[str, Any], cutoff: int) -> None:
        super().__init__()
        self.model = Body(config, cutoff)
        self.head = Head(config["hidden_size"])
        self.cutoff = cutoff
        self.rotary: nn.Module | None = None  # set by load_layerwise, off the meta device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Right-padded ``input_ids`` (batch, length) -> logits (batch,)."""
        body = self.model
        hidden = body.embed_tokens(input_ids) * body.scale_emb
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device).unsqueeze(0)
        rope = self.rotary(hidden, positions)
        causal = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
        allowed = causal[None, None] & attention_mask[:, None, None, :].bool()
        mask = torch.zeros(allowed.shape, dtype=hidden.dtype, device=hidden.device)
        mask = mask.masked_fill(~allowed, torch.finfo(hidden.dtype).min)
        for layer in body.layers:
            hidden = layer(hidden, rope, mask)
        last = attention_mask.sum(dim=1) - 1
        pooled = body.norm(hidden[torch.arange(len(last), device=last.device), last])
        return self.head.linear_head(pooled).squeeze(-1).float()


def tensor_files(folder: Path) -> dict[str, Path] | Path:
    """Where each tensor lives: a sharded checkpoint's index, else its single file."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            weight_map = json.loads((folder / index).read_text())["weight_map"]
            return {name: folder / file for name, file in weight_map.items()}
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return folder / single
    raise UsageError(f"flag-layerwise: no model.safetensors or pytorch_model.bin in {folder}")


def read_tensors(folder: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """The named tensors (others are never read); a missing name is the caller's to report."""
    files = tensor_files(folder)
    by_file: dict[Path, list[str]] = {}
    for name in names:
        where = files.get(name) if isinstance(files, dict) else files
        if where is not None:
            by_file.setdefault(where, []).append(name)
    out: dict[str, torch.Tensor] = {}
    for path, wanted in by_file.items():
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as f:
                have = set(f.keys())
                out.update({n: f.get_tensor(n) for n in wanted if n in have})
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            out.update({n: state[n] for n in wanted if n in state})
    return out


def load_layerwise(folder: Path, cutoff: int, dtype: torch.dtype, device: str) -> LayerwiseMiniCPM:
    """The network up to ``cutoff`` with its score head, weights read by name."""
    config = read_config(folder)
    start, depth = int(config["start_layer"]), int(config["num_hidden_layers"])
    if not start <= cutoff <= depth:
        raise UsageError(
            f"cutoff_layer={cutoff}, but {folder} scores layers {start}..{depth} (start_layer..depth)"
        )
    with torch.device("meta"):
        model = LayerwiseMiniCPM(config, cutoff)
    wanted = {n: n for n in model.state_dict() if not n.startswith("head.")}
    heads = HEAD.format(cutoff - start) if config.get("head_multi", True) else SINGLE_HEAD
    wanted["head.linear_head.weight"] = heads
    found = read_tensors(folder, list(wanted.values()))
    if heads not in found:
        raise UsageError(
            f"flag-layerwise: {folder} has no per-layer score head {heads} (lm_head.N.linear_head): "
            "not a layer-wise reranker checkpoint such as BAAI/bge-reranker-v2-minicpm-layerwise"
        )
    missing = [n for n in wanted.values() if n not in found]
    if missing:
        raise UsageError(
            f"flag-layerwise: {folder} lacks tensor {missing[0]} ({len(missing)} missing)"
        )
    state = {}
    for ours, theirs in wanted.items():
        tensor, shape = found[theirs], model.state_dict()[ours].shape
        if tensor.shape != shape:
            raise UsageError(
                f"flag-layerwise: tensor {theirs} in {folder} has shape {tuple(tensor.shape)}, "
                f"the config says {tuple(shape)}"
            )
        state[ours] = tensor.to(dtype)
    model.load_state_dict(state, assign=True, strict=True)
    model.rotary = LlamaRotaryEmbedding(model.model.llama)  # computed, not stored
    return model.to(device).eval()
