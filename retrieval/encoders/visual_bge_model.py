"""The Visual BGE network (BAAI bge-visualized), rebuilt from its research code.

FlagEmbedding's wheel does not ship it (it lives in ``research/visual_bge``), so this
module rebuilds ``Visualized_BGE``: an EVA02 vision tower (timm's ``Eva``, the trunk of
open_clip's ``EVA02-B-16`` / ``EVA02-L-14``), the BGE text model (transformers) and a
linear ``visual_proj``. A multimodal input runs as in the original ``encode_mm``:

1. the image's patch tokens (last block output, no final norm, CLS dropped) go
   through ``visual_proj``, get BGE position embeddings 1..P and BGE's LayerNorm;
2. the text's BGE embeddings take positions 0 (CLS) and P+1.. (the rest);
3. the BGE encoder reads ``[CLS, image tokens, text tokens]``; output = normalised CLS.

Text alone is BGE's normalised CLS; an image alone is the multimodal path with an
empty text (``[CLS, SEP]``). Module names match the original (``bge_embeddings``,
``bge_encoder``, ``bge_pooler``, ``visual_proj``, ``model_visual``), so released
``.pth`` state dicts load after their EVA-CLIP vision keys are mapped to timm's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from retrieval.errors import SearchError, UsageError

log = logging.getLogger(__name__)

VISUAL = "model_visual."
ORIGINAL_VISUAL = "model_visual.visual."
# some exports name the text model ``model_text``; the original names its parts
_TEXT_ALIASES = {
    "model_text.embeddings.": "bge_embeddings.",
    "model_text.encoder.": "bge_encoder.",
    "model_text.pooler.": "bge_pooler.",
}


class VisualBGE(nn.Module):
    """BGE text model + EVA vision trunk + visual projection, as in ``Visualized_BGE``."""

    def __init__(self, text_model: nn.Module, vision: nn.Module) -> None:
        super().__init__()
        for part in ("embeddings", "encoder"):
            if not hasattr(text_model, part):
                raise UsageError(f"visual-bge needs a BERT-like text model; it lacks .{part}")
        self.bge_encoder = text_model.encoder
        self.bge_embeddings = text_model.embeddings
        self.bge_pooler = getattr(text_model, "pooler", None)
        self.model_visual = vision
        self.hidden_size = int(text_model.config.hidden_size)
        self.max_positions = int(text_model.config.max_position_embeddings)
        self.visual_proj = nn.Linear(int(vision.embed_dim), self.hidden_size)

    @property
    def num_image_tokens(self) -> int:
        return int(self.model_visual.patch_embed.num_patches)

    def _cls(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dtype = embeddings.dtype
        extended = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        hidden = self.bge_encoder(embeddings, attention_mask=extended)[0]
        return F.normalize(hidden[:, 0].float(), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised CLS of BGE over the text alone."""
        embeddings = self.bge_embeddings(
            input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids)
        )
        return self._cls(embeddings, attention_mask)

    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch tokens of the last vision block (no final norm, no CLS): [B, P, width]."""
        return self.model_visual.forward_intermediates(
            pixels, indices=1, norm=False, output_fmt="NLC", intermediates_only=True
        )[-1]

    def encode_mm(
        self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Normalised CLS of BGE over [CLS, projected image tokens, text tokens]."""
        device = input_ids.device
        tokens = self.visual_proj(self.image_tokens(pixels))
        batch, n_img = tokens.shape[:2]
        img_pos = torch.arange(1, 1 + n_img, device=device)
        tokens = self.bge_embeddings.LayerNorm(
            tokens + self.bge_embeddings.position_embeddings(img_pos)
        )
        n_text = input_ids.shape[1]
        text_pos = torch.cat(
            [
                torch.zeros(1, dtype=torch.long, device=device),
                torch.arange(1 + n_img, n_img + n_text, device=device),
            ]
        )
        text = self.bge_embeddings(
            input_ids=input_ids,
            position_ids=text_pos[None, :],
            token_type_ids=torch.zeros_like(input_ids),
        )
        embeddings = torch.cat([text[:, :1], tokens.to(text.dtype), text[:, 1:]], dim=1)
        mask = torch.cat([attention_mask.new_ones(batch, n_img), attention_mask], dim=1)
        return self._cls(embeddings, mask)


