"""What the torch rerankers share: a batch loop that halves the batch size when the GPU
runs out of memory, and ``LogitReranker``, the common part of the rerankers that give one
logit per pair (``cross-encoder``, ``qwen-vl``): their run settings, how they read a
product and how a logit becomes a score. Option parsing is ``retrieval.registry``'s and
device / dtype choice ``retrieval.device``'s, as for the encoders. (The ``Reranker``
protocol in ``rerank.base`` stays one method and two attributes.)

Torch is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from rerank.base import (
    Formatter,
    Pair,
    RerankStats,
    lean_on_stage1_rank,
    sigmoid,
    trained_reading,
)
from retrieval.device import model_dtype, pick_device
from retrieval.errors import SearchError
from retrieval.registry import float_option, int_option, optional

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


class LogitReranker:
    """What the model rerankers that give one logit per pair share (``cross-encoder``,
    ``qwen-vl``): the device and precision they run at, pairs per batch, how a product
    reads (``fields``; default: what a folder we trained records, ``TEXT_SIDECAR``), how
    far the logit leans on stage 1 (``stage1_weight``; default: the folder's, else 0), and
    the score: ``sigmoid(margin + stage1_weight * stage1_prior(rank))``. Options may come
    as a spec's strings; they are parsed and checked here. ``kind``: the registered name."""

    kind = ""
    needs_features = False  # reads products, not stage-1 similarities
    probabilities = True  # scores through the sigmoid; False: the leaned logits

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        precision: str | None = None,
        batch_size: str | int = 32,
        fields: str | None = None,
        stage1_weight: str | float | None = None,
    ) -> None:
        self.spec = f"{self.kind}:{model}"
        self.device = pick_device(device)
        self.dtype = model_dtype(self.device, precision)
        self.batch_size = int_option("batch_size", batch_size, minimum=1)
        trained = trained_reading(model)
        chosen = "+".join(trained.fields) if fields is None else fields
        self.format = Formatter.from_option(chosen, trained.form)
        weight = optional(float_option, "stage1_weight", stage1_weight)
        self.stage1_weight = trained.stage1_weight if weight is None else weight
        self.stats = RerankStats()

    def margins(self, pairs: Sequence[Pair]) -> list[float]:
        """The model's logit of each (query, candidate) pair, in order."""
        raise NotImplementedError

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One score per pair, in input order: its margin plus ``stage1_weight`` times the
        candidate's ``stage1_prior``, through the sigmoid where ``probabilities``."""
        if not pairs:
            return []
        logits = lean_on_stage1_rank(self.margins(pairs), pairs, self.stage1_weight)
        return [sigmoid(z) for z in logits] if self.probabilities else logits
