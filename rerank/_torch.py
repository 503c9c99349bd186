"""What the torch rerankers share: a batch loop that halves the batch size when the GPU
runs out of memory. Option parsing is ``retrieval.registry``'s and device / dtype choice
``retrieval.device``'s, as for the encoders.

Torch is imported inside the function, so importing this module stays light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from retrieval.errors import SearchError

log = logging.getLogger(__name__)
T = TypeVar("T")

if TYPE_CHECKING:
    pass


def run_batches(
    items: Sequence[T],
    batch_size: int,
    score: Callable[[Sequence[T]], list[float]],
    *,
    name: str,
) -> tuple[list[float], int]:
    """Score ``items`` in batches, in order; return the scores and the batch size that
    worked. When a batch runs out of GPU memory, halve the batch size (for the rest of
    the run) and retry it; below 1 raise SearchError."""
    import torch

    out: list[float] = []
    size, start = batch_size, 0
    while start < len(items):
        batch = items[start : start + size]
        try:
            scores = score(batch)
        except torch.cuda.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if size <= 1:
                raise SearchError(f"{name}: out of GPU memory even at batch size 1") from exc
            size //= 2
            log.warning("%s: out of GPU memory; retrying with batch size %d", name, size)
            continue
        if len(scores) != len(batch):
            raise RuntimeError(f"{name} gave {len(scores)} scores for {len(batch)} pairs")
        out.extend(scores)
        start += len(batch)
    return out, size


def run_longest_first(
    items: Sequence[T],
    lengths: Sequence[int],
    batch_size: int,
    score: Callable[[Sequence[T]], list[float]],
    *,
    name: str,
) -> list[float]:
    """``run_batches`` over ``items`` sorted longest first (each batch pads to similar
    lengths, and the worst out-of-memory batch comes early); scores in input order."""
    order = sorted(range(len(items)), key=lambda i: -lengths[i])
    sorted_scores, _ = run_batches([items[i] for i in order], batch_size, score, name=name)
    scores = [0.0] * len(items)
    for i, s in zip(order, sorted_scores):
        scores[i] = s
    return scores
