"""Import FlagEmbedding on the transformers this project runs (5.x).

FlagEmbedding 1.4.2 imports every reranker model at package import, and two of them
(the layer-wise MiniCPM and the lightweight Gemma reranker) still import
``transformers.modeling_attn_mask_utils``, which transformers removed in 5.10: importing
``FlagEmbedding`` at all then fails. When that module is missing, ``import_flag``
registers a small stand-in holding the four names those models import, with the
semantics they rely on (additive 4-d float masks: 0 where attended, the dtype's
minimum elsewhere), before the first import. The BGE-M3 embedder and the encoder-only
and plain LLM rerankers never call them. Used by the ``bge-m3`` encoder and the
``flag*`` rerankers; a missing FlagEmbedding names the ``flag`` extra. ``resolve_folder``
turns a hub name or path into the local folder that the ``bge-m3`` encoder and the
``flag-layerwise`` reranker read.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path
from typing import Any

from retrieval.errors import MissingExtraError, SearchError

_MODULE = "transformers.modeling_attn_mask_utils"


def _causal(bsz: int, q: int, past: int, dtype: Any, device: Any, window: int | None) -> Any:
    import torch

    kv = q + past
    rows = torch.arange(q, device=device).view(-1, 1) + past
    cols = torch.arange(kv, device=device).view(1, -1)
    blocked = cols > rows
    if window is not None:
        blocked |= cols <= rows - window
    mask = torch.zeros(q, kv, dtype=dtype, device=device)
    mask = mask.masked_fill(blocked, torch.finfo(dtype).min)
    return mask.view(1, 1, q, kv).expand(bsz, 1, q, kv)


def _expand(mask: Any, dtype: Any, tgt_len: int | None = None) -> Any:
    """(bsz, src) 0/1 padding mask -> (bsz, 1, tgt, src) additive mask."""
    bsz, src = mask.shape
    tgt = tgt_len or src
    expanded = mask[:, None, None, :].expand(bsz, 1, tgt, src).to(dtype)
    return (1.0 - expanded).masked_fill((1.0 - expanded).bool(), _min(dtype))


def _min(dtype: Any) -> float:
    import torch

    return torch.finfo(dtype).min


def _prepare_4d_causal_attention_mask(
    attention_mask: Any,
    input_shape: Any,
    inputs_embeds: Any,
    past_key_values_length: int,
    sliding_window: int | None = None,
) -> Any:
    bsz, q = input_shape[0], input_shape[-1]
    dtype, device = inputs_embeds.dtype, inputs_embeds.device
    mask = _causal(bsz, q, past_key_values_length, dtype, device, sliding_window)
    if attention_mask is not None and attention_mask.dim() == 2:
        padding = _expand(attention_mask, dtype, q).to(device)
        mask = mask.masked_fill(padding.bool(), _min(dtype))
    elif attention_mask is not None:  # already 4-d
        mask = attention_mask
    return mask


class AttentionMaskConverter:
    """The static helpers FlagEmbedding's Gemma reranker calls."""

    @staticmethod
    def _ignore_causal_mask_sdpa(*args: Any, **kwargs: Any) -> bool:
        return False  # always build the explicit mask: correct, if not the fastest

    @staticmethod
    def _unmask_unattended(expanded_mask: Any, min_dtype: float) -> Any:
        # fully masked rows (left padding) would give NaNs in SDPA: let them attend all
        fully = (expanded_mask == min_dtype).all(dim=-1, keepdim=True)
        return expanded_mask.mul(~fully)


def _install_shim() -> None:
    try:
        importlib.import_module(_MODULE)
        return
    except ImportError:
        pass
    shim = types.ModuleType(_MODULE)
    shim.AttentionMaskConverter = AttentionMaskConverter  # type: ignore[attr-defined]
    shim._prepare_4d_causal_attention_mask = _prepare_4d_causal_attention_mask  # type: ignore[attr-defined]
    shim._prepare_4d_causal_attention_mask_for_sdpa = _prepare_4d_causal_attention_mask  # type: ignore[attr-defined]
    shim._prepare_4d_attention_mask = _expand  # type: ignore[attr-defined]
    sys.modules[_MODULE] = shim


def import_flag() -> Any:
    """The ``FlagEmbedding`` module, importable on transformers 5; MissingExtraError
    naming the ``flag`` extra when it (or torch / transformers) is not installed."""
    for module, package in (("torch", "torch"), ("transformers", "transformers")):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtraError("flag", package) from exc
    _install_shim()
    try:
        return importlib.import_module("FlagEmbedding")
    except ImportError as exc:
        if (exc.name or "").split(".")[0] == "FlagEmbedding":
            raise MissingExtraError("flag", "FlagEmbedding") from exc
        raise


def resolve_folder(model: str, kind: str) -> Path:
    """The local folder of a model name or path (only the hub cache when HF_HUB_OFFLINE
    is set); a miss is one line naming the ``kind`` that asked."""
    if Path(model).is_dir():
        return Path(model)
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(model, local_files_only=bool(os.environ.get("HF_HUB_OFFLINE")))
        )
    except Exception as exc:  # not cached offline, no network, unknown repo
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"cannot load {kind} model {model!r}: {first}") from exc
