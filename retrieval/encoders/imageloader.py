"""Decode the images of a product batch in DataLoader worker processes.

Missing or corrupt images become failures (product id -> reason), never exceptions;
products without an image reference are skipped silently. Imported by the torch
encoders only (it imports torch).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from retrieval.data.images import load_image, stable
from retrieval.types import Product

log = logging.getLogger(__name__)

# below this many images, worker start-up costs more than it saves
_MIN_PER_WORKER = 8


def default_num_workers() -> int:
    """min(4, cpu_count - 1), never below 0."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


@dataclass
class ImageBatch:
    """Decoded images of part of a product batch.

    ``pixels[j]`` is the image of product ``indices[j]`` (a position in the batch);
    ``pixels`` is None when no image of this part could be decoded."""

    pixels: torch.Tensor | None
    indices: list[int]
    failures: dict[str, str] = field(default_factory=dict)

    def pin_memory(self) -> ImageBatch:
        """Called by the DataLoader with ``pin_memory=True`` (faster copies to a GPU)."""
        pixels = self.pixels.pin_memory() if self.pixels is not None else None
        return ImageBatch(pixels, self.indices, self.failures)


class ProductImages(Dataset):
    """(batch position, product id, image ref) items -> (position, id, tensor or reason)."""

    def __init__(self, items: Sequence[tuple[int, str, str]], transform: Callable[[Any], Any]):
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, str, torch.Tensor | str]:
        pos, pid, ref = self.items[i]
        try:
            return pos, pid, self.transform(load_image(ref))
        except Exception as exc:  # a failure of one image must not stop the batch
            return pos, pid, f"unreadable image {ref}: {stable(str(exc))}"


def _collate(items: list[tuple[int, str, torch.Tensor | str]]) -> ImageBatch:
    good = [(pos, x) for pos, _, x in items if isinstance(x, torch.Tensor)]
    failures = {pid: x for _, pid, x in items if isinstance(x, str)}
    pixels = torch.stack([x for _, x in good]) if good else None
    return ImageBatch(pixels, [pos for pos, _ in good], failures)


def iter_image_batches(
    products: Sequence[Product],
    transform: Callable[[Any], Any],
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    pin_memory: bool = False,
) -> Iterator[ImageBatch]:
    """Yield the decodable images of ``products`` in chunks of at most ``batch_size``,
    decoded by ``num_workers`` worker processes (0: in this process); ``pin_memory``
    when the pixels go to a CUDA device."""
    items = [(i, p.id, p.image_path) for i, p in enumerate(products) if p.image_path]
    if not items:
        return
    workers = default_num_workers() if num_workers is None else max(0, num_workers)
    workers = min(workers, len(items) // _MIN_PER_WORKER)
    # spread the images over the workers: each worker decodes whole chunks
    chunk = batch_size if workers == 0 else max(1, min(batch_size, math.ceil(len(items) / workers)))
    loader = DataLoader(
        ProductImages(items, transform),
        batch_size=chunk,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
    )
    for batch in loader:
        for pid, reason in batch.failures.items():
            log.warning("product %s: %s", pid, reason)
        yield batch


def loader_options(encoder: Any) -> dict[str, Any]:
    """An image encoder's own loader settings for ``iter_image_batches`` / ``embed_images``:
    its batch size and workers, pinned memory when it runs on CUDA."""
    return {
        "batch_size": encoder.batch_size,
        "num_workers": encoder.num_workers,
        "pin_memory": encoder.device.startswith("cuda"),
    }


def embed_images(
    products: Sequence[Product],
    transform: Callable[[Any], Any],
    embed: Callable[[torch.Tensor], Any],
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    pin_memory: bool = False,
) -> tuple[list[Any], dict[str, str]]:
    """``embed(pixels)`` rows of every decodable image of ``products``, in product order
    (None where a product has no readable image), and the failures id -> reason."""
    rows: list[Any] = [None] * len(products)
    failures: dict[str, str] = {}
    for batch in iter_image_batches(
        products, transform, batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory
    ):
        failures.update(batch.failures)
        if batch.pixels is not None:
            for pos, vec in zip(batch.indices, embed(batch.pixels)):
                rows[pos] = vec
    return rows, failures


def load_images(
    products: Sequence[Product],
    transform: Callable[[Any], Any],
    *,
    num_workers: int | None = None,
) -> tuple[torch.Tensor | None, list[int], dict[str, str]]:
    """All decodable images of ``products`` at once: (stacked tensor or None, their
    positions in the batch, failures id -> reason)."""
    tensors: list[torch.Tensor] = []
    indices: list[int] = []
    failures: dict[str, str] = {}
    for batch in iter_image_batches(
        products, transform, batch_size=max(1, len(products)), num_workers=num_workers
    ):
        if batch.pixels is not None:
            tensors.append(batch.pixels)
            indices.extend(batch.indices)
        failures.update(batch.failures)
    return (torch.cat(tensors) if tensors else None), indices, failures
