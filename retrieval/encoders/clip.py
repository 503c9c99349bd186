"""open_clip image and text towers: vectors ``image`` and ``clip_text`` in one shared space.

Model spec forms (``clip:MODEL``):

- ``ARCH/TAG``, e.g. ``ViT-B-32/laion2b_s34b_b79k`` (the default): a pretrained tag;
- ``hf-hub:Marqo/marqo-fashionSigLIP``, ``hf-hub:Marqo/marqo-ecommerce-embeddings-B``;
- ``ARCH`` with ``pretrained=PATH`` (a local .pt / .bin / .safetensors checkpoint, e.g.
  a fine-tuned one), or ``pretrained=none`` for random weights;
- a local directory holding ``open_clip_config.json`` and weights (``local-dir:`` optional).

Options: ``device`` (auto), ``batch_size`` (64), ``num_workers`` (image decoding
processes, default min(4, cpus - 1)), ``name_prefix`` (prepended to the vector names),
``precision`` (auto | fp32 | fp16 | bf16). Weights come from the local cache when
``HF_HUB_OFFLINE=1``.

With ``query=True`` a listing without a usable image searches ``image`` with its text
embedding, and one without a title searches ``clip_text`` with its image embedding:
the towers share one space, so cross-modal search works.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.device import (
    autocast,
    autocast_dtype,
    require_extra,
)
from retrieval.encoders.base import Encoded, Vector, VectorSpec, image_run, register_encoder
from retrieval.errors import SearchError, UsageError
from retrieval.types import Product

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-B-32/laion2b_s34b_b79k"
_SCHEMAS = ("hf-hub:", "local-dir:")


class ClipEncoder:
    """Encodes images with an open_clip image tower and titles with its text tower.

    Build it from any open_clip model, its inference transform and its tokenizer (the
    factory does that from a spec; tests pass a tiny random model)."""

    def __init__(
        self,
        model: Any,
        preprocess: Callable[[Any], Any],
        tokenizer: Callable[[list[str]], Any],
        *,
        device: str = "cpu",
        batch_size: int = 64,
        num_workers: int | None = None,
        name_prefix: str = "",
        precision: str = "auto",
    ) -> None:
        self.device = device
        self.model = model.to(device).eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dtype = autocast_dtype(device, precision)
        self.image_name = f"{name_prefix}image"
        self.text_name = f"{name_prefix}clip_text"
        self.spec = "clip"
        self.dim = int(self._encode_texts([""]).shape[1])

    def vectors(self) -> list[VectorSpec]:
        return [VectorSpec(self.image_name, self.dim), VectorSpec(self.text_name, self.dim)]

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        """Image tower on readable images, text tower on non-empty titles."""
        from retrieval.encoders.imageloader import embed_images, loader_options

        n = len(products)
        images: list[Vector | None]
        images, failures = embed_images(
            products, self.preprocess, self._encode_pixels, **loader_options(self)
        )
        texts: list[Vector | None] = [None] * n
        titled = [(i, p.title.strip()) for i, p in enumerate(products) if p.title.strip()]
        if titled:
            feats = self._encode_texts([t for _, t in titled])
            for (pos, _), vec in zip(titled, feats):
                texts[pos] = vec
        if query:
            for i in range(n):
                if images[i] is None and texts[i] is not None:
                    images[i] = texts[i]
                elif texts[i] is None and images[i] is not None:
                    texts[i] = images[i]
        return Encoded({self.image_name: images, self.text_name: texts}, failures)

    def _run(self, fn: Callable[[Any], Any], batch: Any) -> np.ndarray:
        import torch

        with torch.inference_mode(), autocast(self.device, self.dtype):
            feats = fn(batch.to(self.device, non_blocking=True))
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)

    def _encode_pixels(self, pixels: Any) -> np.ndarray:
        return self._run(self.model.encode_image, pixels)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        out = [
            self._run(self.model.encode_text, self.tokenizer(texts[i : i + self.batch_size]))
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(out)


def resolve_model(model: str | None, pretrained: str | None) -> tuple[str, str | None]:
    """(open_clip model name, pretrained tag or checkpoint path) for a spec's model part."""
    import open_clip

    name = (model or DEFAULT_MODEL).strip()
    if name.startswith(_SCHEMAS) or Path(name).is_dir():
        if pretrained:
            raise UsageError(f"clip model {name!r} carries its weights; drop pretrained=")
        return (name if name.startswith(_SCHEMAS) else f"local-dir:{name}"), None
    arch, _, tag = name.partition("/")
    if arch not in open_clip.list_models():
        close = difflib.get_close_matches(arch, open_clip.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown open_clip architecture {arch!r}{hint}")
    if tag and pretrained:
        raise UsageError(f"clip model {name!r}: give a pretrained tag or pretrained=PATH, not both")
    weights = tag or pretrained
    if not weights:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise UsageError(
            f"clip model {arch!r} needs weights: {arch}/TAG (tags: {tags}) or pretrained=PATH"
        )
    if weights.lower() == "none":
        log.warning("clip model %s runs with random weights (pretrained=none)", arch)
        return arch, None
    if pretrained and not Path(pretrained).is_file():
        raise UsageError(f"clip checkpoint {pretrained!r} does not exist")
    return arch, weights


def _check_weights(name: str) -> None:
    """open_clip only warns and keeps random weights when a hub or folder model lacks
    its checkpoint; fail instead."""
    if name.startswith("hf-hub:"):
        from open_clip.pretrained import download_pretrained_from_hf

        download_pretrained_from_hf(name[len("hf-hub:") :])  # raises when not cached offline
    elif name.startswith("local-dir:"):
        folder = Path(name[len("local-dir:") :])
        if not any(any(folder.glob(f"*{ext}")) for ext in (".safetensors", ".bin", ".pth")):
            raise UsageError(f"clip folder {folder} holds no .safetensors / .bin / .pth weights")


def load_open_clip(name: str, weights: str | None, label: str) -> tuple[Any, Any, Any, Any]:
    """``(model, train transform, eval transform, tokenizer)`` of a resolved open_clip
    name and weights; a hub miss or a bad checkpoint is one SearchError naming ``label``."""
    import open_clip

    try:
        _check_weights(name)
        model, train_tf, eval_tf = open_clip.create_model_and_transforms(
            name, pretrained=weights, pretrained_text=False
        )
        return model, train_tf, eval_tf, open_clip.get_tokenizer(name)
    except SearchError:
        raise
    except Exception as exc:  # hub misses, bad checkpoints: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"cannot load clip model {label!r}: {first}") from exc


@register_encoder("clip")
def build_clip(
    model: str | None = None,
    *,
    device: str = "auto",
    batch_size: str = "64",
    num_workers: str | None = None,
    name_prefix: str = "",
    pretrained: str | None = None,
    precision: str = "auto",
) -> ClipEncoder:
    """Build an open_clip encoder from a spec's model part and options."""
    require_extra("clip", {"torch": "torch", "open_clip": "open_clip_torch"})

    name, weights = resolve_model(model, pretrained)
    clip_model, _, preprocess, tokenizer = load_open_clip(name, weights, model or DEFAULT_MODEL)
    run = image_run(device, precision, batch_size, num_workers, batch=64)
    return ClipEncoder(clip_model, preprocess, tokenizer, name_prefix=name_prefix, **run)
