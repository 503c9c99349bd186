"""Perceptual image hashes as dense +-1 vectors: vector ``phash``.

A hash of ``hash_size**2`` bits becomes a vector of +-1 entries scaled to unit length,
so the cosine of two hashes is ``1 - 2 * hamming / bits``: near-duplicate photos (the
same listing image re-uploaded, resized or recompressed) score close to 1.

Options: ``hash_size`` (8: 64 bits), ``method`` (``phash`` | ``dhash`` | ``ahash`` |
``whash``, the imagehash functions), ``name`` (vector name, ``phash``), ``workers``
(decoding threads, default min(8, cpus)). No torch: decoding runs in a thread pool.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from retrieval.data.images import load_image, stable
from retrieval.device import require_extra
from retrieval.encoders.base import Encoded, Vector, VectorSpec, register_encoder
from retrieval.errors import UsageError
from retrieval.registry import int_option, optional
from retrieval.types import Product

log = logging.getLogger(__name__)

METHODS = {"phash": "phash", "dhash": "dhash", "ahash": "average_hash", "whash": "whash"}


def hash_vector(bits: np.ndarray) -> np.ndarray:
    """A boolean hash as a unit-length float32 vector of +-1/sqrt(n) entries."""
    flat = np.asarray(bits, dtype=bool).ravel()
    return (np.where(flat, 1.0, -1.0) / np.sqrt(flat.size)).astype(np.float32)


class PHashEncoder:
    """Hashes each product's image; None and a failure where it cannot be read."""

    def __init__(
        self,
        hash_fn: Callable[..., Any],
        *,
        hash_size: int = 8,
        name: str = "phash",
        workers: int | None = None,
    ) -> None:
        self.hash_fn = hash_fn
        self.hash_size = hash_size
        self.name = name
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.spec = "phash"

    def vectors(self) -> list[VectorSpec]:
        return [VectorSpec(self.name, self.hash_size**2)]

    def _one(self, ref: str) -> np.ndarray | str:
        try:
            img = load_image(ref)
            return hash_vector(self.hash_fn(img, hash_size=self.hash_size).hash)
        except Exception as exc:  # one bad image must not stop the batch
            return f"unreadable image {ref}: {stable(str(exc))}"

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        """Hash every product image (products without one get None, no failure)."""
        rows: list[Vector | None] = [None] * len(products)
        failures: dict[str, str] = {}
        todo = [(i, p) for i, p in enumerate(products) if p.image_path]
        if todo:
            refs = [str(p.image_path) for _, p in todo]
            if len(refs) == 1 or self.workers <= 1:
                results = [self._one(r) for r in refs]
            else:
                with ThreadPoolExecutor(max_workers=min(self.workers, len(refs))) as pool:
                    results = list(pool.map(self._one, refs))
            for (i, p), res in zip(todo, results):
                if isinstance(res, str):
                    log.warning("product %s: %s", p.id, res)
                    failures[p.id] = res
                else:
                    rows[i] = res
        return Encoded({self.name: rows}, failures)


@register_encoder("phash")
def build_phash(
    model: str | None = None,
    *,
    hash_size: str = "8",
    method: str = "phash",
    name: str = "phash",
    workers: str | None = None,
) -> PHashEncoder:
    """Build a perceptual-hash encoder; the model part, if any, names the method."""
    require_extra("phash", {"imagehash": "imagehash"})
    import imagehash

    method = (model or method).strip().lower()
    if method not in METHODS:
        raise UsageError(f"unknown hash method {method!r}; known: {', '.join(METHODS)}")
    size = int_option("hash_size", hash_size, default=8, minimum=2)
    if method == "whash" and size & (size - 1):
        raise UsageError(f"whash needs a power-of-two hash_size, got {size}")
    return PHashEncoder(
        getattr(imagehash, METHODS[method]),
        hash_size=size,
        name=name,
        workers=optional(int_option, "workers", workers, default=1, minimum=1),
    )