def vision_tower(arch: str) -> tuple[nn.Module, int]:
    """The timm EVA trunk of an open_clip architecture (random weights) and its image size."""
    import open_clip
    import timm
    from timm.models.eva import Eva

    cfg = open_clip.get_model_config(arch)
    timm_name = (cfg or {}).get("vision_cfg", {}).get("timm_model_name")
    if not timm_name:
        raise UsageError(f"vision_arch {arch!r} is not an open_clip EVA config (EVA02-B-16, ...)")
    size = cfg["vision_cfg"].get("image_size", 224)
    trunk = timm.create_model(timm_name, pretrained=False, num_classes=0, img_size=size)
    if not isinstance(trunk, Eva):
        raise UsageError(f"visual-bge needs an EVA vision tower; {arch!r} builds {timm_name}")
    return trunk, int(size if isinstance(size, int) else size[0])


def from_original(state: dict[str, Any], model: VisualBGE) -> dict[str, Any]:
    """Map a released ``Visualized_BGE`` state dict (EVA-CLIP vision keys) to this
    module's keys; this module's own state dicts pass through unchanged."""
    from timm.models.eva import checkpoint_filter_fn

    own = model.state_dict()
    visual, rest = {}, {}
    for key, value in state.items():
        if key.startswith(VISUAL):
            visual[key[len(VISUAL) :]] = value
            continue
        for old, new in _TEXT_ALIASES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        # position_ids / token_type_ids buffers of old transformers versions
        if key not in own and key.startswith("bge_embeddings.") and key.endswith("_ids"):
            continue
        rest[key] = value
    visual = checkpoint_filter_fn(visual, model.model_visual)
    for key, value in visual.items():
        if key.startswith("head.") and VISUAL + key not in own:
            continue  # the CLIP projection head: Visual BGE reads the patch tokens only
        rest[VISUAL + key] = value
    return rest


def to_original(model: VisualBGE) -> dict[str, Any]:
    """This module's state dict in the released layout (EVA-CLIP vision keys)."""
    state = model.state_dict()
    swiglu = any(".mlp.fc1_g." in k for k in state)
    out: dict[str, Any] = {}
    for key, value in state.items():
        if not key.startswith(VISUAL):
            out[key] = value
            continue
        key = key[len(VISUAL) :]
        key = key.replace("attn.q_proj.bias", "attn.q_bias").replace(
            "attn.v_proj.bias", "attn.v_bias"
        )
        key = key.replace("attn.norm.", "attn.inner_attn_ln.").replace("mlp.norm.", "mlp.ffn_ln.")
        if swiglu:
            key = key.replace("mlp.fc1_g.", "mlp.w1.").replace("mlp.fc1_x.", "mlp.w2.")
            key = key.replace("mlp.fc2.", "mlp.w3.")
        out[ORIGINAL_VISUAL + key] = value
    return out


def _read_state(path: str) -> dict[str, Any]:
    if not Path(path).is_file():
        raise UsageError(f"visual-bge weights {path!r} do not exist")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SearchError(f"cannot read visual-bge weights {path}: {exc}") from exc
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise SearchError(f"visual-bge weights {path} hold no state dict")
    return state


def load_weights(model: VisualBGE, path: str) -> None:
    """Load a released ``.pth`` (or this module's own state dict) strictly; a mismatch
    raises one SearchError naming the first missing and unexpected keys."""
    state = from_original(_read_state(path), model)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()
        raise SearchError(f"visual-bge weights {path} do not fit: {' '.join(first[:3])}") from exc
    if missing or unexpected:
        raise SearchError(
            f"visual-bge weights {path} do not fit this text model / vision_arch: "
            f"{len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    log.info("visual-bge weights loaded from %s", path)
