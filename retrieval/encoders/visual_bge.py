"""Visual BGE (BAAI bge-visualized): image and title in one vector, ``vbge``.

``visual-bge[:TEXT_MODEL],weights=PATH`` builds the network of
``retrieval.encoders.visual_bge_model`` from the BGE text model's config and tokenizer
(hub name or local path; default ``BAAI/bge-base-en-v1.5``) and an open_clip EVA vision
tower (``vision_arch``, default ``EVA02-B-16``), then loads the released weights
(``Visualized_base_en_v1.5.pth``). For the m3 release pass ``visual-bge:BAAI/bge-m3``
with ``vision_arch=EVA02-L-14`` and ``weights=.../Visualized_m3.pth``: the pairing is
explicit, never guessed from the names.

A listing with image and title is encoded jointly, a title alone by BGE, an image alone
by the image path with an empty text. Options: ``device`` (auto), ``batch_size`` (32),
``num_workers`` (image decoding processes), ``name`` (vector name, ``vbge``),
``precision`` (auto | fp32 | fp16 | bf16; the whole model is cast on a GPU),
``max_length`` (text tokens, 512 by default).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.device import (
    model_dtype,
    require_extra,
)
from retrieval.encoders.base import Encoded, Vector, VectorSpec, image_run, register_encoder
from retrieval.errors import SearchError, UsageError
from retrieval.registry import int_option
from retrieval.types import Product

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "BAAI/bge-base-en-v1.5"
DEFAULT_VISION_ARCH = "EVA02-B-16"


class VisualBgeEncoder:
    """Encodes products with a ``VisualBGE`` network, its tokenizer and image transform."""

    def __init__(
        self,
        model: Any,
        tokenizer: Callable[..., Any],
        preprocess: Callable[[Any], Any],
        *,
        device: str = "cpu",
        batch_size: int = 32,
        num_workers: int | None = None,
        name: str = "vbge",
        precision: str = "auto",
        max_length: int = 512,
    ) -> None:

        self.device = device
        dtype = model_dtype(device, precision)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.name = name
        self.dtype = dtype
        self.text_max = min(max_length, model.max_positions - 2)
        self.mm_max = min(max_length, model.max_positions - model.num_image_tokens - 2)
        if self.mm_max < 2:
            raise UsageError("visual-bge: the image tokens fill every BGE position")
        self.spec = "visual-bge"

    def vectors(self) -> list[VectorSpec]:
        return [VectorSpec(self.name, self.model.hidden_size)]

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        """Jointly for image + title, image path for an image alone, BGE for a title alone."""
        from retrieval.encoders.imageloader import iter_image_batches, loader_options

        rows: list[Vector | None] = [None] * len(products)
        failures: dict[str, str] = {}
        for batch in iter_image_batches(products, self.preprocess, **loader_options(self)):
            failures.update(batch.failures)
            if batch.pixels is None:
                continue
            texts = [products[i].title.strip() for i in batch.indices]
            for pos, vec in zip(batch.indices, self._encode(texts, batch.pixels)):
                rows[pos] = vec
        todo = [(i, p.title.strip()) for i, p in enumerate(products) if rows[i] is None]
        todo = [(i, t) for i, t in todo if t]
        for start in range(0, len(todo), self.batch_size):
            part = todo[start : start + self.batch_size]
            for (pos, _), vec in zip(part, self._encode([t for _, t in part], None)):
                rows[pos] = vec
        return Encoded({self.name: rows}, failures)

    def _encode(self, texts: list[str], pixels: Any | None) -> np.ndarray:
        import torch

        tok = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.text_max if pixels is None else self.mm_max,
            return_tensors="pt",
        )
        ids = tok["input_ids"].to(self.device)
        mask = tok["attention_mask"].to(self.device)
        with torch.inference_mode():
            if pixels is None:
                out = self.model.encode_text(ids, mask)
            else:
                out = self.model.encode_mm(
                    pixels.to(self.device, self.dtype, non_blocking=True), ids, mask
                )
        return out.float().cpu().numpy().astype(np.float32, copy=False)


def _text_backbone(name: str) -> tuple[Any, Any]:
    """A randomly initialised BGE model from its config (the weights come from the .pth)
    and its tokenizer; hub names resolve from the local cache when offline."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(name)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # hub misses: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"cannot load the visual-bge text model {name!r}: {first}") from exc
    return AutoModel.from_config(config), tokenizer


@register_encoder("visual-bge")
def build_visual_bge(
    model: str | None = None,
    *,
    weights: str | None = None,
    vision_arch: str = DEFAULT_VISION_ARCH,
    device: str = "auto",
    batch_size: str = "32",
    num_workers: str | None = None,
    name: str = "vbge",
    precision: str = "auto",
    max_length: str = "512",
) -> VisualBgeEncoder:
    """Build a Visual BGE encoder from a text model, a vision arch and released weights."""
    require_extra(
        "vbge",
        {"torch": "torch", "transformers": "transformers", "open_clip": "open_clip_torch"},
    )
    import open_clip

    from retrieval.encoders import visual_bge_model as vbm

    if not weights:
        raise UsageError(
            "visual-bge needs weights=PATH to the released Visualized_base_en_v1.5.pth "
            "(or Visualized_m3.pth with visual-bge:BAAI/bge-m3,vision_arch=EVA02-L-14)"
        )
    if not Path(weights).is_file():
        raise UsageError(f"visual-bge weights {weights!r} do not exist")
    text_model, tokenizer = _text_backbone((model or DEFAULT_TEXT_MODEL).strip())
    vision, image_size = vbm.vision_tower(vision_arch)
    network = vbm.VisualBGE(text_model, vision)
    vbm.load_weights(network, weights)
    preprocess = open_clip.image_transform(image_size, is_train=False)
    return VisualBgeEncoder(
        network,
        tokenizer,
        preprocess,
        name=name,
        max_length=int_option("max_length", max_length, default=512, minimum=2),
        **image_run(device, precision, batch_size, num_workers, batch=32),
    )
